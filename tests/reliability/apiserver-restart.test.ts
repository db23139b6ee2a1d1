// GIVEN a control plane of its own (so the other files keep theirs) with the operator and ~100
// tasks in flight, WHEN kube-apiserver is stopped for a few seconds and started again on the same
// etcd, THEN the operator survives, its watch recovers (a task created after the restart is
// delivered by the watch, not only found by the sweep: /readyz stays 200 while it is open), the
// tasks pending at the outage and those created after it all finish, and nothing runs twice
// (the API server's audit log, counted over the whole run, and the targets' markers).
import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { down, startApiserver, stopComponent, up, type ClusterState } from "../../tools/controlplane/cluster";
import { ensureBinaries } from "../../tools/controlplane/binaries";
import { appliedTasks } from "../../capabilities/lib/action/marker";
import type { KubeObject } from "../../capabilities/lib/action";
import { tiePath, untiePath } from "../../tools/reaper";
import { installCrds } from "../../tools/stack";
import { operatorWrites } from "../helpers/audit";
import { eventually } from "../helpers/kube";
import { AGENT, executed, Harness, sleep, type Task } from "../helpers/pipeline-tasks";
import { checkNoLeaks, counter, operatorAlive, probe, size, summary, metricsOf } from "../helpers/reliability";

const NS = "rel-apiserver";
const TASKS = size(100, 300);
const LATE = size(20, 60);
const TARGETS = 20;
const OUTAGE_MS = size(5_000, 8_000);
const SWEEP_S = 4;
const TERMINAL = ["Completed", "Denied", "Failed"];
const dataDir = join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), `atb-rel-apiserver-${process.pid}`);
const bin = ensureBinaries();
let state: ClusterState;
let h: Harness;

beforeAll(async () => {
  // The plane's processes are tied to this worker by up(); its data folder too (a Ctrl-C or a
  // killed run skips afterAll).
  if (process.env.ATB_E2E_KEEP !== "1") tiePath(dataDir);
  state = await up({ dataDir, nodes: 2, log: l => console.log(l) });
  installCrds(bin, state.kubeconfig);
  h = new Harness(state, NS, "stack-rel-apiserver");
  await h.start({ ATB_SWEEP_INTERVAL_SECONDS: String(SWEEP_S), ATB_WORKERS: "8", ATB_ROLLOUT_TIMEOUT_SECONDS: "240" });
  const items = Array.from({ length: TARGETS }, (_, i) => h.workload("Deployment", `app-${i}`, "nginx:1.27"));
  // A workload whose pods can never be scheduled: a scale task on it stays open (waiting for
  // ready replicas) long enough for the sweep to notice if the watch had not delivered it.
  items.push(
    h.workload("Deployment", "stuck", "nginx:1.27", {
      template: {
        metadata: { labels: { app: "stuck" } },
        spec: { containers: [{ name: "app", image: "nginx:1.27" }], nodeSelector: { "atb.test/nowhere": "true" } },
      },
    }),
  );
  h.kube.run(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
}, 300_000);

afterAll(async () => {
  await h?.stop();
  await down(dataDir, l => console.log(l));
  if (process.env.ATB_E2E_KEEP !== "1") rmSync(dataDir, { recursive: true, force: true });
  else console.log(`[reliability] kept ${dataDir}`);
  untiePath(dataDir);
});

async function scaleTasks(prefix: string, count: number, offset: number): Promise<object[]> {
  const items = [];
  for (let i = 0; i < count; i++) {
    const target = `app-${(i + offset) % TARGETS}`;
    // Every 10th task asks for more than its token allows: denied, never applied.
    const over = i % 10 === 9;
    const token = await h.stack.mint({
      agent: AGENT,
      action: "scale",
      target: { kind: "Deployment", namespace: NS, name: target },
      maxReplicas: 3,
      ttlSeconds: 300,
    });
    h.secrets.push(token);
    items.push(
      h.task(
        `${prefix}-${i}`,
        { action: "scale", kind: "Deployment", target, payload: { replicas: over ? 9 : 2 + (i % 2) } },
        token,
      ),
    );
  }
  return items;
}

test("the operator rides out a kube-apiserver restart: watches recover, tasks finish, nothing runs twice", async () => {
  const early = await scaleTasks("t", TASKS, 0);
  h.kube.run(["create", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: early }));
  // Stop the API server while the tasks run: after the first ones finished, before the last.
  await eventually("some tasks finished", 120_000, () =>
    h.tasks().filter(t => t.status?.phase === "Completed").length >= 5 ? true : undefined,
  );
  const before = h.tasks();
  const openAtOutage = before.filter(t => !TERMINAL.includes(t.status?.phase ?? "")).length;
  expect(openAtOutage).toBeGreaterThan(0);
  await stopComponent(state, "kube-apiserver");
  const outageStart = Date.now();
  await sleep(OUTAGE_MS);
  expect(operatorAlive(h.stack)).toBe(true);
  await startApiserver(state, bin);
  const outageMs = Date.now() - outageStart;

  // Tasks created after the restart: ordinary ones, and one that stays open for a while. Their
  // tokens are minted once the API server answers again, so waiting for it does not eat into their
  // 300 s (under heavy load a late task's token once expired before the broker was asked: the
  // operator then fails it PoAExpired, nothing written, but it is not the denial this test checks).
  await eventually("the API server answers again", 120_000, () =>
    h.kube.try(["get", "--raw", "/readyz"]).ok ? true : undefined,
  );
  const late = await scaleTasks("late", LATE, 7);
  const stuckToken = await h.stack.mint({
    agent: AGENT,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name: "stuck" },
    maxReplicas: 3,
    ttlSeconds: 300,
  });
  h.secrets.push(stuckToken);
  late.push(
    h.task(
      "late-stuck",
      { action: "scale", kind: "Deployment", target: "stuck", payload: { replicas: 3 } },
      stuckToken,
    ),
  );
  await eventually("the API server accepts tasks again", 120_000, () =>
    h.kube.try(["create", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: late })).ok
      ? true
      : undefined,
  );
  const lateCreated = Date.now();

  // The watch delivered the open task: after the sweep's grace (2 sweeps + 10 s) and two more
  // sweeps, readiness would report "watch not delivering" if only the sweep had seen it.
  await eventually("late-stuck applied and waiting for its replicas", 180_000, () => {
    const t = h.kube.get<Task>("agenttask", "late-stuck", NS);
    return t.status?.phase === "Executing" && executed(t) ? t : undefined;
  });
  await sleep(Math.max(0, lateCreated + (4 * SWEEP_S + 10) * 1000 - Date.now()));
  let readyz = await probe(h.stack.metricsPort, "/readyz");
  for (const deadline = Date.now() + 60_000; readyz.status !== 200 && Date.now() < deadline; ) {
    await sleep(1_000);
    readyz = await probe(h.stack.metricsPort, "/readyz");
  }
  const stillOpen = h.kube.get<Task>("agenttask", "late-stuck", NS).status?.phase;
  expect({ readyz: readyz.status, body: readyz.body, stuckPhase: stillOpen }).toEqual({
    readyz: 200,
    body: "ok",
    stuckPhase: "Executing",
  });
  expect(operatorAlive(h.stack)).toBe(true);
  // Let the stuck workload's pods schedule: the open task can complete.
  h.kube.run([
    "patch",
    "deployment",
    "stuck",
    "-n",
    NS,
    "--type=json",
    "-p",
    JSON.stringify([{ op: "remove", path: "/spec/template/spec/nodeSelector" }]),
  ]);

  const total = TASKS + LATE + 1;
  const all = await eventually("every task terminal", 480_000, () => {
    const items = h.tasks();
    return items.length === total && items.every(t => TERMINAL.includes(t.status?.phase ?? "")) ? items : undefined;
  }).catch((err: unknown) => {
    // Which tasks stayed open and where the operator's log is: a timeout here said neither.
    const items = h.tasks();
    const open = items
      .filter(t => !TERMINAL.includes(t.status?.phase ?? ""))
      .slice(0, 20)
      .map(t => ({ name: t.metadata.name, phase: t.status?.phase, message: t.status?.message }));
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}; ${items.length} of ${total} tasks exist, open: ` +
        `${JSON.stringify(open)}; operator log ${h.stack.operator.logFile} (kept with ATB_E2E_KEEP=1), ` +
        `its last lines:\n${h.stack.operator.logs().split("\n").slice(-40).join("\n")}`,
    );
  });
  const byPhase = all.reduce<Record<string, number>>(
    (m, t) => ({ ...m, [t.status!.phase!]: (m[t.status!.phase!] ?? 0) + 1 }),
    {},
  );
  const over = all.filter(t => Number(t.metadata.name.split("-").pop()) % 10 === 9 && t.metadata.name !== "late-stuck");
  // A task in another phase shows why (its status message) in the failure.
  for (const t of over)
    expect({
      task: t.metadata.name,
      phase: t.status?.phase,
      ...(t.status?.phase === "Denied" ? {} : { why: t.status?.message }),
    }).toEqual({
      task: t.metadata.name,
      phase: "Denied",
    });
  expect(byPhase).toEqual({ Completed: total - over.length, Denied: over.length });

  // Nothing ran twice: writes to each target in the audit log (the whole run, both API server
  // lives) equal the tasks applied to it, and each target's marker lists exactly those tasks.
  const writes = operatorWrites(
    state.dataDir,
    e => e.objectRef?.namespace === NS && e.objectRef?.resource === "deployments",
  );
  let totalWrites = 0;
  for (const name of [...Array.from({ length: TARGETS }, (_, i) => `app-${i}`), "stuck"]) {
    const mine = all.filter(t => t.spec.target.name === name);
    const n = writes.get(`deployments ${NS}/${name}`) ?? 0;
    totalWrites += n;
    expect({ name, writes: n }).toEqual({ name, writes: mine.filter(executed).length });
    const marker = appliedTasks(h.kube.get<KubeObject>("deployment", name, NS));
    for (const t of mine)
      expect({ task: t.metadata.name, applied: marker.includes(t.metadata.uid) }).toEqual({
        task: t.metadata.name,
        applied: executed(t),
      });
  }
  for (const t of all) if (executed(t)) expect(t.status?.atbResult?.allowed).toBe(true);
  expect(totalWrites).toBe(total - over.length);
  const finalReadyz = await probe(h.stack.metricsPort, "/readyz");
  expect({ status: finalReadyz.status, body: finalReadyz.body }).toEqual({ status: 200, body: "ok" });

  const metrics = await metricsOf(h.stack);
  const leaks = await checkNoLeaks(h);
  summary("API server restart", {
    tasks: all.length,
    openAtOutage,
    createdAfterRestart: LATE + 1,
    outageMs,
    phases: byPhase,
    targetWritesAudited: totalWrites,
    sweepErrors: counter(metrics, "atb_operator_sweeps_total", /result="error"/),
    readyzWhileLateTaskOpen: readyz.status,
    leakScan: leaks,
  });
}, 1_200_000);
