// Scenarios "scale" and "update-config": N tasks over T targets (LOW scale of Deployments, with
// a rollout each; MEDIUM update-config of ConfigMaps, approved, no rollout), created in a burst
// and at each fixed rate, once through the operator and once through the same-run limit
// (bench/limit/: the least API work a task needs), alternating which goes first so both see the
// same background load. Per run: throughput, latency, time per stage (operator), the side's own
// API requests per task by verb and resource (the API server's audit log), CPU and peak RSS of
// the side's process.
import { auditOffset, auditSince, countRequests, type RequestCount } from "../audit";
import type { BenchEnv } from "../environment";
import {
  configTasks,
  createConfigMaps,
  createDeployments,
  createTasks,
  deleteTasks,
  NS,
  NS_LIMIT,
  scaleTasks,
} from "../fixtures";
import type { AgentTaskObject } from "../../tools/objects";
import { log } from "../log";
import { cpuSeconds, percentiles, round, RssSampler, sleep, spread } from "../measure";
import type { E2eResult, ModeSummary, RunResult, Side } from "../results";
import type { E2eScenarioName } from "../settings";
import type { TaskTimes } from "../tracker";

/** undefined: the burst. */
type Rate = number | undefined;

const modeOf = (rate: Rate): string => (rate === undefined ? "burst" : `${rate}/s`);

/** What differs between the two end-to-end scenarios. */
interface E2eKind {
  action: string;
  targetKind: "Deployment" | "ConfigMap";
  targetPrefix: string;
  createTargets(env: BenchEnv, namespace: string): Promise<void>;
  /** `count` tasks of run number `run` in `namespace`. */
  tasks(env: BenchEnv, namespace: string, run: number, count: number): Promise<AgentTaskObject[]>;
}

/**
 * The replicas each Deployment was last asked for, by namespace/name (they are created with 2):
 * the next task for it asks for the other of 2 and 3, so every task changes its Deployment, in
 * every run and scenario, whatever the number of tasks per target.
 */
const lastReplicas = new Map<string, number>();
function nextReplicas(namespace: string, name: string): number {
  const key = `${namespace}/${name}`;
  const next = (lastReplicas.get(key) ?? 2) === 2 ? 3 : 2;
  lastReplicas.set(key, next);
  return next;
}

export const KINDS: Record<E2eScenarioName, E2eKind> = {
  scale: {
    action: "scale",
    targetKind: "Deployment",
    targetPrefix: "app",
    createTargets: (env, namespace) =>
      createDeployments(env.api, { namespace, prefix: "app", count: env.settings.targets, replicas: 2 }),
    tasks: (env, namespace, run, count) =>
      scaleTasks(env.stack, {
        namespace,
        prefix: `r${run}`,
        count,
        targets: env.settings.targets,
        targetPrefix: "app",
        // 2 ↔ 3 replicas (scaleTasks asks in task order; task i is for target i mod targets).
        replicasOf: i => nextReplicas(namespace, `app-${i % env.settings.targets}`),
        maxReplicas: 10,
      }),
  },
  "update-config": {
    action: "update-config",
    targetKind: "ConfigMap",
    targetPrefix: "cfg",
    createTargets: (env, namespace) =>
      createConfigMaps(env.api, { namespace, prefix: "cfg", count: env.settings.targets }),
    tasks: (env, namespace, run, count) =>
      configTasks(env.stack, {
        namespace,
        prefix: `c${run}`,
        count,
        targets: env.settings.targets,
        targetPrefix: "cfg",
        valueOf: i => `run-${run}-task-${i}`,
      }),
  },
};

/** The scenario `name`'s runner. */
export function e2eScenario(name: E2eScenarioName): (env: BenchEnv) => Promise<E2eResult> {
  const kind = KINDS[name];
  return async env => {
    const { settings } = env;
    log(`${name}: ${settings.targets} ${kind.targetKind}s in ${NS} and ${NS_LIMIT}`);
    for (const namespace of [NS, NS_LIMIT]) await kind.createTargets(env, namespace);
    const modes: Rate[] = [undefined, ...settings.rates];
    const runs: RunResult[] = [];
    let counter = 0;
    for (let rep = 1; rep <= settings.repeats; rep++) {
      for (const [m, rate] of modes.entries()) {
        const order: Side[] = (rep + m) % 2 ? ["operator", "limit"] : ["limit", "operator"];
        for (const side of order) runs.push(await e2eRun(env, kind, { name, side, rate, repeat: rep, run: ++counter }));
      }
    }
    if (env.limit.errors.length) log(`limit errors: ${env.limit.errors.slice(0, 5).join(" | ")}`);
    const summary: Record<string, ModeSummary> = {};
    for (const rate of modes) summary[modeOf(rate)] = summarizeMode(runs, modeOf(rate));
    return { action: kind.action, targetKind: kind.targetKind, targets: settings.targets, runs, summary };
  };
}

export interface RunSpec {
  name: E2eScenarioName;
  /** Tasks of the run (default ATB_BENCH_TASKS). */
  tasks?: number;
  /** The operator side's processes (default: the stack's operator): their CPU is summed. */
  pids?: () => number[];
  /** Names the run in the progress line (default: the scenario's name). */
  label?: string;
  side: Side;
  rate: Rate;
  repeat: number;
  /** Counts every run of the scenario: names the tasks and varies their change. */
  run: number;
}

export async function e2eRun(env: BenchEnv, kind: E2eKind, spec: RunSpec): Promise<RunResult> {
  const { settings } = env;
  const { side, rate } = spec;
  const ns = side === "operator" ? NS : NS_LIMIT;
  const tracker = env.trackers[side];
  tracker.forget();
  const n = spec.tasks ?? settings.tasks;
  const tasks = await kind.tasks(env, ns, spec.run, n);
  const names = tasks.map(t => t.metadata.name);
  const pid = side === "operator" ? env.stack.operator.process.pid! : env.limit.pid;
  const user = side === "operator" ? env.stack.operatorIdentity.username : env.limitIdentity.username;
  const limit0 = side === "limit" ? await env.limit.stats() : undefined;
  const audit0 = auditOffset(env.dataDir);
  const pids = side === "operator" && spec.pids ? spec.pids() : [pid];
  const cpuOf = () => pids.reduce((sum, p) => sum + cpuSeconds(p), 0);
  const cpu0 = cpuOf();
  const rss = new RssSampler(() => pid, 200);
  const t0 = Date.now();
  const createErrors = await createTasks(env.api, tracker, tasks, { rate, concurrency: settings.createConcurrency });
  const createSeconds = (Date.now() - t0) / 1000;
  await tracker.waitTerminal(names, Math.max(300_000, rate ? (n / rate) * 3000 : 0));
  const cpu = cpuOf() - cpu0;
  const peakRssMiB = rss.max();
  rss.stop();
  // What a side still sends after its last status write (an Event), and the audit log's writer.
  await sleep(1500);
  const requests = countRequests(auditSince(env.dataDir, audit0), user);
  const limit1 = side === "limit" ? await env.limit.stats() : undefined;
  const times = names.map(n => tracker.tasks.get(n)!);
  const r = runResult(spec, n, times, { createErrors, createSeconds, cpu, peakRssMiB, requests });
  if (limit0 && limit1) {
    const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
    r.limitClient = {
      requestsPerTask: round((sum(limit1.requests) - sum(limit0.requests)) / n, 3),
      conflicts: limit1.conflicts - limit0.conflicts,
    };
  }
  logRun(spec, r);
  await deleteTasks(env.api, ns);
  return r;
}

function logRun(spec: RunSpec, r: RunResult): void {
  log(
    `${spec.label ?? spec.name} ${spec.side.padEnd(8)} ${r.mode.padEnd(6)} #${spec.repeat}: ${r.throughput} tasks/s, ` +
      `p50 ${r.latencyS.p50}s p99 ${r.latencyS.p99}s, ${r.requestsPerTask} requests/task ` +
      `(status writes ${r.statusWritesPerCompletedTask}, events ${r.eventsPerTask}), cpu ${r.cpuSecondsPer1000}s/1000, ` +
      `rss ${r.peakRssMiB} MiB, phases ${JSON.stringify(r.phases)}` +
      (r.stagesS ? `, stages ${JSON.stringify(r.stagesS)}` : "") +
      (r.limitClient ? `, conflicts ${r.limitClient.conflicts}` : ""),
  );
}

interface Measured {
  createErrors: number;
  createSeconds: number;
  cpu: number;
  peakRssMiB: number;
  requests: RequestCount;
}

const sumWhere = (byKey: Record<string, number>, f: (verb: string, resource: string) => boolean): number =>
  Object.entries(byKey)
    .filter(([k]) => f(k.split(" ")[0], k.split(" ")[1]))
    .reduce((n, [, v]) => n + v, 0);

const WRITES = ["create", "update", "patch"];

function runResult(spec: RunSpec, n: number, times: TaskTimes[], m: Measured): RunResult {
  const first = Math.min(...times.map(t => t.sentAt!));
  const last = Math.max(...times.map(t => t.doneAt!));
  const phases: Record<string, number> = {};
  for (const t of times) phases[t.terminal!] = (phases[t.terminal!] ?? 0) + 1;
  const completed = times.filter(t => t.terminal === "Completed");
  const c = Math.max(1, completed.length);
  const { byKey, total, failed } = m.requests;
  const perTask: Record<string, number> = {};
  for (const [k, v] of Object.entries(byKey).sort(([, a], [, b]) => b - a)) perTask[k] = round(v / n, 3);
  const statusWrites = sumWhere(byKey, (verb, res) => WRITES.includes(verb) && res === "agenttasks/status");
  const events = sumWhere(byKey, (verb, res) => WRITES.includes(verb) && res === "events");
  return {
    side: spec.side,
    mode: modeOf(spec.rate),
    repeat: spec.repeat,
    tasks: n,
    createErrors: m.createErrors,
    phases,
    throughput: round(n / ((last - first) / 1000), 2),
    makespanS: round((last - first) / 1000, 2),
    createSeconds: round(m.createSeconds, 2),
    latencyS: percentiles(completed.map(t => (t.doneAt! - t.sentAt!) / 1000)),
    ...(spec.side === "operator" ? { stagesS: stages(completed) } : {}),
    cpuSeconds: round(m.cpu, 2),
    cpuSecondsPer1000: round((m.cpu / n) * 1000, 2),
    peakRssMiB: m.peakRssMiB,
    apiRequestsPerTask: perTask,
    requestsPerTask: round(total / n, 3),
    requestsPerCompletedTask: round(total / c, 3),
    statusWritesPerCompletedTask: round(statusWrites / c, 3),
    eventsPerTask: round(events / n, 3),
    failedRequestsPerTask: round(failed / n, 3),
  };
}

/** Median seconds between the phases the watch saw, over the completed tasks. */
function stages(times: TaskTimes[]): Record<string, number> {
  const med = (f: (t: TaskTimes) => number | undefined) => {
    const v = times
      .map(f)
      .filter((x): x is number => x !== undefined && Number.isFinite(x))
      .sort((a, b) => a - b);
    return v.length ? round(v[Math.floor(v.length / 2)] / 1000) : NaN;
  };
  return {
    "sent→Pending": med(t => (t.seen.Pending ?? NaN) - (t.sentAt ?? NaN)),
    "Pending→Processing": med(t => (t.seen.Processing ?? NaN) - (t.seen.Pending ?? NaN)),
    "Processing→Executing": med(t => (t.seen.Executing ?? NaN) - (t.seen.Processing ?? NaN)),
    "Executing→Applied": med(t => (t.seen.Applied ?? NaN) - (t.seen.Executing ?? NaN)),
    "Applied→Completed": med(t => (t.doneAt ?? NaN) - (t.seen.Applied ?? NaN)),
  };
}

/** The median of each key over records whose keys may differ (a missing key counts 0); `byValue`: largest first. */
function medianByKey(list: Record<string, number>[], byValue = true): Record<string, number> {
  const keys = [...new Set(list.flatMap(r => Object.keys(r)))];
  const out = keys.map(k => [k, spread(list.map(r => r[k] ?? 0)).median] as const);
  return Object.fromEntries(byValue ? out.sort(([, a], [, b]) => b - a) : out);
}

/** One mode over the repeats; operator and limit runs are paired by repeat. */
function summarizeMode(runs: RunResult[], mode: string): ModeSummary {
  const op = runs.filter(r => r.mode === mode && r.side === "operator");
  const li = runs.filter(r => r.mode === mode && r.side === "limit");
  const pairs = op.map(o => ({ o, l: li.find(l => l.repeat === o.repeat)! }));
  const latency = (list: RunResult[]) => ({
    p50: spread(list.map(r => r.latencyS.p50)),
    p95: spread(list.map(r => r.latencyS.p95)),
    p99: spread(list.map(r => r.latencyS.p99)),
  });
  const of = (list: RunResult[], f: (r: RunResult) => number) => spread(list.map(f));
  return {
    operatorThroughput: of(op, r => r.throughput),
    limitThroughput: of(li, r => r.throughput),
    throughputFractionOfLimit: spread(pairs.map(p => p.o.throughput / p.l.throughput)),
    operatorLatencyS: latency(op),
    limitLatencyS: latency(li),
    latencyRatio: {
      p50: spread(pairs.map(p => p.o.latencyS.p50 / p.l.latencyS.p50)),
      p99: spread(pairs.map(p => p.o.latencyS.p99 / p.l.latencyS.p99)),
    },
    addedLatencyS: {
      p50: spread(pairs.map(p => p.o.latencyS.p50 - p.l.latencyS.p50)),
      p99: spread(pairs.map(p => p.o.latencyS.p99 - p.l.latencyS.p99)),
    },
    operatorCpuSecondsPer1000: of(op, r => r.cpuSecondsPer1000),
    limitCpuSecondsPer1000: of(li, r => r.cpuSecondsPer1000),
    operatorPeakRssMiB: of(op, r => r.peakRssMiB),
    operatorStagesS: medianByKey(
      op.map(r => r.stagesS ?? {}),
      false,
    ),
    operatorRequestsPerTask: of(op, r => r.requestsPerTask),
    limitRequestsPerTask: of(li, r => r.requestsPerTask),
    operatorRequestsPerCompletedTask: of(op, r => r.requestsPerCompletedTask),
    limitRequestsPerCompletedTask: of(li, r => r.requestsPerCompletedTask),
    operatorStatusWritesPerCompletedTask: of(op, r => r.statusWritesPerCompletedTask),
    limitStatusWritesPerCompletedTask: of(li, r => r.statusWritesPerCompletedTask),
    operatorEventsPerTask: of(op, r => r.eventsPerTask),
    limitEventsPerTask: of(li, r => r.eventsPerTask),
    operatorApiRequestsPerTask: medianByKey(op.map(r => r.apiRequestsPerTask)),
    limitApiRequestsPerTask: medianByKey(li.map(r => r.apiRequestsPerTask)),
  };
}
