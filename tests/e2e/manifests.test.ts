// GIVEN `npm run build` and the post-build step (tools/manifests.ts), WHEN dist/atb-operator.yaml
// is applied to the project's real API server, THEN every object passes a server-side dry-run
// (schema, strict field validation, admission: Pod Security "restricted" on pepr-system), the
// pods run non-root without privilege escalation or capabilities, the watcher mounts the broker
// certificate where the module env points, the metrics Service and ServiceMonitor select the
// watcher, the scope admission policy's parameters are the watcher's settings, and the RBAC
// grants the ServiceAccount exactly the documented list, checked with `kubectl auth can-i` as
// that ServiceAccount.
//
// The ServiceMonitor CRD does not exist on the local control plane: a typed subset of it
// (tests/fixtures/servicemonitor-crd.yaml) is applied first, so the ServiceMonitor is dry-run on
// the server like everything else. The Namespace and the CRDs are applied for real (dry-run
// objects in a namespace that does not exist would fail); nothing else is.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dump, loadAll } from "js-yaml";
import { parseConfig } from "../../capabilities/lib/config";
import { POLICY_NAME, POLICY_PARAMS, policyParams } from "../../capabilities/lib/scope";
import { ensureBinaries } from "../../tools/controlplane/binaries";
import { e2eCluster } from "../helpers/cluster-env";
import { Kube } from "../helpers/kube";
import {
  CONTAINER_SECURITY,
  documentedGrants,
  grantDiff,
  METRICS_PORT,
  METRICS_SERVICE,
  NAMESPACE,
  OUTPUT,
  rbacGrants,
  rbacWildcards,
  SERVICE_ACCOUNT,
  SHARD_LABEL,
  TLS_MOUNT,
  TLS_SECRET,
  type Grant,
  type K8sObject,
} from "../../tools/manifests";

const root = join(__dirname, "..", "..");
const kube = new Kube(ensureBinaries(), e2eCluster().kubeconfig);
const OUT = join(root, "dist", OUTPUT);
const AS = `--as=system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`;
const PSS_VIOLATION = /would violate PodSecurity "restricted/;
let docs: K8sObject[] = [];

function run(cmd: string, args: string[], timeout: number): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8", timeout, maxBuffer: 64 * 1024 * 1024 });
  const out = `${r.stdout ?? ""}\n${r.stderr ?? ""}`;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status ?? r.signal}:\n${out.slice(-4000)}`);
  return out;
}

const yaml = (objs: object[]): string => objs.map(o => dump(o, { lineWidth: -1 })).join("---\n");
const byKind = (kind: string): K8sObject[] => docs.filter(d => d.kind === kind);
const deployment = (controller: string): K8sObject =>
  docs.find(d => d.kind === "Deployment" && d.metadata.labels?.["pepr.dev/controller"] === controller)!;

interface PodSpec {
  securityContext: Record<string, unknown>;
  containers: {
    name: string;
    securityContext: Record<string, unknown>;
    env: { name: string; value: string }[];
    volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
    ports: { containerPort: number; name?: string }[];
  }[];
  volumes: { name: string; secret?: { secretName: string; defaultMode?: number; optional?: boolean } }[];
}
const podSpec = (d: K8sObject): PodSpec =>
  (d as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;

beforeAll(() => {
  // The build type-checks the module (tsconfig.json) and writes dist/ (about 30 s on a quiet machine).
  // `npm run build` without its `rm -rf dist` (other e2e files build into folders of their own).
  const build = run(join(root, "node_modules", ".bin", "tsx"), [join(root, "tools", "module-build.ts")], 300_000);
  if (/error TS\d+/.test(build)) throw new Error(`pepr build reported type errors:\n${build.slice(-4000)}`);
  run(join(root, "node_modules", ".bin", "tsx"), [join(root, "tools", "manifests.ts")], 120_000);
  docs = (loadAll(readFileSync(OUT, "utf8")) as K8sObject[]).filter(Boolean);
  // Real objects the dry-run of the rest depends on: the namespace (with its Pod Security labels)
  // and the CRDs, including the ServiceMonitor CRD fixture.
  kube.run(
    ["apply", "--server-side", "--force-conflicts", "-f", "-"],
    yaml([...byKind("Namespace"), ...byKind("CustomResourceDefinition")]),
  );
  kube.apply(join(root, "tests", "fixtures", "servicemonitor-crd.yaml"));
  kube.run([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    ...byKind("CustomResourceDefinition").map(c => `crd/${c.metadata.name}`),
    "crd/servicemonitors.monitoring.coreos.com",
  ]);
}, 600_000);

afterAll(() => {
  // Other e2e files share this control plane: take back what was applied for real here.
  const rbac = docs.filter(d => /Role|ServiceAccount/.test(d.kind));
  if (rbac.length) kube.try(["delete", "--ignore-not-found", "-f", "-"], yaml(rbac));
  kube.try([
    "label",
    "namespace",
    NAMESPACE,
    "pod-security.kubernetes.io/enforce-",
    "pod-security.kubernetes.io/enforce-version-",
    "pod-security.kubernetes.io/warn-",
    "pod-security.kubernetes.io/warn-version-",
  ]);
});

describe("dist/atb-operator.yaml", () => {
  test("holds the whole install: namespace and CRDs first, Pepr's objects, the metrics Service and ServiceMonitor", () => {
    const kinds = docs.map(d => `${d.kind}/${d.metadata.name}`);
    expect(kinds.slice(0, 7)).toEqual([
      `Namespace/${NAMESPACE}`,
      "CustomResourceDefinition/peprstores.pepr.dev",
      "CustomResourceDefinition/agenttasks.atb.siemens.com",
      "CustomResourceDefinition/agenttaskapprovals.atb.siemens.com",
      // the scope policy, its parameters before it (the binding denies without them)
      `ConfigMap/${POLICY_PARAMS.name}`,
      `ValidatingAdmissionPolicy/${POLICY_NAME}`,
      `ValidatingAdmissionPolicyBinding/${POLICY_NAME}`,
    ]);
    for (const k of [
      `ClusterRole/${SERVICE_ACCOUNT}`,
      `ClusterRoleBinding/${SERVICE_ACCOUNT}`,
      `ServiceAccount/${SERVICE_ACCOUNT}`,
      `Deployment/${SERVICE_ACCOUNT}`,
      `Deployment/${SERVICE_ACCOUNT}-watcher`,
      `Secret/${SERVICE_ACCOUNT}-module`,
      `MutatingWebhookConfiguration/${SERVICE_ACCOUNT}`,
      `ValidatingWebhookConfiguration/${SERVICE_ACCOUNT}`,
      `Service/${METRICS_SERVICE}`,
      "ServiceMonitor/atb-operator",
    ]) {
      expect(kinds).toContain(k);
    }
    // The operator's TLS Secret is created by the installer, never shipped.
    expect(kinds).not.toContain(`Secret/${TLS_SECRET}`);
  });

  // Server-side apply, as docs/deployment.md says: the module Secret is larger than the 256 KiB
  // annotation limit that client-side apply's last-applied-configuration would need.
  test("every object passes `kubectl apply --server-side --dry-run=server`, with no Pod Security warning", () => {
    const r = kube.try(["apply", "--server-side", "--dry-run=server", "-f", OUT]);
    expect(r.stderr).not.toMatch(/error|forbidden|invalid/i);
    expect(r.ok).toBe(true);
    const lines = r.stdout.trim().split("\n");
    expect(lines.filter(l => l.endsWith("(server dry run)"))).toHaveLength(docs.length);
    for (const d of docs) {
      const kind = d.kind.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const name = d.metadata.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      expect(r.stdout).toMatch(new RegExp(`^${kind}(\\.[\\w.]+)?/${name} [\\w-]+ \\(server dry run\\)$`, "m"));
    }
    expect(r.stderr).not.toMatch(PSS_VIOLATION);
  });

  test("Pod Security admission is active on the namespace: a privileged Deployment is flagged (the check can fail)", () => {
    const bad = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "pss-probe", namespace: NAMESPACE },
      spec: {
        selector: { matchLabels: { app: "pss-probe" } },
        template: {
          metadata: { labels: { app: "pss-probe" } },
          spec: { containers: [{ name: "c", image: "busybox", securityContext: { privileged: true } }] },
        },
      },
    };
    const r = kube.try(["apply", "--dry-run=server", "-f", "-"], JSON.stringify(bad));
    expect(r.stderr).toMatch(PSS_VIOLATION);
  });

  test("both Deployments run non-root, without privilege escalation or capabilities, with RuntimeDefault seccomp", () => {
    const deployments = byKind("Deployment");
    expect(deployments).toHaveLength(2);
    for (const d of deployments) {
      const spec = podSpec(d);
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
      expect(spec.securityContext.runAsUser).not.toBe(0);
      for (const c of spec.containers) {
        expect(c.securityContext).toMatchObject({ ...CONTAINER_SECURITY, capabilities: { drop: ["ALL"] } });
        expect(c.securityContext.privileged).toBeUndefined();
        // Explicitly false: Pepr's controller writes /app/module-<sha>.js (docs/deployment.md).
        expect(c.securityContext.readOnlyRootFilesystem).toBe(false);
      }
    }
  });

  test("the watcher mounts Secret atb-operator-tls read-only where TLS_*_FILE point, and serves metrics on 0.0.0.0:9464", () => {
    const spec = podSpec(deployment("watcher"));
    const c = spec.containers[0];
    const env = Object.fromEntries(c.env.map(e => [e.name, e.value]));
    const volume = spec.volumes.find(v => v.secret?.secretName === TLS_SECRET);
    expect(volume?.secret).toEqual({ secretName: TLS_SECRET, defaultMode: 0o440, optional: false });
    const mount = c.volumeMounts.find(m => m.name === volume!.name);
    expect(mount).toEqual({ name: volume!.name, mountPath: TLS_MOUNT, readOnly: true });
    expect(env).toMatchObject({
      TLS_CERT_FILE: `${TLS_MOUNT}/tls.crt`,
      TLS_KEY_FILE: `${TLS_MOUNT}/tls.key`,
      TLS_CA_FILE: `${TLS_MOUNT}/ca.crt`,
      ATB_BROKER_URL: "https://atb-broker.atb-system.svc:8443",
      ATB_METRICS_HOST: "0.0.0.0",
      ATB_METRICS_PORT: String(METRICS_PORT),
      PEPR_WATCH_MODE: "true",
    });
    expect(c.ports).toContainEqual({ containerPort: METRICS_PORT, name: "metrics" });
    // The admission pods never talk to the broker: no certificate there.
    const admission = podSpec(deployment("admission"));
    expect(admission.volumes.some(v => v.secret?.secretName === TLS_SECRET)).toBe(false);
  });

  test("the scope policy's parameters are the watcher's own settings (WATCH_NAMESPACE, ATB_PROTECTED_NAMESPACES)", () => {
    const env = Object.fromEntries(podSpec(deployment("watcher")).containers[0].env.map(e => [e.name, e.value]));
    const params = docs.find(d => d.kind === "ConfigMap" && d.metadata.name === POLICY_PARAMS.name)!;
    expect(params.metadata.namespace).toBe(POLICY_PARAMS.namespace);
    expect(params.data).toEqual(policyParams(parseConfig(env)));
  });

  test("the metrics Service selects the watcher pod, and the ServiceMonitor selects the Service's metrics port", () => {
    const svc = byKind("Service").find(s => s.metadata.name === METRICS_SERVICE) as unknown as {
      metadata: { labels: Record<string, string> };
      spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: number }[] };
    };
    const podLabels = (
      deployment("watcher") as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }
    ).spec.template.metadata.labels;
    expect(podLabels).toMatchObject(svc.spec.selector);
    const admissionLabels = (
      deployment("admission") as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }
    ).spec.template.metadata.labels;
    expect(admissionLabels).not.toMatchObject(svc.spec.selector);
    expect(svc.spec.ports).toEqual([
      { name: "metrics", port: METRICS_PORT, targetPort: METRICS_PORT, protocol: "TCP" },
    ]);
    const sm = byKind("ServiceMonitor")[0] as unknown as {
      metadata: { namespace: string };
      spec: {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; path: string; scheme: string }[];
      };
    };
    expect(sm.metadata.namespace).toBe(NAMESPACE);
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: "metrics", path: "/metrics", scheme: "http" })]);
  });
});

describe("N shards from the same module (npm run manifests -- --shards 3)", () => {
  const SHARDED = join(root, "dist", "atb-operator-shards-3.yaml");
  let sharded: K8sObject[] = [];
  type Spec = {
    spec: {
      selector: { matchLabels: Record<string, string> };
      template: { metadata: { labels: Record<string, string> } };
    };
  };
  const envOf = (d: K8sObject) => Object.fromEntries(podSpec(d).containers[0].env.map(e => [e.name, e.value]));

  beforeAll(() => {
    run(
      join(root, "node_modules", ".bin", "tsx"),
      [join(root, "tools", "manifests.ts"), "--shards", "3", "--out", SHARDED],
      120_000,
    );
    sharded = (loadAll(readFileSync(SHARDED, "utf8")) as K8sObject[]).filter(Boolean);
  });

  test("three watcher Deployments, shard i with ATB_SHARDS=3 and ATB_SHARD=i, selectors that do not overlap; the admission pods stamp for 3", () => {
    const watchers = sharded.filter(
      d => d.kind === "Deployment" && d.metadata.labels?.["pepr.dev/controller"] === "watcher",
    );
    expect(watchers.map(d => d.metadata.name)).toEqual([0, 1, 2].map(i => `${SERVICE_ACCOUNT}-watcher-${i}`));
    watchers.forEach((d, i) => {
      expect(envOf(d)).toMatchObject({ ATB_SHARDS: "3", ATB_SHARD: String(i), PEPR_WATCH_MODE: "true" });
      const { selector, template } = (d as unknown as Spec).spec;
      expect(selector.matchLabels[SHARD_LABEL]).toBe(String(i));
      expect(template.metadata.labels).toMatchObject(selector.matchLabels);
      for (const other of watchers.filter(o => o !== d))
        expect((other as unknown as Spec).spec.template.metadata.labels).not.toMatchObject(selector.matchLabels);
    });
    const admission = sharded.find(
      d => d.kind === "Deployment" && d.metadata.labels?.["pepr.dev/controller"] === "admission",
    )!;
    expect(envOf(admission).ATB_SHARDS).toBe("3");
    expect(envOf(admission).ATB_SHARD).toBeUndefined();
    // The metrics Service selects every shard's pods; everything else is the one-watcher install's.
    const svc = sharded.find(d => d.kind === "Service" && d.metadata.name === METRICS_SERVICE) as unknown as {
      spec: { selector: Record<string, string> };
    };
    for (const w of watchers)
      expect((w as unknown as Spec).spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    const rest = (list: K8sObject[]) =>
      list.filter(d => !(d.kind === "Deployment")).map(d => `${d.kind}/${d.metadata.name}`);
    expect(rest(sharded)).toEqual(rest(docs));
  });

  test("every object passes `kubectl apply --server-side --dry-run=server`", () => {
    const r = kube.try(["apply", "--server-side", "--dry-run=server", "-f", SHARDED]);
    expect(r.stderr).not.toMatch(/error|forbidden|invalid/i);
    expect(r.ok).toBe(true);
    expect(
      r.stdout
        .trim()
        .split("\n")
        .filter(l => l.endsWith("(server dry run)")),
    ).toHaveLength(sharded.length);
    for (let i = 0; i < 3; i++) expect(r.stdout).toContain(`deployment.apps/${SERVICE_ACCOUNT}-watcher-${i} `);
    expect(r.stderr).not.toMatch(PSS_VIOLATION);
  });
});

describe("RBAC of the built manifests", () => {
  const markdown = readFileSync(join(root, "docs", "deployment.md"), "utf8");

  test("no wildcard in any Role or ClusterRole, and exactly the documented grants for the ServiceAccount", () => {
    expect(rbacWildcards(docs)).toEqual([]);
    expect(byKind("ClusterRole")).toHaveLength(1);
    expect(grantDiff(rbacGrants(docs), documentedGrants(markdown))).toEqual({ undocumented: [], missing: [] });
  });

  describe("on the API server, as the ServiceAccount", () => {
    beforeAll(() => {
      kube.run(["apply", "-f", "-"], yaml(docs.filter(d => /Role|ServiceAccount/.test(d.kind))));
    });

    function canI(verb: string, group: string, resource: string, name = "*"): boolean {
      const [res, sub] = resource.split("/");
      const clusterScoped = res === "customresourcedefinitions";
      const target = `${res}${group ? `.${group}` : ""}${name === "*" ? "" : `/${name}`}`;
      const args = ["auth", "can-i", verb, target, AS, ...(sub ? [`--subresource=${sub}`] : [])];
      const r = kube.try([...args, ...(clusterScoped ? [] : ["--all-namespaces"])]);
      if (!/^(yes|no)/.test(r.stdout.trim())) throw new Error(`kubectl auth can-i failed: ${r.stderr}`);
      return r.stdout.trim().startsWith("yes");
    }

    test("every documented grant is allowed", () => {
      const denied = documentedGrants(markdown)
        .filter((g: Grant) => !canI(g.verb, g.group, g.resource, g.name))
        .map(g => `${g.verb} ${g.group}/${g.resource} ${g.name}`);
      expect(denied).toEqual([]);
    });

    test.each([
      // [verb, group, resource, name]: every row has all four (jest would take a missing one as `done`)
      ["delete", "apps", "deployments", "*"],
      ["create", "apps", "deployments", "*"],
      ["update", "apps", "deployments", "*"],
      ["list", "apps", "deployments", "*"],
      ["list", "", "secrets", "*"],
      ["watch", "", "secrets", "*"],
      ["delete", "", "secrets", "*"],
      ["get", "", "pods", "*"],
      ["create", "", "pods/exec", "*"],
      // The operator never writes a task's metadata or spec (status only, through agenttasks/status).
      ["update", "atb.siemens.com", "agenttasks", "*"],
      ["patch", "atb.siemens.com", "agenttasks", "*"],
      // The operator reaches no target itself, only as the namespace's executor.
      ["get", "apps", "deployments", "*"],
      ["patch", "apps", "deployments", "*"],
      ["patch", "apps", "statefulsets", "*"],
      ["get", "", "configmaps", "*"],
      ["patch", "", "configmaps", "*"],
      ["get", "", "secrets", "*"],
      ["patch", "", "services", "*"],
      ["impersonate", "", "serviceaccounts", "default"],
      ["impersonate", "", "users", "*"],
      ["impersonate", "", "groups", "*"],
      ["get", "", "serviceaccounts", "default"],
      ["update", "atb.siemens.com", "agenttasks/status", "*"],
      ["patch", "", "events", "*"],
      ["create", "apiextensions.k8s.io", "customresourcedefinitions", "*"],
      ["patch", "apiextensions.k8s.io", "customresourcedefinitions", "agenttasks.atb.siemens.com"],
      ["create", "rbac.authorization.k8s.io", "clusterrolebindings", "*"],
      ["escalate", "rbac.authorization.k8s.io", "clusterroles", "*"],
      ["impersonate", "", "serviceaccounts", "*"],
      ["get", "", "nodes", "*"],
    ])("%s %s %s %s is denied", (verb, group, resource, name) => {
      expect(canI(verb, group, resource, name)).toBe(false);
    });

    test("the controller's server-side apply of the PeprStore CRD is allowed, and of any other CRD forbidden", () => {
      const apply = (obj: K8sObject) =>
        kube.try(
          ["apply", "--server-side", "--force-conflicts", "--field-manager=pepr", "--dry-run=server", AS, "-f", "-"],
          JSON.stringify(obj),
        );
      const store = apply(byKind("CustomResourceDefinition").find(c => c.metadata.name === "peprstores.pepr.dev")!);
      expect(store.stderr).toBe("");
      expect(store.ok).toBe(true);
      const other = apply(
        byKind("CustomResourceDefinition").find(c => c.metadata.name === "agenttasks.atb.siemens.com")!,
      );
      expect(other.ok).toBe(false);
      expect(other.stderr).toMatch(/forbidden/i);
    });
  });
});
