// Least privilege, proven by use (the least-privilege invariant, docs/invariants.md): GIVEN the
// operator running as a ServiceAccount of its own, bound to exactly the RBAC `npx pepr build`
// generates (tools/operator-identity.ts), WHEN one generated grant is taken away, THEN the
// behaviour that needs it breaks, visibly and distinctly, and nothing else does:
//   * without `create events`, tasks still finish (Events are best effort) but have no Events, the
//     operator logs the API server's 403 and counts it;
//   * without `patch agenttasks/status`, a task never gets a status, nothing is applied, and the
//     operator's log shows the 403;
//   * with the complete generated role, the stuck task finishes and Events are written again.
// One stack; its grants change between the steps (setGrants waits until the API server enforces
// them). Every write the operator made is recorded by the API server's audit log as that
// ServiceAccount, never as the admin.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { auditLogPath } from "../../tools/controlplane/cluster";
import { operatorKubeconfigProblem } from "../../tools/operator";
import type { GrantRef } from "../../tools/operator-identity";
import { startStack, type Stack } from "../../tools/stack";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";

const cluster = e2eCluster();
const NS = "least-privilege";
const AGENT = "spiffe://atb.example.com/agent/planning-agent";
const EVENTS: GrantRef = { verb: "create", resource: "events" };
const STATUS: GrantRef = { verb: "patch", resource: "agenttasks/status" };
let stack: Stack;
let kube: Kube;

interface Task {
  metadata: { name: string; uid: string };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

function deployment(name: string) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "app", image: "nginx:1.27" }] } },
    },
  };
}

/** A LOW scale task (2 → 3 replicas: within 2× and by at most 10) with a token bound to it. */
async function createScale(name: string, target: string, replicas: number): Promise<void> {
  const token = await stack.mint({
    agent: AGENT,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name: target },
    maxReplicas: 10,
    ttlSeconds: 300,
    payload: { replicas },
  });
  const r = kube.create({
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name, namespace: NS },
    spec: {
      agentId: AGENT,
      poaToken: token,
      action: "scale",
      target: { kind: "Deployment", name: target, namespace: NS },
      payload: { replicas },
    },
  });
  if (!r.ok) throw new Error(`creating ${name} failed: ${r.stderr}`);
}

const task = (name: string) => kube.get<Task>("agenttask", name, NS);
const replicas = (name: string) => kube.get<{ spec: { replicas: number } }>("deployment", name, NS).spec.replicas;
const eventsOf = (name: string) =>
  (
    JSON.parse(
      kube.run(["get", "events", "-n", NS, "--field-selector", `involvedObject.name=${name}`, "-o", "json"]),
    ) as { items: { reason: string }[] }
  ).items;
const finished = (name: string, timeoutMs = 120_000) =>
  eventually(`task ${name} finished`, timeoutMs, () => {
    const t = task(name);
    return ["Completed", "Denied", "Failed"].includes(t.status?.phase ?? "") ? t : undefined;
  });
/** Operator log lines (JSON) that mention this task. */
const logLinesOf = (name: string) =>
  stack.operator
    .logs()
    .split("\n")
    .filter(l => l.includes(`${NS}/${name}`) || l.includes(`"name":"${name}"`));
const metric = async (name: string) => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m").exec(await stack.metrics());
  return m ? Number(m[1]) : 0;
};

/** Users the API server's audit log records for writes to this file's tasks' status. */
function statusWriters(): Set<string> {
  const file = auditLogPath(cluster.dataDir);
  if (!existsSync(file)) return new Set();
  const users = new Set<string>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.includes(`"namespace":"${NS}"`) || !line.includes('"subresource":"status"')) continue;
    const e = JSON.parse(line) as { user: { username: string }; objectRef: { resource: string } };
    if (e.objectRef.resource === "agenttasks") users.add(e.user.username);
  }
  return users;
}

beforeAll(async () => {
  stack = await startStack({
    cluster,
    workDir: join(cluster.dataDir, "stack-least-privilege"),
    namespaces: [NS],
    // The first step runs without `create events`.
    operatorGrants: { omit: [EVENTS] },
  });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  for (const d of ["lp-events", "lp-status"]) kube.applyObject(deployment(d));
});

afterAll(async () => stack?.stop());

test("the operator runs as its own ServiceAccount with a token kubeconfig and the generated grants only", () => {
  const id = stack.operatorIdentity;
  expect(id.username).toMatch(/^system:serviceaccount:pepr-system:atb-operator-local-\d+$/);
  const kubeconfig = readFileSync(id.kubeconfig, "utf8");
  expect(operatorKubeconfigProblem(kubeconfig)).toBeUndefined();
  expect(kubeconfig).not.toMatch(/client-certificate|client-key|password/);
  // What the generated role grants, and what an admin could do but the operator cannot.
  expect(id.can("list", "agenttasks", "atb.siemens.com")).toBe(true);
  expect(id.can("patch", "agenttasks/status", "atb.siemens.com")).toBe(true);
  expect(id.can("create", "events")).toBe(false); // omitted for the next step
  expect(id.can("list", "secrets")).toBe(false);
  expect(id.can("create", "clusterrolebindings", "rbac.authorization.k8s.io")).toBe(false);
  expect(id.can("update", "agenttasks", "atb.siemens.com")).toBe(false);
  expect(id.can("create", "mutatingwebhookconfigurations", "admissionregistration.k8s.io")).toBe(false);
});

test("without `create events` a task still completes, without Events; the operator logs the 403 and counts it", async () => {
  const before = await metric("atb_operator_event_errors_total");
  await createScale("lp-no-events", "lp-events", 3);
  const done = await finished("lp-no-events");
  expect(done.status?.phase).toBe("Completed");
  expect(replicas("lp-events")).toBe(3);
  // The Event is attempted after the terminal write (beside the workers): wait for its refusal.
  const refused = await eventually("the refused Event in the log", 10_000, () => {
    const lines = logLinesOf("lp-no-events").filter(l => l.includes("could not record event"));
    return lines.length ? lines : undefined;
  });
  expect(eventsOf("lp-no-events")).toEqual([]);
  // The task's one Event (Completed) was refused.
  expect(refused.length).toBeGreaterThanOrEqual(1);
  for (const l of refused) expect(l).toMatch(/forbidden.*cannot create resource \\"events\\"/);
  expect(await metric("atb_operator_event_errors_total")).toBeGreaterThanOrEqual(before + refused.length);
});

test("without `patch agenttasks/status` a task never gets a status and nothing is applied; the log shows the 403", async () => {
  await stack.operatorIdentity.setGrants({ omit: [STATUS] });
  expect(stack.operatorIdentity.can("create", "events")).toBe(true);
  await createScale("lp-no-status", "lp-status", 3);
  // The watch delivers it at once; the refused write is retried every 10 s and the sweep runs
  // every 5 s: after 25 s it has had several chances.
  const refused = await eventually("the operator's refused status write", 30_000, () => {
    const lines = logLinesOf("lp-no-status").filter(l => /cannot patch resource \\"agenttasks\/status\\"/.test(l));
    return lines.length ? lines : undefined;
  });
  expect(refused[0]).toMatch(/forbidden/);
  expect(refused[0]).toContain(stack.operatorIdentity.username);
  await new Promise(r => setTimeout(r, 15_000));
  expect(task("lp-no-status").status?.phase).toBeUndefined();
  expect(replicas("lp-status")).toBe(2);
  expect(eventsOf("lp-no-status")).toEqual([]);
  expect(logLinesOf("lp-no-status").filter(l => l.includes('"message":"transition"'))).toEqual([]);
});

test("with the complete generated role the stuck task finishes, with its Events", async () => {
  await stack.operatorIdentity.setGrants({});
  const done = await finished("lp-no-status", 90_000);
  expect(done.status?.phase).toBe("Completed");
  expect(replicas("lp-status")).toBe(3);
  const reasons = await eventually("the Completed Event", 10_000, () => {
    const r = eventsOf("lp-no-status").map(e => e.reason);
    return r.length ? r : undefined;
  });
  expect(reasons).toEqual(["Completed"]);
  // Every status write of this file's tasks was the operator's, as its own ServiceAccount.
  expect([...statusWriters()]).toEqual([stack.operatorIdentity.username]);
});
