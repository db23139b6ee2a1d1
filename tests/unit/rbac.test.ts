// Least privilege (the least-privilege invariant, docs/invariants.md): the RBAC that `npx pepr
// build` produces from package.json ("rbacMode": "scoped" + "rbac") has no wildcard, equals the
// documented list (the table in docs/deployment.md) verb by verb, and equals what the code needs:
// each action's target kinds (GET + PATCH) and declared grants (rollback's history lists), the
// pipeline's task reads and status patches, Events, and what Pepr itself needs. The built manifests
// are checked the same way, and on a real API server, by tests/e2e/manifests.test.ts.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { Capability } from "pepr";
import type { ActionModule, ActionRegistry } from "../../capabilities/lib/action";
import {
  documentedGrants,
  grantDiff,
  grantKey,
  rbacGrants,
  rbacWildcards,
  type Grant,
  type K8sObject,
} from "../../tools/manifests";

const root = join(__dirname, "..", "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  pepr: { uuid: string; rbacMode?: string; rbac?: PolicyRule[] };
};
const markdown = readFileSync(join(root, "docs", "deployment.md"), "utf8");

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

interface BindingLike {
  isWatch?: boolean;
  isFinalize?: boolean;
  kind: { group: string; version?: string; kind: string; plural?: string };
}

/**
 * Pepr 1.1.4's scoped mode, as in node_modules/pepr/src/lib/helpers.ts (createRBACMap) and
 * src/lib/assets/rbac.ts (clusterRole): store and CRD rules for any module with bindings, `watch`
 * on every watched kind, `patch` for Finalize; then the package.json rules first, merged per
 * (apiGroups, resources) with the verbs unioned and the first rule's other fields kept.
 */
function peprScopedClusterRole(bindings: BindingLike[], custom: PolicyRule[]): PolicyRule[] {
  const map: Record<string, { verbs: string[]; plural: string }> = {};
  for (const b of bindings) {
    map["pepr.dev/v1/peprstore"] = { verbs: ["create", "get", "patch", "watch"], plural: "peprstores" };
    map["apiextensions.k8s.io/v1/customresourcedefinition"] = {
      verbs: ["patch", "create"],
      plural: "customresourcedefinitions",
    };
    const key = `${b.kind.group}/${b.kind.version}/${b.kind.kind}`;
    const plural = b.kind.plural || `${b.kind.kind.toLowerCase()}s`;
    if (!map[key] && b.isWatch) map[key] = { verbs: ["watch"], plural };
    if (b.isFinalize) map[key] = { verbs: ["patch"], plural };
  }
  const scoped = Object.entries(map).map(([key, v]) => ({
    apiGroups: [key.split("/").length < 3 ? "" : key.split("/")[0]],
    resources: [v.plural],
    verbs: v.verbs,
  }));
  const merged: Record<string, PolicyRule> = {};
  for (const r of [...custom, ...scoped]) {
    const k = `${r.apiGroups}/${r.resources}`;
    merged[k] = merged[k] ? { ...merged[k], verbs: [...new Set([...merged[k].verbs, ...r.verbs])] } : { ...r };
  }
  return Object.values(merged);
}

/** The module's RBAC objects as scoped mode builds them (ClusterRole + binding to the module SA). */
function builtRbac(rules: PolicyRule[]): K8sObject[] {
  const name = `pepr-${pkg.pepr.uuid}`;
  return [
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name }, rules },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: "pepr-system" }],
    },
  ];
}

type Resources = Record<string, { group: string; plural: string }>;
let RESOURCES: Resources = {};
let ROLLOUT_KINDS: readonly string[] = [];
let actions: ActionModule[] = [];
let bindings: BindingLike[] = [];

beforeAll(() => {
  // Register watch bindings as `pepr build` does (Pepr reads this when it is first loaded).
  process.env.PEPR_MODE = "build";
  // Everything that loads pepr is required here, after the variable is set.
  RESOURCES = (require("../../capabilities/lib/kube") as { RESOURCES: Resources }).RESOURCES;
  ({ ROLLOUT_KINDS } = require("../../capabilities/lib/kube/rollout") as { ROLLOUT_KINDS: readonly string[] });
  const { parseConfig } = require("../../capabilities/lib/config") as { parseConfig: (env: object) => object };
  const registry = require("../../capabilities/registry") as {
    ACTION_MODULES: readonly ActionModule[];
    actions: ActionRegistry;
  };
  const { agentTaskCapability } = require("../../capabilities/agent-task") as {
    agentTaskCapability: (o: object) => Capability;
  };
  actions = [...registry.ACTION_MODULES];
  const caps = [
    agentTaskCapability({ actions: registry.actions, config: parseConfig({}) }),
    ...actions.map(m => m.capability),
  ];
  bindings = caps.flatMap(c => c.bindings as unknown as BindingLike[]);
});

afterAll(() => {
  delete process.env.PEPR_MODE;
});

const cluster = (group: string, resource: string, verbs: string[], name = "*"): Grant[] =>
  verbs.map(verb => ({ group, resource, verb, name, scope: "cluster" }));

/**
 * What the operator's own code calls (see capabilities/lib/kube/client.ts: every call goes through
 * it). Targets are not in it: they are reached as the namespace's executor (executorNeeds).
 */
function codeNeeds(): Grant[] {
  const out: Grant[] = [
    // the pipeline re-reads the task; the runtime sweeps (LIST) and deletes finished tasks after
    // their TTL; the status writer patches status and posts Events
    ...cluster("atb.siemens.com", "agenttasks", ["get", "list", "delete"]),
    ...cluster("atb.siemens.com", "agenttasks/status", ["patch"]),
    ...cluster("", "events", ["create"]),
    // the executor check reads the ServiceAccount, and every target request impersonates it
    ...cluster("", "serviceaccounts", ["get", "impersonate"], "atb-executor"),
    // a Plan task's creator may get the target? (SubjectAccessReview, before the target is read)
    ...cluster("authorization.k8s.io", "subjectaccessreviews", ["create"]),
  ];
  // Pepr's Reconcile binding: kfc's Watch lists, then watches.
  for (const b of bindings.filter(x => x.isWatch))
    out.push(...cluster(b.kind.group, b.kind.plural!, ["list", "watch"]));
  return out;
}

/**
 * What the actions do as the executor: GET the target to plan and verify, PATCH it (after a dry
 * run), WATCH the kinds that roll out (lib/kube/object-watch.ts follows a rollout through one
 * watch per namespace and kind), their declared reads.
 */
function executorNeeds(): Grant[] {
  const out: Grant[] = [];
  for (const a of actions) {
    for (const kind of a.kinds) {
      const verbs = ROLLOUT_KINDS.includes(kind) ? ["get", "patch", "watch"] : ["get", "patch"];
      out.push(...cluster(RESOURCES[kind].group, RESOURCES[kind].plural, verbs));
    }
    for (const g of a.grants) out.push(...cluster(RESOURCES[g.kind].group, RESOURCES[g.kind].plural, g.verbs));
  }
  return out;
}

/** What Pepr's runtime calls: its store (GET/SSA/patch, Watch = LIST + WATCH) and the PeprStore CRD apply. */
function peprNeeds(): Grant[] {
  return [
    ...cluster("pepr.dev", "peprstores", ["create", "get", "list", "patch", "watch"]),
    ...cluster("apiextensions.k8s.io", "customresourcedefinitions", ["create", "patch"], "peprstores.pepr.dev"),
  ];
}

const unique = (gs: Grant[]): string[] => [...new Set(gs.map(grantKey))].sort();

describe("package.json RBAC", () => {
  test("uses Pepr's scoped mode with explicit rules and no wildcard", () => {
    expect(pkg.pepr.rbacMode).toBe("scoped");
    expect(pkg.pepr.rbac?.length).toBeGreaterThan(0);
    expect(JSON.stringify(pkg.pepr.rbac)).not.toContain("*");
  });

  test("the model of Pepr's scoped mode matches pepr 1.1.4's source", () => {
    const helpers = readFileSync(join(root, "node_modules", "pepr", "src", "lib", "helpers.ts"), "utf8");
    expect(helpers).toContain('verbs: ["create", "get", "patch", "watch"],\n        plural: "peprstores"');
    expect(helpers).toContain('verbs: ["patch", "create"],\n        plural: "customresourcedefinitions"');
    expect(helpers).toMatch(/if \(!acc\[key\] && binding\.isWatch\) \{\s+acc\[key\] = \{\s+verbs: \["watch"\]/);
    const rbac = readFileSync(join(root, "node_modules", "pepr", "src", "lib", "assets", "rbac.ts"), "utf8");
    expect(rbac).toContain("const mergedRBAC = [...(Array.isArray(customRbac) ? customRbac : []), ...scopedRules];");
    expect(rbac).toContain("deduper[key] = { ...rule, verbs: rule.verbs || [] };");
  });

  test("the module watches AgentTasks and AgentTaskApprovals only", () => {
    const watched = new Set(bindings.filter(b => b.isWatch).map(b => `${b.kind.group}/${b.kind.plural}`));
    expect([...watched]).toEqual(["atb.siemens.com/agenttasks", "atb.siemens.com/agenttaskapprovals"]);
  });

  test("the built ClusterRole has no wildcard and grants exactly the documented list", () => {
    const docs = builtRbac(peprScopedClusterRole(bindings, pkg.pepr.rbac ?? []));
    expect(rbacWildcards(docs)).toEqual([]);
    const documented = documentedGrants(markdown);
    expect(documented.length).toBeGreaterThan(10);
    expect(grantDiff(rbacGrants(docs), documented)).toEqual({ undocumented: [], missing: [] });
  });

  test("the documented list is exactly what the code and Pepr's runtime call", () => {
    expect(unique(documentedGrants(markdown))).toEqual(unique([...codeNeeds(), ...peprNeeds()]));
  });

  test("every row of the table has a reason and says who adds it", () => {
    const block = /<!-- rbac-table:start -->([\s\S]*?)<!-- rbac-table:end -->/.exec(markdown)![1];
    const rows = block
      .split("\n")
      .filter(l => l.startsWith("|"))
      .slice(2);
    expect(rows.length).toBe(8);
    for (const r of rows) {
      const cells = r
        .split("|")
        .slice(1, -1)
        .map(c => c.trim());
      expect(cells[5]).toMatch(/package\.json|Pepr/);
      expect(cells[6].length).toBeGreaterThan(15);
    }
  });
});

describe("the executor's Roles (tools/executor.ts)", () => {
  // Loaded inside the tests: the module loads pepr, which must see PEPR_MODE=build first (beforeAll).
  const executor = () => require("../../tools/executor") as typeof import("../../tools/executor");
  const executorRules: typeof import("../../tools/executor").executorRules = (m, b) => executor().executorRules(m, b);
  const asGrants = (rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[]): string[] =>
    unique(rules.flatMap(r => cluster(r.apiGroups[0], r.resources[0], r.verbs)));

  test("all-actions is exactly what the actions call, with no wildcard", () => {
    const rules = executorRules(actions, "all-actions");
    expect(JSON.stringify(rules)).not.toContain("*");
    expect(asGrants(rules)).toEqual(unique(executorNeeds()));
  });

  test("no-secrets is all-actions without Secrets; scale-only reaches the scale action's kinds only", () => {
    const all = asGrants(executorRules(actions, "all-actions"));
    expect(asGrants(executorRules(actions, "no-secrets"))).toEqual(all.filter(g => !g.includes(" secrets ")));
    expect(asGrants(executorRules(actions, "scale-only"))).toEqual(
      unique(
        ["deployments", "statefulsets", "replicasets"].flatMap(p => cluster("apps", p, ["get", "patch", "watch"])),
      ),
    );
    expect(executor().BOUNDS).toEqual(["all-actions", "no-secrets", "scale-only"]);
  });

  test("watch only on the workload kinds that roll out: never on ConfigMaps, Secrets or Services", () => {
    const watched = executorRules(actions, "all-actions")
      .filter(r => r.verbs.includes("watch"))
      .map(r => r.resources[0])
      .sort();
    expect(watched).toEqual(["daemonsets", "deployments", "replicasets", "statefulsets"]);
  });

  test("the operator's own ClusterRole reaches no target kind", () => {
    const own = new Set(documentedGrants(markdown).map(g => g.resource));
    for (const g of executorNeeds()) expect(own).not.toContain(g.resource);
  });
});

describe("the checks can fail", () => {
  test("an extra verb, a dropped verb and a wildcard are all reported", () => {
    const rules = peprScopedClusterRole(bindings, pkg.pepr.rbac ?? []);
    const extra = rules.map(r => (r.resources[0] === "events" ? { ...r, verbs: [...r.verbs, "patch"] } : r));
    expect(grantDiff(rbacGrants(builtRbac(extra)), documentedGrants(markdown)).undocumented).toEqual([
      "cluster core events patch *",
    ]);
    const fewer = rules.filter(r => r.resources[0] !== "events");
    expect(grantDiff(rbacGrants(builtRbac(fewer)), documentedGrants(markdown)).missing).toEqual([
      "cluster core events create *",
    ]);
    const wild = [...rules, { apiGroups: ["apps"], resources: ["*"], verbs: ["get"] }];
    expect(rbacWildcards(builtRbac(wild))).toEqual([`ClusterRole pepr-atb-operator rule ${rules.length} resources`]);
  });

  test("a rule bound to another ServiceAccount grants the operator nothing", () => {
    const docs = builtRbac([{ apiGroups: [""], resources: ["pods"], verbs: ["get"] }]);
    (docs[1].subjects as { name: string }[])[0].name = "someone-else";
    expect(rbacGrants(docs)).toEqual([]);
  });
});

describe("the code's API calls (tripwire for new verbs)", () => {
  function sources(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap(e =>
      e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
    );
  }
  const files = sources(join(root, "capabilities")).filter(f => !f.endsWith(join("lib", "kube", "client.ts")));

  test("no PUT anywhere; the only DELETE is the TTL's (runtime/ttl.ts), the only POSTs the Event in status/writer.ts, deploy's create and the SubjectAccessReview", () => {
    const hits: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/method:\s*"(POST|PUT|DELETE)"/g)) hits.push(`${relative(root, f)} ${m[1]}`);
    }
    // broker-transport.ts POSTs to the broker (not the Kubernetes API). deploy/plan.ts creates a
    // missing target only with ATB_ALLOW_CREATE=true, and `create` on workloads is deliberately not
    // granted (docs/deployment.md, "Not granted"): without it the API server answers 403.
    // runtime/ttl.ts deletes finished AgentTasks after their TTL (and nothing else).
    expect(hits.sort()).toEqual([
      "capabilities/deploy/plan.ts POST",
      "capabilities/lib/broker/transport.ts POST",
      "capabilities/lib/pipeline/access-review.ts POST",
      "capabilities/lib/runtime/ttl.ts DELETE",
      "capabilities/lib/status/writer.ts POST",
    ]);
    const sw = readFileSync(join(root, "capabilities", "lib", "status", "writer.ts"), "utf8");
    expect(sw).toMatch(/method: "POST", path: resourcePath\("Event", namespace\)/);
    const sar = readFileSync(join(root, "capabilities", "lib", "pipeline", "access-review.ts"), "utf8");
    expect(sar).toMatch(/method: "POST", path: SAR_PATH/);
    expect(sar).toContain('SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"');
    const ttl = readFileSync(join(root, "capabilities", "lib", "runtime", "ttl.ts"), "utf8");
    expect(ttl).toMatch(/method: "DELETE",\s+path: resourcePath\("AgentTask", t\.namespace, t\.name\)/);
  });

  test("every kind named in a resourcePath() or history() call is covered by the documented list", () => {
    const documented = new Set(documentedGrants(markdown).map(g => g.resource));
    const named = new Set<string>();
    for (const f of files) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/(?:resourcePath|history)\((?:ctx, )?"(\w+)"/g)) named.add(m[1]);
    }
    expect([...named].sort()).toEqual([
      "AgentTask",
      "AgentTaskApproval",
      "ControllerRevision",
      "Deployment",
      "Event",
      "ReplicaSet",
      "Secret",
      "ServiceAccount",
    ]);
    // Targets and their history are the executor's (all-actions Role); the rest the operator's own.
    const executor = new Set(executorNeeds().map(g => g.resource));
    for (const kind of named) expect([...documented, ...executor]).toContain(RESOURCES[kind].plural);
    // Pods are in RESOURCES but no code path reads them; the RBAC does not grant them.
    expect(documented).not.toContain("pods");
  });
});
