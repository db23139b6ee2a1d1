// GIVEN the real control plane, the reference broker over mTLS with real OPA, and the operator
// (child process, admission webhooks registered), WHEN agents create AgentTasks, THEN the
// pipeline authorizes, applies, verifies and records each one as the invariants demand.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";
import { startStack, type Stack } from "../../tools/stack";
import { scanForSecrets } from "../helpers/secrets";

const cluster = e2eCluster();
let stack: Stack;
let kube: Kube;
const NS = "pipeline";
const AGENT = "spiffe://atb.example.com/agent/planning-agent";
const minted: string[] = [];

interface Task {
  metadata: { name: string; uid: string; generation: number };
  status?: {
    phase?: string;
    message?: string;
    attempts?: number;
    observedGeneration?: number;
    atbResult?: { allowed?: boolean; riskTier?: string; reason?: string; requestId?: string; evaluateMs?: number };
    conditions?: { type: string; status: string; reason: string }[];
  };
}

async function mint(name: string, replicasMax = 10, payload?: Record<string, unknown>): Promise<string> {
  const token = await stack.mint({
    agent: AGENT,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name },
    maxReplicas: replicasMax,
    ttlSeconds: 300,
    payload,
  });
  minted.push(token);
  return token;
}

function scaleTask(name: string, target: string, replicas: number, token: string) {
  return {
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
  };
}

function deployment(name: string, replicas: number) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "app", image: "nginx:1.27" }] } },
    },
  };
}

const task = (name: string) => kube.get<Task>("agenttask", name, NS);
const replicasOf = (name: string) => kube.get<{ spec: { replicas: number } }>("deployment", name, NS).spec.replicas;

function terminal(name: string, timeoutMs = 90_000, phases = ["Completed", "Denied", "Failed"]): Promise<Task> {
  return eventually(`task ${name} in ${phases.join("|")}`, timeoutMs, () => {
    const t = task(name);
    return phases.includes(t.status?.phase ?? "") ? t : undefined;
  });
}

beforeAll(async () => {
  stack = await startStack({
    cluster,
    workDir: join(cluster.dataDir, "stack-pipeline"),
    namespaces: [NS],
    operatorEnv: {
      ATB_TASK_MAX_ATTEMPTS: "3",
      ATB_TASK_BACKOFF_MS: "300",
      ATB_BROKER_MAX_ATTEMPTS: "2",
      ATB_BROKER_TIMEOUT_MS: "1000",
      // Pages of two, so the sweep's paging is exercised by the few tasks of this file; every
      // sweep lists the finished tasks too (by default every tenth), so their counts are fresh.
      ATB_SWEEP_PAGE_SIZE: "2",
      ATB_SWEEP_FINISHED_EVERY: "1",
    },
  });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  kube.namespace(NS);
  for (const d of ["web-low", "web-denied", "web-down"]) kube.applyObject(deployment(d, 2));
});

afterAll(async () => stack?.stop());

test("a LOW scale task goes (Pending) → Executing → Completed in at most three status writes and one Event, and changes the Deployment", async () => {
  const watcher = spawn(stack.bin.kubectl, [
    `--kubeconfig=${cluster.kubeconfig}`,
    "get",
    "agenttask",
    "-n",
    NS,
    "--watch",
    "--field-selector=metadata.name=scale-low",
    "-o",
    "jsonpath={.status.phase}{'\\n'}",
  ]);
  const phases: string[] = [];
  watcher.stdout.on("data", (c: Buffer) => phases.push(...c.toString().split("\n").filter(Boolean)));
  await new Promise(r => setTimeout(r, 500));
  expect(kube.create(scaleTask("scale-low", "web-low", 4, await mint("web-low"))).ok).toBe(true);
  const done = await terminal("scale-low");
  await new Promise(r => setTimeout(r, 500));
  watcher.kill();
  expect(done.status?.phase).toBe("Completed");
  // Pending and Processing are carried by the decision's write (docs/adr/0009): a watch sees the
  // decision (Executing), perhaps the applied change while it rolls out (Executing again), the end.
  expect([...new Set(phases)]).toEqual(["Executing", "Completed"]);
  expect(phases.length).toBeLessThanOrEqual(3);
  expect(replicasOf("web-low")).toBe(4);
  const atb = done.status!.atbResult!;
  expect(atb).toMatchObject({ allowed: true, riskTier: "LOW" });
  expect(atb.requestId).toBeTruthy();
  expect(typeof atb.evaluateMs).toBe("number");
  const audit = readFileSync(stack.auditFile, "utf8");
  expect(audit).toContain(atb.requestId!);
  const conds = Object.fromEntries((done.status!.conditions ?? []).map(c => [c.type, c.status]));
  expect(conds).toEqual({ Authorized: "True", Executed: "True", Succeeded: "True" });
  // The Event follows the terminal status write (beside the workers, lib/runtime/follow-ups.ts).
  const events = await eventually("the task's Event", 10_000, () => {
    const reasons = kube.run([
      "get",
      "events",
      "-n",
      NS,
      "--field-selector",
      "involvedObject.name=scale-low",
      "-o",
      "jsonpath={range .items[*]}{.reason}{' '}{end}",
    ]);
    return reasons.trim() ? reasons : undefined;
  });
  // One Event, at the end: the steps are in the conditions, the logs and the metrics.
  expect(events.trim()).toBe("Completed");
  expect(kube.try(["wait", "--for=condition=Succeeded", "agenttask/scale-low", "-n", NS, "--timeout=5s"]).ok).toBe(
    true,
  );
  const metrics = await stack.metrics();
  expect(metrics).toMatch(/atb_operator_tasks_total\{action="scale",phase="Completed"\} [1-9]/);
  expect(metrics).toMatch(/atb_operator_tasks_allowed\{action="scale",risk_tier="LOW"\} [1-9]/);
  expect(metrics).toMatch(/atb_operator_processing_seconds_count\{action="scale",phase="Completed"\} [1-9]/);
});

test("a task whose only objection is a missing approval waits for it with the broker's reason, the target unchanged", async () => {
  // Scaling to zero is MEDIUM risk; the token names the change (as MEDIUM needs) but carries no approval.
  const token = await mint("web-denied", 10, { replicas: 0 });
  expect(kube.create(scaleTask("scale-to-zero", "web-denied", 0, token)).ok).toBe(true);
  const done = await terminal("scale-to-zero", 90_000, ["AwaitingApproval", "Completed", "Denied", "Failed"]);
  expect(done.status?.phase).toBe("AwaitingApproval");
  expect(done.status?.atbResult).toMatchObject({ allowed: false, riskTier: "MEDIUM" });
  expect(done.status?.atbResult?.reason).toMatch(/approval/);
  expect(done.status?.message).toMatch(/^waiting for approval: MEDIUM: 1 approver other than the agent must approve/);
  expect(replicasOf("web-denied")).toBe(2);
});

test("a token bound to another target is denied, and the target is unchanged", async () => {
  expect(kube.create(scaleTask("wrong-target", "web-denied", 3, await mint("web-low"))).ok).toBe(true);
  const done = await terminal("wrong-target");
  expect(done.status?.phase).toBe("Denied");
  expect(replicasOf("web-denied")).toBe(2);
});

test("broker down: the task is retried with backoff (attempts in status) and ends Failed; the target is unchanged", async () => {
  await stack.stopBroker();
  try {
    expect(kube.create(scaleTask("broker-down", "web-down", 5, await mint("web-down"))).ok).toBe(true);
    const retrying = await eventually("attempts recorded", 30_000, () => {
      const t = task("broker-down");
      return (t.status?.attempts ?? 0) >= 1 ? t : undefined;
    });
    expect(retrying.status?.phase).toBe("Processing");
    const done = await terminal("broker-down");
    expect(done.status?.phase).toBe("Failed");
    expect(done.status?.message).toMatch(/broker/i);
    expect(done.status?.message).toMatch(/gave up after 3 attempts/);
    expect(replicasOf("web-down")).toBe(2);
  } finally {
    await stack.startBroker();
  }
});

test("invalid tasks are rejected at admission with messages that name the field", async () => {
  const token = await mint("web-low");
  const cross = scaleTask("cross-ns", "web-low", 3, token);
  cross.spec.target.namespace = "default";
  const r1 = kube.create(cross);
  expect(r1.ok).toBe(false);
  expect(r1.stderr).toMatch(/spec\.target\.namespace: must equal the task's namespace/);
  const extra = scaleTask("extra-field", "web-low", 3, token) as ReturnType<typeof scaleTask> & {
    spec: { payload: Record<string, unknown> };
  };
  extra.spec.payload.image = "evil:latest";
  const r2 = kube.create(extra);
  expect(r2.ok).toBe(false);
  expect(r2.stderr).toMatch(/spec\.payload\.image/);
  // The webhook checks the token's format and never quotes it (the API server would, in a CEL error).
  const secretish = "not-a-jws-but-private-value";
  const badToken = kube.create(scaleTask("bad-token", "web-low", 3, secretish));
  expect(badToken.ok).toBe(false);
  expect(badToken.stderr).toMatch(/spec\.poaToken: must be a compact JWS/);
  expect(badToken.stderr).not.toContain(secretish);
  const tooMany = kube.create(scaleTask("too-many", "web-low", 5000, token));
  expect(tooMany.ok).toBe(false);
  expect(tooMany.stderr).toMatch(/spec\.payload\.replicas/);
});

test("the sweep lists in pages and counts every task of every page by phase", async () => {
  const byPhase = () => {
    const phases = kube
      .run(["get", "agenttasks", "-n", NS, "-o", "jsonpath={range .items[*]}{.status.phase}{'\\n'}{end}"])
      .split("\n")
      .filter(Boolean);
    const counts: Record<string, number> = {};
    for (const p of phases) counts[p] = (counts[p] ?? 0) + 1;
    return counts;
  };
  const expected = byPhase();
  const total = Object.values(expected).reduce((a, b) => a + b, 0);
  expect(total).toBeGreaterThan(2); // more than one page of ATB_SWEEP_PAGE_SIZE=2
  // The sweep runs every 5 s (tools/stack.ts); the gauge is what its last full listing counted.
  const gauge = async () => {
    const counts: Record<string, number> = {};
    for (const m of (await stack.metrics()).matchAll(/^atb_operator_tasks\{phase="(\w+)"\} (\d+)$/gm))
      if (m[2] !== "0") counts[m[1]] = Number(m[2]);
    return counts;
  };
  let seen = await gauge();
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; seen = await gauge()) {
    if (
      Object.keys(seen).length === Object.keys(expected).length &&
      Object.entries(expected).every(([p, n]) => seen[p] === n)
    )
      break;
    await new Promise(r => setTimeout(r, 1000));
  }
  expect(seen).toEqual(expected);
  expect(await stack.metrics()).toMatch(/^atb_operator_sweeps_total\{result="ok"\} [1-9]/m);
});

test("no token appears in the operator's logs, the broker's logs and audit, events or task statuses", () => {
  const texts = [
    stack.operator.logs(),
    readFileSync(join(cluster.dataDir, "stack-pipeline", "broker.log"), "utf8"),
    readFileSync(stack.auditFile, "utf8"),
    kube.run(["get", "events", "-A", "-o", "json"]),
    kube.run(["get", "agenttasks", "-n", NS, "-o", "jsonpath={range .items[*]}{.status}{'\\n'}{end}"]),
  ];
  expect(minted.length).toBeGreaterThan(3);
  expect(scanForSecrets(texts, minted)).toEqual([]);
});
