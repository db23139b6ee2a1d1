// GIVEN the real API server with RBAC, the reference broker over mTLS with real OPA, and the
// operator under its own ServiceAccount (which holds no access to targets), WHEN tasks run in
// namespaces whose executors differ (everything the actions need; only the scale action's kinds;
// a Role that may read ConfigMaps but not change them; no executor at all), THEN every read, dry
// run and write of a target is made as the namespace's executor (the API server's audit log shows
// it as the impersonated user, with the operator as the user), what the executor's Role allows
// Completes with `status.executedAs`, what it does not allow Fails `ExecutorForbidden` naming the
// verb, the resource and the namespace with nothing written, and a namespace without an executor
// Fails `ExecutorMissing` with the command that creates one, before anything of the target is read.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { USER_AGENT } from "../../capabilities/lib/kube";
import { executorObjects, toYaml } from "../../tools/executor";
import { agentTask, mintTaskToken, workload } from "../../tools/objects";
import { startStack, type Stack } from "../../tools/stack";
import { auditEvents, type AuditEvent } from "../helpers/audit";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";
import { scanForSecrets } from "../helpers/secrets";

const cluster = e2eCluster();
const ID = randomBytes(3).toString("hex");
const FULL = `exec-full-${ID}`;
const SCALE = `exec-scale-${ID}`;
const READ = `exec-read-${ID}`;
const NONE = `exec-none-${ID}`;
const AGENT = "spiffe://atb.example.com/agent/ops-agent";
const executor = (ns: string) => `system:serviceaccount:${ns}:atb-executor`;
const minted: string[] = [];

let stack: Stack;
let kube: Kube;

interface Task {
  metadata: { uid: string };
  status?: {
    phase?: string;
    message?: string;
    executedAs?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}
interface Obj {
  metadata: { resourceVersion: string };
  spec?: { replicas?: number };
  data?: Record<string, string>;
}

interface Run {
  action: string;
  target: { kind: string; name: string };
  payload: unknown;
  approvers?: string[];
}

async function run(ns: string, name: string, r: Run): Promise<Task> {
  const { action, target, payload, approvers = [] } = r;
  const t = { ...target, namespace: ns };
  const poaToken = await mintTaskToken(stack, { agent: AGENT, action, target: t, approvers, payload });
  minted.push(poaToken);
  const created = kube.create(agentTask({ name, namespace: ns, agentId: AGENT, poaToken, action, target: t, payload }));
  expect(created.stderr).toBe("");
  return eventually(`task ${ns}/${name} terminal`, 120_000, () => {
    const task = kube.get<Task>("agenttask", name, ns);
    return ["Completed", "Denied", "Failed"].includes(task.status?.phase ?? "") ? task : undefined;
  });
}

/** The operator's requests the API server recorded for one object (the audit policy records writes, and ConfigMap reads). */
function operatorRequests(ns: string, resource: string, name: string): AuditEvent[] {
  return auditEvents(cluster.dataDir).filter(
    e =>
      e.stage === "ResponseComplete" &&
      e.userAgent?.startsWith(USER_AGENT) &&
      e.objectRef?.namespace === ns &&
      e.objectRef?.resource === resource &&
      e.objectRef?.name === name,
  );
}

const reasonOf = (t: Task) => t.status?.conditions?.find(c => c.type === "Succeeded")?.reason;

beforeAll(async () => {
  stack = await startStack({
    cluster,
    workDir: join(cluster.dataDir, `stack-executor-${ID}`),
    namespaces: [FULL, SCALE, READ, NONE],
    executors: { [SCALE]: "scale-only", [READ]: "none", [NONE]: "none" },
  });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  // READ's executor: a Role that may read ConfigMaps and nothing else (written by hand, as a platform team would).
  kube.run(
    ["apply", "-f", "-"],
    toYaml(executorObjects(READ, [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get"] }])),
  );
  for (const ns of [FULL, SCALE, READ, NONE]) {
    kube.applyObject(workload({ kind: "Deployment", name: "web", namespace: ns, image: "nginx:1.27" }));
    kube.applyObject({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "flags", namespace: ns },
      data: { mode: "old" },
    });
  }
}, 180_000);

afterAll(async () => stack?.stop());

test("an executor with every grant: the change is made as the executor, and the audit log shows it impersonated", async () => {
  const t = await run(FULL, "scale-full", {
    action: "scale",
    target: { kind: "Deployment", name: "web" },
    payload: { replicas: 3 },
  });
  expect([t.status?.phase, t.status?.executedAs]).toEqual(["Completed", executor(FULL)]);
  expect(kube.get<Obj>("deployment", "web", FULL).spec?.replicas).toBe(3);

  const c = await run(FULL, "config-full", {
    action: "update-config",
    target: { kind: "ConfigMap", name: "flags" },
    payload: { data: { mode: "new" } },
    approvers: ["alice@example.com"],
  });
  expect([c.status?.phase, c.status?.executedAs]).toEqual(["Completed", executor(FULL)]);
  expect(kube.get<Obj>("configmap", "flags", FULL).data).toEqual({ mode: "new" });

  // Every request of the operator to these targets (the Deployment's writes; the ConfigMap's
  // reads, dry run and write) was authorized as the executor, the operator itself named as user.
  const seen = [...operatorRequests(FULL, "deployments", "web"), ...operatorRequests(FULL, "configmaps", "flags")];
  expect(seen.filter(e => e.verb === "patch").length).toBeGreaterThanOrEqual(2);
  expect(seen.some(e => e.verb === "get")).toBe(true);
  for (const e of seen) {
    expect(e.impersonatedUser?.username).toBe(executor(FULL));
    expect(e.user?.username).toBe(stack.operatorIdentity.username);
  }
});

test("an executor bounded to scaling: scale Completes, update-config or a patch of a ConfigMap Fails ExecutorForbidden with nothing written", async () => {
  const s = await run(SCALE, "scale-ok", {
    action: "scale",
    target: { kind: "Deployment", name: "web" },
    payload: { replicas: 4 },
  });
  expect([s.status?.phase, s.status?.executedAs]).toEqual(["Completed", executor(SCALE)]);

  const before = kube.get<Obj>("configmap", "flags", SCALE);
  const t = await run(SCALE, "config-denied", {
    action: "update-config",
    target: { kind: "ConfigMap", name: "flags" },
    payload: { data: { mode: "new" } },
    approvers: ["alice@example.com"],
  });
  expect([t.status?.phase, reasonOf(t)]).toEqual(["Failed", "ExecutorForbidden"]);
  expect(t.status?.message).toContain(`the executor ${executor(SCALE)} may not get configmaps in namespace ${SCALE}`);
  const after = kube.get<Obj>("configmap", "flags", SCALE);
  expect([after.metadata.resourceVersion, after.data]).toEqual([before.metadata.resourceVersion, { mode: "old" }]);
  // The same for a JSON patch of the ConfigMap (HIGH: two approvers), which the policy would allow.
  const p = await run(SCALE, "patch-denied", {
    action: "patch",
    target: { kind: "ConfigMap", name: "flags" },
    payload: { patch: [{ op: "replace", path: "/data/mode", value: "patched" }] },
    approvers: ["alice@example.com", "bob@example.com"],
  });
  expect([p.status?.phase, reasonOf(p)]).toEqual(["Failed", "ExecutorForbidden"]);
  expect(p.status?.message).toContain(`may not get configmaps in namespace ${SCALE}`);
  expect(kube.get<Obj>("configmap", "flags", SCALE).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  // The API server refused the executor's read (403): the operator tried nothing else on it.
  // Each task's read was refused (asked twice: a 403 is asked again once) and nothing else was tried.
  const seen = operatorRequests(SCALE, "configmaps", "flags");
  expect(seen.map(e => [e.verb, e.responseStatus?.code, e.impersonatedUser?.username])).toEqual(
    Array(4).fill(["get", 403, executor(SCALE)]),
  );
});

test("an executor that may read but not change: the dry run is refused, ExecutorForbidden names patch, nothing written", async () => {
  const before = kube.get<Obj>("configmap", "flags", READ);
  const t = await run(READ, "config-readonly", {
    action: "update-config",
    target: { kind: "ConfigMap", name: "flags" },
    payload: { data: { mode: "new" } },
    approvers: ["alice@example.com"],
  });
  expect([t.status?.phase, reasonOf(t)]).toEqual(["Failed", "ExecutorForbidden"]);
  expect(t.status?.message).toContain(`may not patch configmaps in namespace ${READ}`);
  expect(kube.get<Obj>("configmap", "flags", READ).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  const seen = operatorRequests(READ, "configmaps", "flags");
  expect(seen.map(e => [e.verb, e.responseStatus?.code])).toEqual([
    ["get", 200],
    ["patch", 403],
    ["patch", 403],
  ]);
  expect(seen[1].requestURI).toContain("dryRun=All");
  expect(seen[2].requestURI).toContain("dryRun=All");
});

test("a namespace without an executor: ExecutorMissing with the command that creates one, nothing of the target read", async () => {
  const t = await run(NONE, "config-none", {
    action: "update-config",
    target: { kind: "ConfigMap", name: "flags" },
    payload: { data: { mode: "new" } },
    approvers: ["alice@example.com"],
  });
  expect([t.status?.phase, reasonOf(t)]).toEqual(["Failed", "ExecutorMissing"]);
  expect(t.status?.message).toContain(`namespace ${NONE} has no executor ServiceAccount atb-executor`);
  expect(t.status?.message).toContain(`npm run -s executor -- ${NONE} | kubectl apply -f -`);
  expect(operatorRequests(NONE, "configmaps", "flags")).toEqual([]);
  expect(kube.get<Obj>("configmap", "flags", NONE).data).toEqual({ mode: "old" });

  // The command in the message is the fix: with the executor created, the same change Completes.
  kube.run(
    ["apply", "-f", "-"],
    toYaml(executorObjects(NONE, [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "patch"] }])),
  );
  const again = await run(NONE, "config-after", {
    action: "update-config",
    target: { kind: "ConfigMap", name: "flags" },
    payload: { data: { mode: "new" } },
    approvers: ["alice@example.com"],
  });
  expect([again.status?.phase, again.status?.executedAs]).toEqual(["Completed", executor(NONE)]);
});

test("no minted token appears in any task's status, Event or the operator's log", () => {
  const texts = [FULL, SCALE, READ, NONE].map(ns => kube.run(["get", "agenttasks,events", "-n", ns, "-o", "json"]));
  // The tasks' specs carry their tokens (that is where agents put them); statuses and Events must not.
  const statuses = texts.map(t =>
    JSON.stringify(
      (JSON.parse(t) as { items: { kind: string; status?: unknown }[] }).items.map(i => [i.kind, i.status]),
    ),
  );
  const found = scanForSecrets([...statuses, stack.operator.logs()], minted);
  expect(found).toEqual([]);
});
