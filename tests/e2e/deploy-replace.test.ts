// GIVEN the whole product on the real control plane (admission webhooks, the operator's pipeline,
// the reference broker with real OPA, controllers, KWOK nodes), WHEN an agent deploys a manifest
// over a workload that another field manager created with other containers, THEN the manifest's
// spec replaces the workload's: the task ends Completed only when the newest ReplicaSet (or
// ControllerRevision) and the pods run exactly the manifest's containers; and WHEN a mutating
// admission policy makes the rollout produce another template, THEN the task ends Failed with
// TemplateMismatch naming the difference.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ANNOTATION_APPLIED_BY } from "../../crds/agenttask";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually } from "../helpers/kube";
import {
  checkAtMostOnce,
  checkNoLeaks,
  executed,
  Harness,
  revisionOf,
  revisionTemplate,
  type Obj,
  type Task,
} from "../helpers/pipeline-tasks";

const h = new Harness(e2eCluster(), "deploy-replace", "stack-deploy-replace");
/** The mutating admission policy of the TemplateMismatch case (cluster-scoped: named after the namespace). */
const POLICY = `${h.ns}-inject-proxy`;

// A bound on rollout waits, in case a rollout the test relies on never finishes.
beforeAll(() => h.start({ ATB_ROLLOUT_TIMEOUT_SECONDS: "150" }));
afterAll(async () => {
  removePolicy();
  await h.stop();
});

interface Container {
  name: string;
  image: string;
  ports?: { containerPort: number }[];
}
type PodTemplate = { metadata?: { labels?: Record<string, string> }; spec: { containers: Container[] } };
interface Pod {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { containers: Container[] };
}

const names = (t: { spec: { containers: Container[] } } | undefined): string[] =>
  (t?.spec.containers ?? []).map(c => c.name);
const template = (o: Obj): PodTemplate => o.spec!.template as unknown as PodTemplate;

function deployment(name: string, containers: Container[], replicas = 3): object {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: h.ns, labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers, terminationGracePeriodSeconds: 0 },
      },
    },
  };
}

function failed(t: Task, reason: string, message: string | RegExp): void {
  expect(t.status?.phase).toBe("Failed");
  expect(t.status?.message).toEqual(
    typeof message === "string" ? expect.stringContaining(message) : expect.stringMatching(message),
  );
  expect(t.status?.conditions?.find(c => c.type === "Succeeded")).toMatchObject({ status: "False", reason });
}

function completed(t: Task, message: RegExp): void {
  expect({ phase: t.status?.phase, message: t.status?.message }).toEqual({
    phase: "Completed",
    message: expect.stringMatching(message),
  });
  expect(t.status?.atbResult).toMatchObject({ allowed: true, riskTier: "HIGH", reason: "allowed" });
}

/** The pods the workload's selector selects, once every one of them runs `containers` (and there are `count`). */
function podsRunning(selector: string, containers: string[], count: number): Promise<Pod[]> {
  return eventually(`${count} pods with containers [${containers.join(", ")}] for ${selector}`, 120_000, () => {
    const pods = (JSON.parse(h.kube.run(["get", "pods", "-n", h.ns, "-l", selector, "-o", "json"])) as { items: Pod[] })
      .items;
    const ok = pods.length === count && pods.every(p => names(p).join() === containers.join());
    return ok ? pods : undefined;
  });
}

describe("a manifest replaces what another field manager created", () => {
  test("Deployment with containers payment + log-shipper (kubectl), manifest with payment-service only: exactly payment-service runs (HIGH)", async () => {
    const created = deployment("payment-service", [
      { name: "payment", image: "registry.example.com/payment:1.4.2", ports: [{ containerPort: 8080 }] },
      { name: "log-shipper", image: "registry.example.com/log-shipper:3.1" },
    ]);
    h.create(created);
    const before = await h.rolledOut("Deployment", "payment-service");
    expect(names(template(before))).toEqual(["payment", "log-shipper"]);

    const manifest = deployment("payment-service", [
      {
        name: "payment-service",
        image: "registry.example.com/payment-service:2.0.0",
        ports: [{ containerPort: 8080 }],
      },
    ]) as { metadata: Record<string, unknown> };
    manifest.metadata.labels = { app: "payment-service", version: "v2.0.0" };
    manifest.metadata.annotations = { "example.com/release": "2.0.0" };
    const t = await h.run("payment-service-v2", {
      action: "deploy",
      kind: "Deployment",
      target: "payment-service",
      payload: { manifest },
    });
    completed(t, /replica set payment-service-\w+ \(revision 2\) runs the manifest's pod template/);

    const d = h.get("Deployment", "payment-service");
    expect(names(template(d))).toEqual(["payment-service"]);
    // The manifest's labels and annotations are added; the rest of the metadata is kept.
    expect(d.metadata.labels).toEqual({ app: "payment-service", version: "v2.0.0" });
    expect(d.metadata.annotations).toMatchObject({
      "example.com/release": "2.0.0",
      "deployment.kubernetes.io/revision": "2",
      [ANNOTATION_APPLIED_BY]: t.metadata.uid,
    });
    const replicaSets = h.owned("ReplicaSet", d);
    const newest = replicaSets[replicaSets.length - 1];
    expect([revisionOf(newest), names(template(newest)), newest.status?.readyReplicas]).toEqual([
      2,
      ["payment-service"],
      3,
    ]);
    expect(template(newest).spec.containers[0].image).toBe("registry.example.com/payment-service:2.0.0");
    await podsRunning("app=payment-service", ["payment-service"], 3);
  });

  test("StatefulSet with an extra container: the newest ControllerRevision holds exactly the manifest's (HIGH)", async () => {
    const sts = (containers: Container[]) => ({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: "ledger", namespace: h.ns },
      spec: {
        replicas: 2,
        serviceName: "ledger",
        podManagementPolicy: "Parallel",
        selector: { matchLabels: { app: "ledger" } },
        template: { metadata: { labels: { app: "ledger" } }, spec: { containers, terminationGracePeriodSeconds: 0 } },
      },
    });
    h.create(
      sts([
        { name: "ledger", image: "registry.example.com/ledger:1" },
        { name: "debug", image: "registry.example.com/debug:1" },
      ]),
    );
    await h.rolledOut("StatefulSet", "ledger");
    const t = await h.run("ledger-v2", {
      action: "deploy",
      kind: "StatefulSet",
      target: "ledger",
      payload: { manifest: sts([{ name: "ledger", image: "registry.example.com/ledger:2" }]) },
    });
    completed(t, /controller revision ledger-\w+ \(revision 2\) runs the manifest's pod template/);
    const o = h.get("StatefulSet", "ledger");
    const revisions = h.owned("ControllerRevision", o);
    expect(revisions.map(r => [revisionOf(r), names(revisionTemplate(r) as unknown as PodTemplate)])).toEqual([
      [1, ["ledger", "debug"]],
      [2, ["ledger"]],
    ]);
    await podsRunning("app=ledger", ["ledger"], 2);
  });

  test("a manifest using most pod features (probes, resources, env, volumes, ports) completes: the API server's defaults are no mismatch", async () => {
    const recorded = JSON.parse(
      readFileSync(join(__dirname, "..", "fixtures", "pod-template-defaults", "rich.json"), "utf8"),
    ) as { manifest: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> } };
    // Without the ephemeral volume (its claim would need a storage class before a pod can schedule)
    // and the hostPath one (the policy on the resulting object refuses it: Pod Security baseline).
    // With a service account named: this control plane runs without the ServiceAccount admission
    // plugin, and a pod with a projected token but no service account is invalid.
    // (A JSON copy, not structuredClone: under jest, structuredClone makes objects of another realm.)
    const spec = JSON.parse(JSON.stringify(recorded.manifest.spec)) as {
      volumes: { name: string }[];
      containers: { volumeMounts: { name: string }[] }[];
      serviceAccountName?: string;
    };
    const kept = (v: { name: string }) => v.name !== "eph" && v.name !== "hp";
    spec.volumes = spec.volumes.filter(kept);
    spec.containers[0].volumeMounts = spec.containers[0].volumeMounts.filter(kept);
    spec.serviceAccountName = "default";
    const labels = { ...recorded.manifest.metadata.labels, app: "rich" };
    await h.ready("Deployment", "rich");
    const manifest = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "rich", namespace: h.ns },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "rich" } },
        template: { metadata: { ...recorded.manifest.metadata, labels }, spec },
      },
    };
    const t = await h.run("rich", { action: "deploy", kind: "Deployment", target: "rich", payload: { manifest } });
    completed(t, /runs the manifest's pod template/);
  });
});

/** A MutatingAdmissionPolicy that adds a sidecar to Deployment `name` in this namespace when a write carries the operator's marker. */
function injectingPolicy(name: string): object[] {
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingAdmissionPolicy",
      metadata: { name: POLICY },
      spec: {
        matchConstraints: {
          resourceRules: [
            { apiGroups: ["apps"], apiVersions: ["v1"], operations: ["UPDATE"], resources: ["deployments"] },
          ],
        },
        matchConditions: [
          {
            name: "marked-target",
            expression: `object.metadata.name == '${name}' && has(object.metadata.annotations) && '${ANNOTATION_APPLIED_BY}' in object.metadata.annotations`,
          },
        ],
        failurePolicy: "Fail",
        reinvocationPolicy: "Never",
        mutations: [
          {
            patchType: "ApplyConfiguration",
            applyConfiguration: {
              expression:
                'Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: [Object.spec.template.spec.containers{name: "injected-proxy", image: "registry.example.com/proxy:1"}]}}}}',
            },
          },
        ],
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingAdmissionPolicyBinding",
      metadata: { name: POLICY },
      spec: {
        policyName: POLICY,
        matchResources: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": h.ns } } },
      },
    },
  ];
}

function removePolicy(): void {
  h.kube?.try(["delete", "mutatingadmissionpolicybinding,mutatingadmissionpolicy", POLICY, "--ignore-not-found"]);
}

describe("a rollout that produces another template", () => {
  test("a mutating admission policy adds a sidecar to the written template: Failed TemplateMismatch, and the new ReplicaSet runs the sidecar", async () => {
    await h.ready("Deployment", "injected", "nginx:1.27");
    for (const o of injectingPolicy("injected")) h.create(o);
    try {
      // The API server loads a new policy asynchronously: wait until a server-side dry run of a
      // marked write comes back with the sidecar.
      await eventually("the mutating admission policy in force", 60_000, () => {
        const probe = JSON.parse(
          h.kube.run([
            "annotate",
            "deployment/injected",
            "-n",
            h.ns,
            `${ANNOTATION_APPLIED_BY}=probe`,
            "--dry-run=server",
            "-o",
            "json",
          ]),
        ) as Obj;
        return names(template(probe)).includes("injected-proxy") || undefined;
      });
      const manifest = deployment("injected", [{ name: "app", image: "nginx:1.28" }], 2);
      const t = await h.run("injected", {
        action: "deploy",
        kind: "Deployment",
        target: "injected",
        payload: { manifest },
      });
      failed(
        t,
        "TemplateMismatch",
        "the template of Deployment injected is not the manifest's pod template: spec.containers: wanted [app], got [app, injected-proxy]",
      );
      expect(executed(t)).toBe(true);
      expect(t.status?.atbResult).toMatchObject({ allowed: true, riskTier: "HIGH" });
      // What the task reported is what the controller rolls out: a new ReplicaSet with the sidecar.
      await eventually("the injected template's ReplicaSet", 120_000, () => {
        const replicaSets = h.owned("ReplicaSet", h.get("Deployment", "injected"));
        const newest = replicaSets[replicaSets.length - 1];
        return revisionOf(newest) === 2 && names(template(newest)).join() === "app,injected-proxy" ? newest : undefined;
      });
    } finally {
      removePolicy();
    }
  });
});

test("at most once: one write per applied task, none after an operator restart", () => checkAtMostOnce(h));

test("no token leaks into logs, the broker's audit, events or task statuses", () => checkNoLeaks(h));
