// Post-build step: `npm run build` (Pepr's build, tools/module-build.ts) writes dist/pepr-module-<uuid>.yaml; this adds what Pepr's
// generator cannot express and writes dist/atb-operator.yaml, one file for `kubectl apply -f`:
//   * the CRDs: AgentTask (crds/agenttask.yaml), AgentTaskApproval (crds/agenttaskapproval.yaml)
//     and PeprStore (pepr's own definition, which the controller otherwise creates at start;
//     shipping it lets the RBAC name that one CRD);
//   * the scope admission policy (crds/agenttask-scope.yaml: ValidatingAdmissionPolicy and
//     binding) with its parameter ConfigMap written from the watcher's env (WATCH_NAMESPACE,
//     ATB_PROTECTED_NAMESPACES), so the policy refuses exactly the tasks the operator would not
//     process;
//   * the broker client certificate: Secret atb-operator-tls mounted read-only into the watcher
//     at TLS_MOUNT, where the module env (package.json "pepr".env) points TLS_*_FILE;
//   * hardening Pepr leaves out: seccompProfile RuntimeDefault on both pods, an explicit
//     readOnlyRootFilesystem: false (see docs/deployment.md: the controller writes /app), and the
//     Pod Security "restricted" labels on the namespace;
//   * a Service for the operator's own metrics port and a ServiceMonitor for it;
//   * with `--shards N` (N > 1), N watcher Deployments instead of one, `<watcher>-<i>` with
//     ATB_SHARDS=N and ATB_SHARD=i, each selecting its own pods by the label
//     atb.siemens.com/shard, and ATB_SHARDS=N on the admission Deployment, which stamps the
//     tasks' shard label (docs/deployment.md, "Shards"). The metrics Service selects them all.
// Pepr's own objects (RBAC, Secrets, webhooks, Services) pass through unchanged.
// Usage: npm run build && npm run manifests [-- --shards N] [--dist DIR] [--out FILE]   (docs/deployment.md)
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { isAbsolute, join } from "node:path";
import { dump, load, loadAll } from "js-yaml";
import { MAX_SHARDS, parseConfig } from "../capabilities/lib/config";
import { policyParamsConfigMap } from "../capabilities/lib/scope";
import { checkModule, imageProvided } from "./module-build";

export const NAMESPACE = "pepr-system";
export const TLS_SECRET = "atb-operator-tls";
export const TLS_MOUNT = "/etc/atb/tls";
export const TLS_VOLUME = "atb-broker-tls";
export const METRICS_PORT = 9464;
export const METRICS_SERVICE = "atb-operator-metrics";
export const OUTPUT = "atb-operator.yaml";
/**
 * LABEL_SHARD of crds/agenttask.ts, written out: that module loads pepr, and tests that import
 * this one must set Pepr's mode before pepr loads (tests/unit/shard.test.ts checks they agree).
 */
export const SHARD_LABEL = "atb.siemens.com/shard";
const PART_OF = { "app.kubernetes.io/name": "atb-operator", "app.kubernetes.io/part-of": "atb" };

/** The parts of a Kubernetes object this step reads or changes. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

interface Container {
  name: string;
  env?: { name: string; value?: string }[];
  ports?: { containerPort: number; name?: string }[];
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  [k: string]: unknown;
}

interface PodSpec {
  containers: Container[];
  securityContext?: Record<string, unknown>;
  volumes?: Record<string, unknown>[];
  [k: string]: unknown;
}

function podSpec(d: K8sObject): PodSpec {
  return (d as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

function controllerOf(d: K8sObject): string | undefined {
  return d.kind === "Deployment" ? d.metadata.labels?.["pepr.dev/controller"] : undefined;
}

/** Settings every container of the module must run with (docs/deployment.md, "Security measures"). */
export const CONTAINER_SECURITY = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  // Not permitted: Pepr 1.1.4's controller.js writes the module to /app/module-<sha>.js, next to
  // /app/node_modules, at every start (docs/deployment.md, "Read-only root filesystem").
  readOnlyRootFilesystem: false,
} as const;

function harden(d: K8sObject): void {
  const spec = podSpec(d);
  spec.securityContext = { ...spec.securityContext, runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } };
  for (const c of spec.containers) c.securityContext = { ...c.securityContext, ...CONTAINER_SECURITY };
}

function envOf(c: Container): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).map(e => [e.name, e.value]));
}

/** The watcher gets the broker certificate and the metrics port; its env must point at them. */
function wireWatcher(d: K8sObject): void {
  const spec = podSpec(d);
  const c = spec.containers[0];
  const env = envOf(c);
  const expected: Record<string, string> = {
    TLS_CERT_FILE: `${TLS_MOUNT}/tls.crt`,
    TLS_KEY_FILE: `${TLS_MOUNT}/tls.key`,
    TLS_CA_FILE: `${TLS_MOUNT}/ca.crt`,
    ATB_METRICS_HOST: "0.0.0.0",
    ATB_METRICS_PORT: String(METRICS_PORT),
  };
  for (const [name, value] of Object.entries(expected)) {
    if (env[name] !== value) {
      throw new Error(
        `watcher env ${name} is ${JSON.stringify(env[name])}, expected "${value}": set it in package.json "pepr".env and rebuild`,
      );
    }
  }
  if (!env.ATB_BROKER_URL) throw new Error('watcher env ATB_BROKER_URL is not set: set it in package.json "pepr".env');
  spec.volumes = [
    ...(spec.volumes ?? []).filter(v => v.name !== TLS_VOLUME),
    // 0440 + the pod's fsGroup: readable by the module's group only, not world-readable.
    { name: TLS_VOLUME, secret: { secretName: TLS_SECRET, defaultMode: 0o440, optional: false } },
  ];
  c.volumeMounts = [
    ...(c.volumeMounts ?? []).filter(m => m.name !== TLS_VOLUME),
    { name: TLS_VOLUME, mountPath: TLS_MOUNT, readOnly: true },
  ];
  c.ports = [
    ...(c.ports ?? []).filter(p => p.containerPort !== METRICS_PORT),
    { containerPort: METRICS_PORT, name: "metrics" },
  ];
}

function metricsService(watcherLabels: Record<string, string>): K8sObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: METRICS_SERVICE,
      namespace: NAMESPACE,
      labels: { ...PART_OF, "app.kubernetes.io/component": "metrics" },
    },
    spec: {
      selector: watcherLabels,
      ports: [{ name: "metrics", port: METRICS_PORT, targetPort: METRICS_PORT, protocol: "TCP" }],
    },
  };
}

function serviceMonitor(): K8sObject {
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "ServiceMonitor",
    metadata: { name: "atb-operator", namespace: NAMESPACE, labels: { ...PART_OF } },
    spec: {
      selector: { matchLabels: { ...PART_OF, "app.kubernetes.io/component": "metrics" } },
      namespaceSelector: { matchNames: [NAMESPACE] },
      endpoints: [{ port: "metrics", path: "/metrics", scheme: "http", interval: "30s" }],
    },
  };
}

export interface ExtraObjects {
  /** crds/agenttask.yaml */
  agentTaskCrd: K8sObject;
  /** crds/agenttaskapproval.yaml */
  approvalCrd: K8sObject;
  /** pepr's PeprStore CRD (pepr/src/lib/assets/store.ts) */
  peprStoreCrd: K8sObject;
  /** crds/agenttask-scope.yaml: the policy and its binding (its default ConfigMap is replaced). */
  scopePolicy: K8sObject[];
}

/**
 * The scope policy's objects for this install: the parameter ConfigMap from the settings the
 * watcher runs with (parsed as the operator parses them, so an invalid value fails here too),
 * then the policy and the binding, which must not exist before their parameters.
 */
export function scopeObjects(watcherEnv: Record<string, string | undefined>, policy: K8sObject[]): K8sObject[] {
  const kinds = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"];
  const found = kinds.map(k => policy.find(d => d?.kind === k));
  if (found.some(d => !d)) throw new Error(`crds/agenttask-scope.yaml must hold a ${kinds.join(" and a ")}`);
  return [policyParamsConfigMap(watcherConfig(watcherEnv)) as K8sObject, ...(found as K8sObject[])];
}

function watcherConfig(env: Record<string, string | undefined>): ReturnType<typeof parseConfig> {
  try {
    return parseConfig(env);
  } catch (err) {
    throw new Error(`watcher env: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function setEnv(c: Container, name: string, value: string): void {
  c.env = [...(c.env ?? []).filter(e => e.name !== name), { name, value }];
}

interface DeploymentSpec {
  selector: { matchLabels: Record<string, string> };
  template: { metadata: { labels?: Record<string, string> } };
}

/**
 * The watcher Deployment as `shards` Deployments from the same module: `<name>-<i>` runs shard i
 * (ATB_SHARDS, ATB_SHARD) and selects its pods by the shard label on top of Pepr's labels, so the
 * Deployments' selectors do not overlap; Pepr's labels stay, so the metrics Service selects them
 * all. Pure.
 */
export function shardedWatchers(watcher: K8sObject, shards: number): K8sObject[] {
  return Array.from({ length: shards }, (_, i) => {
    const d = structuredClone(watcher);
    const shard = { [SHARD_LABEL]: String(i) };
    d.metadata.name = `${watcher.metadata.name}-${i}`;
    d.metadata.labels = { ...d.metadata.labels, ...shard };
    const spec = (d as unknown as { spec: DeploymentSpec }).spec;
    spec.selector.matchLabels = { ...spec.selector.matchLabels, ...shard };
    spec.template.metadata.labels = { ...spec.template.metadata.labels, ...shard };
    for (const c of podSpec(d).containers) {
      setEnv(c, "ATB_SHARDS", String(shards));
      setEnv(c, "ATB_SHARD", String(i));
    }
    return d;
  });
}

/** The objects with the watcher as `shards` Deployments and ATB_SHARDS on the admission pods (as they are for 1). */
function withShards(docs: K8sObject[], watcher: K8sObject, shards: number): K8sObject[] {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS)
    throw new Error(`--shards: must be a whole number from 1 to ${MAX_SHARDS} (got ${shards})`);
  if (shards === 1) return docs;
  for (const d of docs.filter(x => controllerOf(x) === "admission"))
    for (const c of podSpec(d).containers) setEnv(c, "ATB_SHARDS", String(shards));
  return docs.flatMap(d => (d === watcher ? shardedWatchers(watcher, shards) : [d]));
}

export interface ManifestOptions {
  /** Watcher shards (1: Pepr's one watcher Deployment). */
  shards?: number;
}

/** Pure: Pepr's module objects in, the complete install out (namespace and CRDs first). */
export function buildManifests(moduleDocs: K8sObject[], extra: ExtraObjects, opts: ManifestOptions = {}): K8sObject[] {
  const docs = structuredClone(moduleDocs.filter(Boolean));
  const watcher = docs.find(d => controllerOf(d) === "watcher");
  if (!watcher)
    throw new Error("no watcher Deployment in the module manifests (does the module have Watch/Reconcile bindings?)");
  const ns = docs.find(d => d.kind === "Namespace" && d.metadata.name === NAMESPACE);
  if (!ns) throw new Error(`no Namespace ${NAMESPACE} in the module manifests`);
  // Pod Security Admission: pods that break the "restricted" profile are refused in this namespace.
  ns.metadata.labels = {
    ...ns.metadata.labels,
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
  };
  for (const d of docs) if (d.kind === "Deployment") harden(d);
  wireWatcher(watcher);
  const watcherLabels = (watcher as unknown as { spec: { selector: { matchLabels: Record<string, string> } } }).spec
    .selector.matchLabels;
  const scope = scopeObjects(envOf(podSpec(watcher).containers[0]), extra.scopePolicy);
  const rest = withShards(
    docs.filter(d => d !== ns),
    watcher,
    opts.shards ?? 1,
  );
  return [
    ns,
    extra.peprStoreCrd,
    extra.agentTaskCrd,
    extra.approvalCrd,
    ...scope,
    ...rest,
    metricsService(watcherLabels),
    serviceMonitor(),
  ];
}

// ---- RBAC: what the operator's ServiceAccount is granted, and the documented list ----------

export const SERVICE_ACCOUNT = "pepr-atb-operator";
export const RBAC_DOC = join("docs", "deployment.md");

/** One grant: API group ("" = core), resource (with /subresource), verb, resource name ("*" = any). */
export interface Grant {
  group: string;
  resource: string;
  verb: string;
  name: string;
  /** "cluster" (ClusterRole via ClusterRoleBinding) or the namespace of a Role. */
  scope: string;
}

export function grantKey(g: Grant): string {
  return `${g.scope} ${g.group || "core"} ${g.resource} ${g.verb} ${g.name}`;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** The cartesian product of a rule's lists, one Grant per (group, resource, verb, name). */
function expandRule(r: PolicyRule, scope: string): Grant[] {
  const names = r.resourceNames?.length ? r.resourceNames : ["*"];
  return (r.apiGroups ?? []).flatMap(group =>
    (r.resources ?? []).flatMap(resource =>
      (r.verbs ?? []).flatMap(verb => names.map(name => ({ group, resource, verb, name, scope }))),
    ),
  );
}

function expand(rules: PolicyRule[], scope: string): Grant[] {
  return rules.flatMap(r => expandRule(r, scope));
}

function boundTo(binding: K8sObject, sa: string, namespace: string): boolean {
  const subjects = (binding.subjects ?? []) as { kind: string; name: string; namespace?: string }[];
  return subjects.some(s => s.kind === "ServiceAccount" && s.name === sa && s.namespace === namespace);
}

/** Every grant the ServiceAccount receives through the RBAC objects in docs (bindings followed). */
export function rbacGrants(docs: K8sObject[], sa = SERVICE_ACCOUNT, namespace = NAMESPACE): Grant[] {
  const roles = new Map(
    docs
      .filter(d => /Role$/.test(d.kind) && !/Binding/.test(d.kind))
      .map(d => [`${d.kind}/${d.metadata.namespace ?? ""}/${d.metadata.name}`, d]),
  );
  const out: Grant[] = [];
  for (const b of docs.filter(d => d.kind === "ClusterRoleBinding" || d.kind === "RoleBinding")) {
    if (!boundTo(b, sa, namespace)) continue;
    const ref = b.roleRef as { kind: string; name: string };
    const ns = ref.kind === "ClusterRole" ? "" : (b.metadata.namespace ?? "");
    const role = roles.get(`${ref.kind}/${ns}/${ref.name}`);
    if (!role)
      throw new Error(`${b.kind} ${b.metadata.name} refers to ${ref.kind} ${ref.name}, which is not in the manifests`);
    out.push(
      ...expand(
        (role.rules ?? []) as PolicyRule[],
        b.kind === "ClusterRoleBinding" ? "cluster" : (b.metadata.namespace ?? ""),
      ),
    );
  }
  return out;
}

const RULE_FIELDS = ["apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"] as const;

function ruleWildcards(d: K8sObject): string[] {
  return ((d.rules ?? []) as PolicyRule[]).flatMap((r, i) =>
    RULE_FIELDS.filter(f => (r[f] ?? []).some(v => v.includes("*"))).map(
      f => `${d.kind} ${d.metadata.name} rule ${i} ${f}`,
    ),
  );
}

/** "*" anywhere in any Role/ClusterRole rule (bound or not), and cluster-admin bindings. */
export function rbacWildcards(docs: K8sObject[]): string[] {
  const found: string[] = [];
  for (const d of docs) {
    if (/Role$/.test(d.kind) && !/Binding/.test(d.kind)) found.push(...ruleWildcards(d));
    if (/Binding$/.test(d.kind) && (d.roleRef as { name?: string })?.name === "cluster-admin") {
      found.push(`${d.kind} ${d.metadata.name} binds cluster-admin`);
    }
  }
  return found;
}

/**
 * The documented list: the RBAC table in docs/deployment.md (between the rbac-table markers),
 * one row per rule: | API group | Resource | Verbs | Names | Scope | Added by | Why |.
 */
export function documentedGrants(markdown: string): Grant[] {
  const m = /<!-- rbac-table:start -->([\s\S]*?)<!-- rbac-table:end -->/.exec(markdown);
  if (!m) throw new Error(`${RBAC_DOC} has no <!-- rbac-table:start --> ... <!-- rbac-table:end --> block`);
  const rows = m[1]
    .split("\n")
    .filter(l => l.trim().startsWith("|"))
    .slice(2); // header and separator
  const out: Grant[] = [];
  for (const row of rows) {
    const cells = row
      .split("|")
      .slice(1, -1)
      .map(c => c.trim().replace(/`/g, ""));
    if (cells.length < 7) throw new Error(`RBAC table row has ${cells.length} cells, expected 7: ${row}`);
    const [group, resource, verbs, names, scope, , why] = cells;
    if (!why) throw new Error(`RBAC table row without a reason: ${row}`);
    const g = group === "core" || group === '""' ? "" : group;
    const verbList = verbs
      .split(",")
      .map(v => v.trim())
      .filter(Boolean);
    const nameList = names === "any" ? ["*"] : names.split(",").map(n => n.trim());
    out.push(
      ...expandRule(
        { apiGroups: [g], resources: [resource], verbs: verbList, resourceNames: nameList.filter(n => n !== "*") },
        scope,
      ),
    );
  }
  return out;
}

/** Differences between two grant lists, as readable keys (empty when they are equal as sets). */
export function grantDiff(actual: Grant[], documented: Grant[]): { undocumented: string[]; missing: string[] } {
  const a = new Set(actual.map(grantKey));
  const d = new Set(documented.map(grantKey));
  return { undocumented: [...a].filter(k => !d.has(k)).sort(), missing: [...d].filter(k => !a.has(k)).sort() };
}

/** The post-build gate: no wildcard, and exactly the documented grants. Throws otherwise. */
export function checkRbac(docs: K8sObject[], markdown: string): void {
  const wild = rbacWildcards(docs);
  if (wild.length) throw new Error(`wildcards in RBAC: ${wild.join("; ")}`);
  const { undocumented, missing } = grantDiff(rbacGrants(docs), documentedGrants(markdown));
  if (undocumented.length || missing.length) {
    throw new Error(
      `RBAC differs from the table in ${RBAC_DOC}:` +
        (undocumented.length ? ` granted but not documented: ${undocumented.join(", ")};` : "") +
        (missing.length ? ` documented but not granted: ${missing.join(", ")}` : ""),
    );
  }
}

export function moduleManifestPath(root: string, dist = join(root, "dist")): string {
  const uuid = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { pepr: { uuid: string } }).pepr.uuid;
  const file = join(dist, `pepr-module-${uuid}.yaml`);
  if (!readdirSync(dist).includes(`pepr-module-${uuid}.yaml`)) {
    throw new Error(`${file} does not exist: run \`npm run build\` first`);
  }
  return file;
}

/**
 * The module the Secret ships is the one `npm run build` makes: Pepr, kubernetes-fluent-client and
 * client-node inside, nothing required that the controller image lacks (tools/module-build.ts).
 * Plain `npx pepr build` makes a module that works but loads those from the image: ~20 MiB more.
 */
export function checkShippedModule(moduleDocs: K8sObject[], provided: readonly string[]): void {
  const secret = moduleDocs.find(d => d?.kind === "Secret" && d.metadata.name.endsWith("-module"));
  const data = (secret as { data?: Record<string, string> } | undefined)?.data ?? {};
  const key = Object.keys(data).find(k => /^module-[0-9a-f]{64}\.js\.gz$/.test(k));
  if (!secret || !key) throw new Error("the Pepr output holds no module Secret with a module-<sha256>.js.gz entry");
  const code = gunzipSync(Buffer.from(data[key]!, "base64")).toString("utf8");
  const problems = checkModule(code, provided);
  if (problems.length) throw new Error(`module Secret ${secret.metadata.name}: ${problems.join("; ")}`);
}

export async function peprStoreCrd(): Promise<K8sObject> {
  // Pepr's own definition, as `pepr deploy` and the controller apply it. A non-literal specifier
  // keeps tsc from type-checking pepr's sources under this project's stricter settings.
  const specifier: string = "pepr/src/lib/assets/store";
  const m = (await import(specifier)) as { peprStoreCRD: K8sObject };
  return structuredClone(m.peprStoreCRD);
}

/** What the command line says besides the manifests' options: where to read and write. */
export interface Paths {
  /** The output of `npm run build` (tools/module-build.ts --out DIR); default dist/. */
  dist?: string;
  /** Default <dist>/atb-operator.yaml. */
  out?: string;
}

/** The command line: `--shards N`, `--dist DIR`, `--out FILE` (default <dist>/atb-operator.yaml). */
export function parseArgs(argv: string[]): ManifestOptions & Paths {
  const out: ManifestOptions & Paths = {};
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--shards" && value !== undefined && /^\d+$/.test(value)) out.shards = Number(value);
    else if (flag === "--out" && value) out.out = value;
    else if (flag === "--dist" && value) out.dist = value;
    else throw new Error(`unknown or incomplete argument "${flag}" (usage: [--shards N] [--dist DIR] [--out FILE])`);
    i++;
  }
  return out;
}

export async function main(root = join(__dirname, ".."), opts: ManifestOptions & Paths = {}): Promise<string> {
  const at = (p: string) => (isAbsolute(p) ? p : join(root, p));
  const dist = opts.dist ? at(opts.dist) : join(root, "dist");
  const moduleDocs = loadAll(readFileSync(moduleManifestPath(root, dist), "utf8")) as K8sObject[];
  checkShippedModule(moduleDocs, imageProvided(root));
  const crdDocs = loadAll(readFileSync(join(root, "crds", "agenttask.yaml"), "utf8")) as K8sObject[];
  const agentTaskCrd = crdDocs.find(d => d?.kind === "CustomResourceDefinition");
  if (!agentTaskCrd) throw new Error("crds/agenttask.yaml holds no CustomResourceDefinition");
  const approvalCrd = load(readFileSync(join(root, "crds", "agenttaskapproval.yaml"), "utf8")) as K8sObject;
  const scopePolicy = loadAll(readFileSync(join(root, "crds", "agenttask-scope.yaml"), "utf8")) as K8sObject[];
  const out = buildManifests(
    moduleDocs,
    {
      agentTaskCrd,
      approvalCrd,
      peprStoreCrd: await peprStoreCrd(),
      scopePolicy,
    },
    opts,
  );
  checkRbac(out, readFileSync(join(root, RBAC_DOC), "utf8"));
  const file = opts.out ? at(opts.out) : join(dist, OUTPUT);
  const header =
    "# Generated by tools/manifests.ts from the output of `npm run build`; do not edit.\n" +
    "# Install: kubectl apply --server-side -f dist/atb-operator.yaml (docs/deployment.md; the Secret\n" +
    "# atb-operator-tls must exist in pepr-system).\n";
  writeFileSync(file, header + out.map(d => dump(d, { lineWidth: -1, noRefs: true })).join("---\n"));
  return file;
}

if (require.main === module) {
  Promise.resolve()
    .then(() => main(undefined, parseArgs(process.argv.slice(2))))
    .then(
      file => console.log(`wrote ${file}`),
      (err: unknown) => {
        console.error(`manifests: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
}
