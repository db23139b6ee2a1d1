// Scenario "e2e": N LOW scale tasks over T Deployments, created in a burst and at each fixed rate,
// once through the operator and once through the same-run limit (bench/limit/), alternating
// which goes first so both see the same background load. Per run: throughput, latency, time per
// stage, API requests per task (the API server's own counters), CPU and peak RSS of the process.
import type { BenchEnv } from "../environment";
import { createDeployments, createTasks, deleteTasks, NS, NS_LIMIT, scaleTasks } from "../fixtures";
import { log } from "../log";
import { cpuSeconds, medianRecord, percentiles, round, RssSampler, spread } from "../measure";
import type { E2eResult, ModeSummary, RunResult, Side } from "../results";
import type { TaskTimes } from "../tracker";

/** The API server counters read per task ("verb resource[/subresource][ dry-run]"). */
const COUNTED = [
  "GET agenttasks",
  "PATCH agenttasks/status",
  "POST events",
  "GET deployments",
  "PATCH deployments",
  "PATCH deployments dry-run",
  "LIST agenttasks",
];

/** undefined: the burst. */
type Rate = number | undefined;

const modeOf = (rate: Rate): string => (rate === undefined ? "burst" : `${rate}/s`);

export async function e2eScenario(env: BenchEnv): Promise<E2eResult> {
  const { settings } = env;
  log(`e2e: ${settings.targets} Deployments in ${NS} and ${NS_LIMIT}`);
  for (const namespace of [NS, NS_LIMIT])
    await createDeployments(env.api, { namespace, prefix: "app", count: settings.targets, replicas: 2 });
  const modes: Rate[] = [undefined, ...settings.rates];
  const runs: RunResult[] = [];
  let counter = 0;
  for (let rep = 1; rep <= settings.repeats; rep++) {
    for (const [m, rate] of modes.entries()) {
      const order: Side[] = (rep + m) % 2 ? ["operator", "limit"] : ["limit", "operator"];
      for (const side of order) runs.push(await e2eRun(env, { side, rate, repeat: rep, run: ++counter }));
    }
  }
  if (env.limit.errors.length) log(`limit client errors: ${env.limit.errors.slice(0, 5).join(" | ")}`);
  const summary: Record<string, ModeSummary> = {};
  for (const rate of modes) summary[modeOf(rate)] = summarizeMode(runs, modeOf(rate));
  return { runs, summary };
}

interface RunSpec {
  side: Side;
  rate: Rate;
  repeat: number;
  /** Counts every run of the scenario: names the tasks and flips their replicas 2 ↔ 3. */
  run: number;
}

/** What a run reads before and after: the API server's request counters and the limit's own. */
interface Counters {
  counters: Map<string, number>;
  limitRequests?: number;
}

async function readCounters(env: BenchEnv, side: Side): Promise<Counters> {
  const counters = await env.api.requestCounters();
  const limitRequests = side === "limit" ? (await env.limit.stats()).requests : undefined;
  return { counters, limitRequests };
}

async function e2eRun(env: BenchEnv, spec: RunSpec): Promise<RunResult> {
  const { settings } = env;
  const { side, rate } = spec;
  const ns = side === "operator" ? NS : NS_LIMIT;
  const tracker = env.trackers[side];
  tracker.forget();
  const tasks = await scaleTasks(env.stack, {
    namespace: ns,
    prefix: `r${spec.run}`,
    count: settings.tasks,
    targets: settings.targets,
    targetPrefix: "app",
    replicasOf: i => 2 + ((Math.floor(i / settings.targets) + (spec.run % 2)) % 2),
    maxReplicas: 10,
  });
  const names = tasks.map(t => t.metadata.name);
  const pid = side === "operator" ? env.stack.operator.process.pid! : env.limit.pid;
  const before = await readCounters(env, side);
  const cpu0 = cpuSeconds(pid);
  const rss = new RssSampler(() => pid, 200);
  const t0 = Date.now();
  const createErrors = await createTasks(env.api, tracker, tasks, {
    rate,
    concurrency: settings.createConcurrency,
    onCreated: side === "limit" ? name => env.limit.send({ type: "task", namespace: ns, name }) : undefined,
  });
  const createSeconds = (Date.now() - t0) / 1000;
  await tracker.waitTerminal(names, Math.max(300_000, rate ? (settings.tasks / rate) * 3000 : 0));
  const cpu = cpuSeconds(pid) - cpu0;
  const peakRssMiB = rss.max();
  rss.stop();
  const after = await readCounters(env, side);
  const times = names.map(n => tracker.tasks.get(n)!);
  const r = runResult(spec, settings.tasks, times, { createErrors, createSeconds, cpu, peakRssMiB, before, after });
  log(
    `${side.padEnd(8)} ${r.mode.padEnd(6)} #${spec.repeat}: ${r.throughput} tasks/s, p50 ${r.latencyS.p50}s p99 ${r.latencyS.p99}s, ` +
      `cpu ${r.cpuSecondsPer1000}s/1000, rss ${peakRssMiB} MiB, phases ${JSON.stringify(r.phases)}`,
  );
  await deleteTasks(env.api, ns);
  return r;
}

interface Measured {
  createErrors: number;
  createSeconds: number;
  cpu: number;
  peakRssMiB: number;
  before: Counters;
  after: Counters;
}

function runResult(spec: RunSpec, n: number, times: TaskTimes[], m: Measured): RunResult {
  const first = Math.min(...times.map(t => t.sentAt!));
  const last = Math.max(...times.map(t => t.doneAt!));
  const phases: Record<string, number> = {};
  for (const t of times) phases[t.terminal!] = (phases[t.terminal!] ?? 0) + 1;
  const perTask: Record<string, number> = {};
  for (const k of COUNTED)
    perTask[k] = round(((m.after.counters.get(k) ?? 0) - (m.before.counters.get(k) ?? 0)) / n, 2);
  const completed = times.filter(t => t.terminal === "Completed");
  const { limitRequests: l0 } = m.before;
  const { limitRequests: l1 } = m.after;
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
    stagesS: stages(completed),
    cpuSeconds: round(m.cpu, 2),
    cpuSecondsPer1000: round((m.cpu / n) * 1000, 2),
    peakRssMiB: m.peakRssMiB,
    apiRequestsPerTask: perTask,
    ...(l0 !== undefined && l1 !== undefined ? { clientRequestsPerTask: round((l1 - l0) / n, 2) } : {}),
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
  return {
    operatorThroughput: spread(op.map(r => r.throughput)),
    limitThroughput: spread(li.map(r => r.throughput)),
    throughputFractionOfLimit: spread(pairs.map(p => p.o.throughput / p.l.throughput)),
    operatorLatencyS: latency(op),
    limitLatencyS: latency(li),
    addedLatencyS: {
      p50: spread(pairs.map(p => p.o.latencyS.p50 - p.l.latencyS.p50)),
      p99: spread(pairs.map(p => p.o.latencyS.p99 - p.l.latencyS.p99)),
    },
    p99AddedOverLimitP99: spread(pairs.map(p => (p.o.latencyS.p99 - p.l.latencyS.p99) / p.l.latencyS.p99)),
    operatorCpuSecondsPer1000: spread(op.map(r => r.cpuSecondsPer1000)),
    limitCpuSecondsPer1000: spread(li.map(r => r.cpuSecondsPer1000)),
    operatorPeakRssMiB: spread(op.map(r => r.peakRssMiB)),
    operatorStagesS: medianRecord(op.map(r => r.stagesS)),
    limitStagesS: medianRecord(li.map(r => r.stagesS)),
    operatorApiRequestsPerTask: medianRecord(op.map(r => r.apiRequestsPerTask)),
    limitApiRequestsPerTask: medianRecord(li.map(r => r.apiRequestsPerTask)),
  };
}
