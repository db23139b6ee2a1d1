// GIVEN many tasks in flight, WHEN the operator is killed with SIGKILL at random moments and
// restarted each time, THEN every task reaches a terminal phase, every applied change was
// written exactly once (counted in the API server's audit log, not in our logs), nothing is
// applied without an allow, and after the last restart finished tasks cost no broker call and
// no write.
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";
import { operatorWrites } from "../helpers/audit";
import { startStack, type Stack } from "../../tools/stack";
import { appliedTasks } from "../../capabilities/lib/marker";
import type { KubeObject } from "../../capabilities/lib/action";

const TASKS = Number(process.env.ATB_CRASH_TASKS ?? 200);
const TARGETS = 20;
const NS = "crash";
const AGENT = "spiffe://atb.example.com/agent/crash-agent";
const cluster = e2eCluster();
let stack: Stack;
let kube: Kube;

interface Task {
  metadata: { name: string; uid: string };
  spec: { target: { name: string } };
  status?: { phase?: string; atbResult?: { allowed?: boolean }; conditions?: { type: string; status: string }[] };
}

const executed = (t: Task) => t.status?.conditions?.some(c => c.type === "Executed" && c.status === "True") ?? false;
const brokerCalls = () => readFileSync(stack.auditFile, "utf8").split("\n").filter(Boolean).length;

beforeAll(async () => {
  stack = await startStack({ cluster, workDir: join(cluster.dataDir, "stack-crash"), namespaces: [NS], operatorEnv: { ATB_SWEEP_INTERVAL_SECONDS: "2", ATB_WORKERS: "8", ATB_ROLLOUT_TIMEOUT_SECONDS: "60" } });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  kube.namespace(NS);
  const items = Array.from({ length: TARGETS }, (_, i) => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: `app-${i}`, namespace: NS },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: `app-${i}` } },
      template: { metadata: { labels: { app: `app-${i}` } }, spec: { containers: [{ name: "app", image: "nginx:1.27" }] } },
    },
  }));
  kube.run(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
});

afterAll(async () => stack?.stop());

test(`${TASKS} tasks survive random SIGKILLs of the operator`, async () => {
  const tasks = [];
  for (let i = 0; i < TASKS; i++) {
    const target = `app-${i % TARGETS}`;
    // Every 10th task asks for more than its token allows: it must be denied and never applied.
    // The others move between 2 and 3 replicas: LOW risk (less than a 2x change), so allowed.
    const over = i % 10 === 9;
    const token = await stack.mint({ agent: AGENT, action: "scale", target: { kind: "Deployment", namespace: NS, name: target }, maxReplicas: 3, ttlSeconds: 300 });
    tasks.push({
      apiVersion: "atb.siemens.com/v1alpha1",
      kind: "AgentTask",
      metadata: { name: `t-${i}`, namespace: NS },
      spec: { agentId: AGENT, poaToken: token, action: "scale", target: { kind: "Deployment", name: target, namespace: NS }, payload: { replicas: over ? 9 : 2 + (i % 2) } },
    });
  }
  kube.run(["create", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: tasks }));

  let kills = 0;
  const phases = () => (JSON.parse(kube.run(["get", "agenttasks", "-n", NS, "-o", "json"])) as { items: Task[] }).items;
  for (;;) {
    const items = phases();
    const open = items.filter(t => !["Completed", "Denied", "Failed"].includes(t.status?.phase ?? ""));
    if (open.length === 0 || kills >= 12) break;
    await new Promise(r => setTimeout(r, 300 + Math.random() * 2500));
    await stack.restartOperator("SIGKILL");
    kills++;
  }
  const all = await eventually("every task terminal", 240_000, () => {
    const items = phases();
    return items.every(t => ["Completed", "Denied", "Failed"].includes(t.status?.phase ?? "")) ? items : undefined;
  });
  const byPhase = all.reduce<Record<string, number>>((m, t) => ({ ...m, [t.status!.phase!]: (m[t.status!.phase!] ?? 0) + 1 }), {});
  console.log(`[crash] ${all.length} tasks, ${kills} SIGKILLs, phases ${JSON.stringify(byPhase)}`);
  expect(all).toHaveLength(TASKS);
  expect(kills).toBeGreaterThan(0);

  // At most once, on the targets: each target was written once per task whose change was applied.
  const writes = operatorWrites(cluster.dataDir, e => e.objectRef?.resource === "deployments" && e.objectRef?.namespace === NS);
  for (let i = 0; i < TARGETS; i++) {
    const name = `app-${i}`;
    const mine = all.filter(t => t.spec.target.name === name);
    const appliedHere = mine.filter(executed);
    expect({ name, writes: writes.get(`deployments ${NS}/${name}`) ?? 0 }).toEqual({ name, writes: appliedHere.length });
    const marker = appliedTasks(kube.get<KubeObject>("deployment", name, NS));
    for (const t of mine) expect({ task: t.metadata.name, applied: marker.includes(t.metadata.uid) }).toEqual({ task: t.metadata.name, applied: executed(t) });
  }
  // Nothing applied without an allow; over-limit tasks denied.
  for (const t of all) if (executed(t)) expect(t.status?.atbResult?.allowed).toBe(true);
  const over = all.filter(t => Number(t.metadata.name.slice(2)) % 10 === 9);
  for (const t of over) expect({ name: t.metadata.name, phase: t.status?.phase }).toEqual({ name: t.metadata.name, phase: "Denied" });
  expect(byPhase).toEqual({ Completed: TASKS - over.length, Denied: over.length });

  // After a last restart, finished tasks cost nothing.
  const callsBefore = brokerCalls();
  const writesBefore = operatorWrites(cluster.dataDir);
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  await stack.restartOperator("SIGTERM");
  await new Promise(r => setTimeout(r, 6_000)); // the initial LIST, ADDED events and two sweeps
  expect(brokerCalls()).toBe(callsBefore);
  expect(sum(operatorWrites(cluster.dataDir))).toBe(sum(writesBefore));
});
