// GIVEN many tasks in flight (reduced: 200, full: 500, ATB_CRASH_TASKS overrides), WHEN the operator is killed with SIGKILL
// at random moments and restarted each time, THEN every task reaches a terminal phase, every
// allowed change was written exactly once (counted in the API server's audit log, not in our
// logs, and in the target's marker), nothing is applied without an allow, and after the last
// restart finished tasks cost no broker call and no write. (Moved here from tests/e2e.)
import { e2eCluster } from "../helpers/cluster-env";
import { eventually } from "../helpers/kube";
import { auditEvents, operatorWrites } from "../helpers/audit";
import { USER_AGENT } from "../../capabilities/lib/kube";
import { AGENT, executed, Harness, sleep, type Task } from "../helpers/pipeline-tasks";
import { checkNoLeaks, operatorAlive, probe, size, summary } from "../helpers/reliability";
import { appliedTasks } from "../../capabilities/lib/action/marker";
import type { KubeObject } from "../../capabilities/lib/action";

const TASKS = Number(process.env.ATB_CRASH_TASKS ?? size(200, 500));
const MAX_KILLS = size(12, 30);
const TARGETS = 20;
const BATCH = 50;
const NS = "rel-crash";
const TERMINAL = ["Completed", "Denied", "Failed"];
const cluster = e2eCluster();
const h = new Harness(cluster, NS, "stack-rel-crash");

beforeAll(async () => {
  await h.start({ ATB_SWEEP_INTERVAL_SECONDS: "2", ATB_WORKERS: "8", ATB_ROLLOUT_TIMEOUT_SECONDS: "120" });
  const items = Array.from({ length: TARGETS }, (_, i) => h.workload("Deployment", `app-${i}`, "nginx:1.27"));
  h.kube.run(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
});

afterAll(async () => h.stop());

/** Operator writes to deployments of ns that the API server recorded as failed on its side (5xx, no code). */
function uncertainWrites(ns: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of auditEvents(cluster.dataDir)) {
    if (e.stage !== "ResponseComplete" || !e.userAgent?.startsWith(USER_AGENT)) continue;
    if (e.objectRef?.resource !== "deployments" || e.objectRef.namespace !== ns || /[?&]dryRun=/.test(e.requestURI))
      continue;
    const code = e.responseStatus?.code ?? 0;
    if (code === 0 || code >= 500) out.set(e.objectRef.name ?? "", (out.get(e.objectRef.name ?? "") ?? 0) + 1);
  }
  return out;
}

/** For a failure message: the operator's writes to one target as the API server recorded them. */
function writeHistory(name: string, applied: Task[]): object {
  const events = auditEvents(cluster.dataDir)
    .filter(e => e.objectRef?.namespace === NS && e.objectRef?.name === name && e.userAgent?.startsWith(USER_AGENT))
    .filter(e => e.objectRef?.resource === "deployments" && !/[?&]dryRun=/.test(e.requestURI))
    .map(e => `${e.requestReceivedTimestamp} ${e.verb} ${e.stage} ${e.responseStatus?.code ?? "-"}`);
  const tasks = applied.map(
    t =>
      `${t.metadata.name} ${t.metadata.uid}: ${t.status?.conditions?.find(c => c.type === "Executed")?.message ?? ""}`,
  );
  return { target: name, events, tasks };
}

test(`${TASKS} tasks survive random SIGKILLs of the operator`, async () => {
  // Tasks are created in batches, each minted just before (tokens live 300 s), a new batch whenever
  // fewer than a batch are open, while the operator is killed at random moments.
  let created = 0;
  const createBatch = async () => {
    const batch = [];
    for (const end = Math.min(TASKS, created + BATCH); created < end; created++) {
      const i = created;
      const target = `app-${i % TARGETS}`;
      // Every 10th task asks for more than its token allows: it must be denied and never applied.
      // The others move between 2 and 3 replicas: LOW risk (less than a 2x change), so allowed.
      const over = i % 10 === 9;
      const token = await h.stack.mint({
        agent: AGENT,
        action: "scale",
        target: { kind: "Deployment", namespace: NS, name: target },
        maxReplicas: 3,
        ttlSeconds: 300,
      });
      h.secrets.push(token);
      batch.push(
        h.task(
          `t-${i}`,
          { action: "scale", kind: "Deployment", target, payload: { replicas: over ? 9 : 2 + (i % 2) } },
          token,
        ),
      );
    }
    h.kube.run(["create", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: batch }));
  };
  await createBatch();

  let kills = 0;
  for (;;) {
    const open = h.tasks().filter(t => !TERMINAL.includes(t.status?.phase ?? "")).length;
    if (created < TASKS && open < BATCH) await createBatch();
    else if (created >= TASKS && (open === 0 || kills >= MAX_KILLS)) break;
    await sleep(300 + Math.random() * 2500);
    if (kills < MAX_KILLS) {
      await h.stack.restartOperator("SIGKILL");
      kills++;
    }
  }
  // Finished: the terminal status write (with status.finishedAt) also takes the task out of the
  // watch; nothing else is written to it afterwards.
  const all = await eventually("every task terminal", 600_000, () => {
    const items = h.tasks();
    const done = (t: Task) => TERMINAL.includes(t.status?.phase ?? "") && Boolean(t.status?.finishedAt);
    return items.length === TASKS && items.every(done) ? items : undefined;
  });
  const byPhase = all.reduce<Record<string, number>>(
    (m, t) => ({ ...m, [t.status!.phase!]: (m[t.status!.phase!] ?? 0) + 1 }),
    {},
  );
  expect(kills).toBeGreaterThan(0);

  // At most once, on the targets: each target was written once per task whose change was applied.
  const writes = operatorWrites(
    cluster.dataDir,
    e => e.objectRef?.resource === "deployments" && e.objectRef?.namespace === NS,
  );
  // A SIGKILL can cut the operator's connection while its PATCH is in flight: the API server may
  // then commit the write and still record an error (5xx) for it. Such writes are "uncertain";
  // the target's marker (written by the same PATCH) says which tasks' writes committed.
  const uncertain = uncertainWrites(NS);
  let totalWrites = 0;
  let totalUncertain = 0;
  for (let i = 0; i < TARGETS; i++) {
    const name = `app-${i}`;
    const mine = all.filter(t => t.spec.target.name === name);
    const appliedHere = mine.filter(executed);
    const n = writes.get(`deployments ${NS}/${name}`) ?? 0;
    totalWrites += n;
    const marker = appliedTasks(h.kube.get<KubeObject>("deployment", name, NS));
    for (const t of mine)
      expect({ task: t.metadata.name, applied: marker.includes(t.metadata.uid) }).toEqual({
        task: t.metadata.name,
        applied: executed(t),
      });
    const u = uncertain.get(name) ?? 0;
    totalUncertain += u;
    if (n !== appliedHere.length) console.log(JSON.stringify(writeHistory(name, appliedHere), null, 1));
    // Exactly once when no write was uncertain; otherwise never more 2xx writes than applied
    // tasks, and every applied task accounted for by a 2xx or an uncertain write.
    const within = n === appliedHere.length || (n < appliedHere.length && n + u >= appliedHere.length);
    expect({ name, writes: n, uncertain: u, within }).toEqual({ name, writes: n, uncertain: u, within: true });
    expect(n).toBeLessThanOrEqual(appliedHere.length);
  }
  // Nothing applied without an allow; over-limit tasks denied, the others completed.
  for (const t of all)
    if (executed(t))
      expect({ task: t.metadata.name, allowed: t.status?.atbResult?.allowed }).toEqual({
        task: t.metadata.name,
        allowed: true,
      });
  const over = all.filter(t => Number(t.metadata.name.slice(2)) % 10 === 9);
  for (const t of over)
    expect({ name: t.metadata.name, phase: t.status?.phase, executed: executed(t) }).toEqual({
      name: t.metadata.name,
      phase: "Denied",
      executed: false,
    });
  expect(byPhase).toEqual({ Completed: TASKS - over.length, Denied: over.length });
  expect(totalWrites + totalUncertain).toBeGreaterThanOrEqual(TASKS - over.length);
  expect(totalWrites).toBeLessThanOrEqual(TASKS - over.length);

  // After a last restart, finished tasks cost nothing.
  const callsBefore = h.brokerLines();
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const writesBefore = sum(operatorWrites(cluster.dataDir, e => e.objectRef?.namespace === NS));
  await h.stack.restartOperator("SIGTERM");
  await sleep(6_000); // the initial LIST, ADDED events and two sweeps
  expect(h.brokerLines()).toBe(callsBefore);
  expect(sum(operatorWrites(cluster.dataDir, e => e.objectRef?.namespace === NS))).toBe(writesBefore);
  expect(operatorAlive(h.stack)).toBe(true);
  expect((await probe(h.stack.metricsPort, "/readyz")).status).toBe(200);

  const leaks = await checkNoLeaks(h);
  summary("operator crashes", {
    tasks: all.length,
    sigkills: kills,
    phases: byPhase,
    targets: TARGETS,
    targetWritesAudited: totalWrites,
    uncertainWrites: totalUncertain,
    appliedWithoutAllow: 0,
    brokerCallsAfterRestart: h.brokerLines() - callsBefore,
    leakScan: leaks,
  });
}, 1_800_000);
