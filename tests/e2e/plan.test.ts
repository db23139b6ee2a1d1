// GIVEN the real API server with RBAC and audit, the reference broker over mTLS with real OPA, and
// the operator under its own ServiceAccount, WHEN Plan tasks (spec.mode Plan, no PoA) are created
// for every action THEN each ends Planned with status.plan: the change digest the clients compute
// (tools/task-change.ts, what `npm run poa -- digest` and the stack's minter use), the tier and
// approvals the broker's plan call gives, and a diff of what would change (a Secret's values
// redacted); and the API server's audit log shows the operator dry-ran each change as the
// executor and wrote nothing to any target. A Plan task whose creator may not get the target
// fails PlanNotAllowed, and the audit log shows the target was not read (a creator who may get it
// has it read, so the audit would show the read); an Apply task without a token is refused.
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { USER_AGENT } from "../../capabilities/lib/kube";
import { planeOf, tokenKubeconfig } from "../../tools/operator-identity";
import { startStack, type Stack } from "../../tools/stack";
import { kubectlReader, taskChangeSha256 } from "../../tools/task-change";
import { workload } from "../../tools/objects";
import { auditEvents, operatorWrites, type AuditEvent } from "../helpers/audit";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";

const cluster = e2eCluster();
const ID = randomBytes(3).toString("hex");
const NS = `plan-${ID}`;
const AGENT = "spiffe://atb.example.com/agent/ops-agent";
const b64 = (v: string): string => Buffer.from(v).toString("base64");
const OLD_PW = `old-pw-${ID}-${"o".repeat(12)}`;
const NEW_PW = `new-pw-${ID}-${"n".repeat(12)}`;

let stack: Stack;
let admin: Kube;

interface Task {
  metadata: { uid: string };
  spec: { poaToken?: string };
  status?: {
    phase?: string;
    message?: string;
    atbResult?: { riskTier?: string; reason?: string };
    plan?: {
      changeSha256: string;
      riskTier: string;
      approvalsRequired: { count: number; roles?: string[]; sentence: string };
      diff: string;
      diffTruncated: boolean;
    };
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

interface PlanCase {
  name: string;
  action: string;
  target: { kind: string; name: string };
  payload?: Record<string, unknown>;
  tier: string;
  approvals: number;
  /** Lines the diff must hold. */
  diff: string[];
}

const CASES: PlanCase[] = [
  {
    name: "scale",
    action: "scale",
    target: { kind: "Deployment", name: "web" },
    payload: { replicas: 3 },
    tier: "LOW",
    approvals: 0,
    diff: ["-  replicas: 2", "+  replicas: 3"],
  },
  {
    name: "restart",
    action: "restart",
    target: { kind: "Deployment", name: "web" },
    tier: "MEDIUM",
    approvals: 1,
    diff: ["+        kubectl.kubernetes.io/restartedAt: "],
  },
  {
    name: "config",
    action: "update-config",
    target: { kind: "ConfigMap", name: "flags" },
    payload: { data: { mode: "new" } },
    tier: "MEDIUM",
    approvals: 1,
    diff: ["-  mode: old", "+  mode: new"],
  },
  {
    name: "secret",
    action: "update-config",
    target: { kind: "Secret", name: "creds" },
    payload: { data: { pw: { valueFrom: { secretKeyRef: { name: "src", key: "v" } } } } },
    tier: "MEDIUM",
    approvals: 1,
    diff: ["-  pw: '[REDACTED]'", "+  pw: '[REDACTED (changed)]'"],
  },
  {
    name: "deploy",
    action: "deploy",
    target: { kind: "Deployment", name: "web" },
    payload: { image: "nginx:1.29" },
    tier: "HIGH",
    approvals: 2,
    diff: ["-        - image: nginx:1.28", "+        - image: nginx:1.29"],
  },
  {
    name: "rollback",
    action: "rollback",
    target: { kind: "Deployment", name: "web" },
    tier: "HIGH",
    approvals: 2,
    diff: ["-        - image: nginx:1.28", "+        - image: nginx:1.27"],
  },
  {
    name: "patch",
    action: "patch",
    target: { kind: "ConfigMap", name: "flags" },
    payload: { patch: [{ op: "add", path: "/data/extra", value: "1" }] },
    tier: "HIGH",
    approvals: 2,
    diff: ["+  extra: '1'"],
  },
];

/** A Plan task: no poaToken at all. */
function planTask(name: string, ns: string, c: Pick<PlanCase, "action" | "target" | "payload">): object {
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name, namespace: ns },
    spec: {
      agentId: AGENT,
      mode: "Plan",
      action: c.action,
      target: { ...c.target, namespace: ns },
      ...(c.payload ? { payload: c.payload } : {}),
    },
  };
}

function terminal(who: Kube, name: string, ns = NS): Promise<Task> {
  return eventually(`task ${ns}/${name} terminal`, 120_000, () => {
    const t = who.get<Task>("agenttask", name, ns);
    return ["Completed", "Denied", "Failed", "Planned"].includes(t.status?.phase ?? "") ? t : undefined;
  });
}

/** What the operator sent the API server about one object (writes, dry runs and, for ConfigMaps and Secrets, reads). */
function operatorRequests(ns: string, resource: string, name?: string): AuditEvent[] {
  return auditEvents(cluster.dataDir).filter(
    e =>
      e.stage === "ResponseComplete" &&
      e.userAgent?.startsWith(USER_AGENT) &&
      e.objectRef?.namespace === ns &&
      e.objectRef?.resource === resource &&
      (name === undefined || e.objectRef?.name === name),
  );
}

/** A kubeconfig with the plane's server and CA and a TokenRequest token of the ServiceAccount, nothing else. */
function serviceAccountKube(sa: string): Kube {
  const token = admin.run(["create", "token", sa, "-n", NS, "--duration=3600s"]).trim();
  const plane = planeOf(readFileSync(cluster.kubeconfig, "utf8"));
  const file = join(cluster.dataDir, `plan-${ID}-${sa}.kubeconfig`);
  writeFileSync(file, tokenKubeconfig(plane.server, plane.caData, token, sa), { mode: 0o600 });
  return new Kube(stack.bin, file);
}

beforeAll(async () => {
  stack = await startStack({ cluster, workDir: join(cluster.dataDir, `stack-plan-${ID}`), namespaces: [NS] });
  admin = new Kube(stack.bin, cluster.kubeconfig);
  admin.applyObject(workload({ kind: "Deployment", name: "web", namespace: NS, image: "nginx:1.27" }));
  await eventually("revision 1 rolled out", 60_000, () =>
    JSON.parse(admin.run(["get", "replicasets", "-n", NS, "-o", "json"])).items.length === 1 ? true : undefined,
  );
  // A second revision, so a rollback has one to go back to.
  admin.run(["set", "image", "deployment/web", "app=nginx:1.28", "-n", NS]);
  await eventually("revision 2", 60_000, () =>
    JSON.parse(admin.run(["get", "replicasets", "-n", NS, "-o", "json"])).items.length === 2 ? true : undefined,
  );
  admin.applyObject({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "flags", namespace: NS },
    data: { mode: "old" },
  });
  admin.applyObject({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "private", namespace: NS },
    data: { k: "v" },
  });
  admin.applyObject({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "creds", namespace: NS },
    type: "Opaque",
    data: { pw: b64(OLD_PW) },
  });
  admin.applyObject({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "src", namespace: NS },
    type: "Opaque",
    data: { v: b64(NEW_PW) },
  });
  // Two ServiceAccounts that may create and read AgentTasks; only "reader" may also get the ConfigMap "private".
  for (const sa of ["nosy", "reader"]) admin.run(["create", "serviceaccount", sa, "-n", NS]);
  admin.run(["create", "role", "tasks", "-n", NS, "--verb=create,get", "--resource=agenttasks.atb.siemens.com"]);
  admin.run([
    "create",
    "rolebinding",
    "tasks",
    "-n",
    NS,
    "--role=tasks",
    `--serviceaccount=${NS}:nosy`,
    `--serviceaccount=${NS}:reader`,
  ]);
  admin.run(["create", "role", "private", "-n", NS, "--verb=get", "--resource=configmaps", "--resource-name=private"]);
  admin.run(["create", "rolebinding", "private", "-n", NS, "--role=private", `--serviceaccount=${NS}:reader`]);
}, 240_000);

afterAll(async () => stack?.stop());

test("a Plan task for each action ends Planned with the clients' digest, the tier, the approvals and a diff; nothing is written", async () => {
  const before = {
    web: admin.get<{ metadata: { resourceVersion: string } }>("deployment", "web", NS).metadata.resourceVersion,
    flags: admin.get<{ metadata: { resourceVersion: string } }>("configmap", "flags", NS).metadata.resourceVersion,
    creds: admin.get<{ metadata: { resourceVersion: string } }>("secret", "creds", NS).metadata.resourceVersion,
  };
  for (const c of CASES) {
    const r = admin.create(planTask(`plan-${c.name}`, NS, c));
    expect(r.stderr).toBe("");
  }
  const reader = kubectlReader(stack.bin, cluster.kubeconfig);
  for (const c of CASES) {
    const t = await terminal(admin, `plan-${c.name}`);
    const shown = `${c.name}: ${t.status?.phase} ${t.status?.message}`;
    expect(shown).toBe(`${c.name}: Planned ${t.status?.message}`);
    const digest = await taskChangeSha256(
      { action: c.action, target: { ...c.target, namespace: NS }, payload: c.payload },
      reader,
    );
    expect({ name: c.name, ...t.status!.plan, diff: undefined }).toEqual({
      name: c.name,
      changeSha256: digest,
      riskTier: c.tier,
      approvalsRequired: expect.objectContaining({ count: c.approvals, sentence: expect.any(String) }),
      diff: undefined,
      diffTruncated: false,
    });
    for (const line of c.diff) expect(`${c.name}:\n${t.status!.plan!.diff}`).toContain(`\n${line}`);
    expect(t.status?.conditions?.find(x => x.type === "Succeeded")).toMatchObject({
      status: "True",
      reason: "Planned",
    });
    expect(t.status?.atbResult).toMatchObject({ riskTier: c.tier, reason: "plan_only" });
  }
  // No value of the Secrets anywhere in the tasks.
  const tasks = admin.run(["get", "agenttasks", "-n", NS, "-o", "json"]);
  for (const v of [OLD_PW, NEW_PW, b64(OLD_PW), b64(NEW_PW)]) expect(tasks).not.toContain(v);
  // The audit log: each target was dry-run as the executor; no write reached any target.
  for (const [resource, name] of [
    ["deployments", "web"],
    ["configmaps", "flags"],
    ["secrets", "creds"],
  ]) {
    const dry = operatorRequests(NS, resource, name).filter(e => /[?&]dryRun=All/.test(e.requestURI));
    expect(`${resource}/${name}: ${dry.length > 0}`).toBe(`${resource}/${name}: true`);
    for (const e of dry) expect(e.impersonatedUser?.username).toBe(`system:serviceaccount:${NS}:atb-executor`);
  }
  const writes = operatorWrites(
    cluster.dataDir,
    e => e.objectRef?.namespace === NS && e.objectRef?.resource !== "agenttasks",
  );
  expect([...writes.keys()]).toEqual([]);
  expect(admin.get<{ metadata: { resourceVersion: string } }>("deployment", "web", NS).metadata.resourceVersion).toBe(
    before.web,
  );
  expect(admin.get<{ metadata: { resourceVersion: string } }>("configmap", "flags", NS).metadata.resourceVersion).toBe(
    before.flags,
  );
  expect(admin.get<{ metadata: { resourceVersion: string } }>("secret", "creds", NS).metadata.resourceVersion).toBe(
    before.creds,
  );
}, 300_000);

test("a creator who may not get the target: Failed PlanNotAllowed and the target was not read; one who may: Planned, read as the executor", async () => {
  const c = { action: "update-config", target: { kind: "ConfigMap", name: "private" }, payload: { data: { k: "w" } } };
  const nosy = serviceAccountKube("nosy");
  expect(nosy.create(planTask("plan-nosy", NS, c)).stderr).toBe("");
  const denied = await terminal(admin, "plan-nosy");
  expect(denied.status?.phase).toBe("Failed");
  expect(denied.status?.conditions?.find(x => x.type === "Succeeded")?.reason).toBe("PlanNotAllowed");
  expect(denied.status?.message).toContain(
    `system:serviceaccount:${NS}:nosy (the task's creator) may not get ConfigMap ${NS}/private`,
  );
  expect(denied.status?.plan).toBeUndefined();
  expect(operatorRequests(NS, "configmaps", "private")).toEqual([]);

  const reader = serviceAccountKube("reader");
  expect(reader.create(planTask("plan-reader", NS, c)).stderr).toBe("");
  const planned = await terminal(admin, "plan-reader");
  expect(planned.status?.phase).toBe("Planned");
  expect(planned.status?.plan?.diff).toContain("-  k: v\n+  k: w\n");
  const seen = operatorRequests(NS, "configmaps", "private");
  expect(seen.some(e => e.verb === "get")).toBe(true);
  expect(admin.get<{ data: Record<string, string> }>("configmap", "private", NS).data).toEqual({ k: "v" });
}, 240_000);

test("an Apply task without a token is refused at admission; a Plan task needs none", () => {
  const apply = planTask("apply-no-token", NS, CASES[0]) as { spec: Record<string, unknown> };
  apply.spec.mode = "Apply";
  const r = admin.create(apply);
  expect(r.ok).toBe(false);
  expect(r.stderr).toMatch(/spec\.poaToken.*required unless spec\.mode is Plan/);
});
