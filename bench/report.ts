// The report: the targets checked against the results, the document written to results.json
// (BenchResults: run, machine, settings, units, targets, then each scenario's result) and the
// summary printed at the end of a run.
import type { Spread } from "./measure";
import { round } from "./measure";
import {
  failed,
  LOOPS,
  succeeded,
  type BenchResults,
  type BrokerResult,
  type E2eResult,
  type HeadlineRow,
  type LatencySpread,
  type ModeSummary,
  type RestartResult,
  type ShardsResult,
  type Target,
} from "./results";
import { E2E_SCENARIOS, type E2eScenarioName } from "./settings";

/** What the figures of results.json are in. */
export const UNITS: Record<string, string> = {
  throughput: "tasks/s, first create sent → last task terminal",
  latencyS: "seconds, create sent → the benchmark's watch sees phase Completed",
  RequestsPerTask:
    "the side's own API requests (API server audit log, by its ServiceAccount; the agent's create not counted) per task",
  cpuSecondsPer1000: "CPU seconds (utime+stime from /proc/<pid>/stat) per 1000 tasks",
  RssMiB: "MiB (VmRSS sampled every 200 ms; VmHWM for peaks)",
  ratePerS: "requests/s",
  Ms: "milliseconds",
  readySeconds: "seconds from spawning the operator to /readyz 200 (after its initial sweep)",
};

const pct = (s: Spread) => `${round(s.median * 100, 1)}% (${round(s.min * 100, 1)}–${round(s.max * 100, 1)})`;

// ---------------------------------------------------------------------------------------------
// Targets

/** The operator's throughput as a fraction of the limit's (burst), by scenario: with rollouts and without. */
export const THROUGHPUT_TARGETS: Record<E2eScenarioName, number> = { scale: 0.6, "update-config": 0.25 };
/** At most, on the operator's side, per allowed task: API requests, status writes; per task: Events. */
export const MAX_REQUESTS_PER_ALLOWED_TASK = 8;
export const MAX_STATUS_WRITES_PER_ALLOWED_TASK = 3;
export const MAX_EVENTS_PER_TASK = 2;
/** p99 added latency (operator p99 − limit p99) at the fixed rate of 10 tasks/s, seconds: below. */
export const MAX_ADDED_P99_AT_10_S = 1;
/** The operator's peak RSS during the end-to-end runs, MiB. */
export const MAX_RSS_MIB = 150;
/** A restart with many finished tasks: ready within this, RSS peak at most this (issue 16's targets). */
export const RESTART_MAX_READY_S = 10;
export const RESTART_MAX_RSS_MIB = 180;

type E2eResults = Partial<Record<E2eScenarioName, E2eResult>>;

function e2eResults(r: Pick<BenchResults, E2eScenarioName>): E2eResults {
  const out: E2eResults = {};
  for (const k of E2E_SCENARIOS) {
    const e = succeeded(r[k]);
    if (e) out[k] = e;
  }
  return out;
}

/** The benchmark's targets (docs/benchmarks.md), for the scenarios that ran and did not fail. */
export function targets(r: Pick<BenchResults, "broker" | "restart" | "shards" | E2eScenarioName>): Target[] {
  const broker = succeeded(r.broker);
  const restart = succeeded(r.restart);
  const shards = succeeded(r.shards);
  return [
    ...e2eTargets(e2eResults(r)),
    ...(broker ? brokerTargets(broker) : []),
    ...(shards ? shardTargets(shards) : []),
    ...(restart ? restartTargets(restart) : []),
  ];
}

/** Sharding never lets two watchers write one target or task, and each writes only its own. */
function shardTargets(s: ShardsResult): Target[] {
  return s.runs.map(r => {
    const bad =
      r.targetsWrittenByTwoShards.length +
      r.tasksWrittenByTwoShards.length +
      r.targetsWrittenByAnotherShard.length +
      r.tasksWrittenByAnotherShard.length;
    return {
      target: `shards ${r.shards}: no target or task written by two shards or by another shard than its own (audit log)`,
      value:
        `${r.targetsWrittenByTwoShards.length} targets and ${r.tasksWrittenByTwoShards.length} tasks by two shards, ` +
        `${r.targetsWrittenByAnotherShard.length} and ${r.tasksWrittenByAnotherShard.length} by another; ` +
        `targets by shard ${JSON.stringify(r.targetsByShard)}`,
      met: bad === 0 && Object.keys(r.tasksByShard).length > 0,
    };
  });
}

/** The highest median of a figure over the modes, with the mode it was seen in. */
function worst(e: E2eResult, f: (s: ModeSummary) => Spread): { value: number; mode: string } {
  let out = { value: -Infinity, mode: "" };
  for (const [mode, s] of Object.entries(e.summary)) if (f(s).median > out.value) out = { value: f(s).median, mode };
  return out;
}

function e2eTargets(all: E2eResults): Target[] {
  const out: Target[] = [];
  for (const [name, e] of Object.entries(all) as [E2eScenarioName, E2eResult][]) {
    const burst = e.summary.burst;
    const tasks = e.runs[0]?.tasks ?? 0;
    const min = THROUGHPUT_TARGETS[name];
    const f = burst.throughputFractionOfLimit;
    out.push({
      target: `${name}: operator throughput >= ${min * 100}% of the limit (burst of ${tasks})`,
      value: pct(f),
      met: f.median >= min,
    });
    const req = worst(e, s => s.operatorRequestsPerCompletedTask);
    out.push({
      target: `${name}: <= ${MAX_REQUESTS_PER_ALLOWED_TASK} API requests per allowed task (operator)`,
      value: `${round(req.value, 2)} (${req.mode}; limit ${round(burst.limitRequestsPerCompletedTask.median, 2)})`,
      met: req.value <= MAX_REQUESTS_PER_ALLOWED_TASK,
    });
    const st = worst(e, s => s.operatorStatusWritesPerCompletedTask);
    out.push({
      target: `${name}: <= ${MAX_STATUS_WRITES_PER_ALLOWED_TASK} status writes per allowed task (operator)`,
      value: `${round(st.value, 2)} (${st.mode})`,
      met: st.value <= MAX_STATUS_WRITES_PER_ALLOWED_TASK,
    });
    const ev = worst(e, s => s.operatorEventsPerTask);
    out.push({
      target: `${name}: <= ${MAX_EVENTS_PER_TASK} Events per task (operator)`,
      value: `${round(ev.value, 2)} (${ev.mode})`,
      met: ev.value <= MAX_EVENTS_PER_TASK,
    });
    const at10 = e.summary["10/s"]?.addedLatencyS.p99;
    out.push({
      target: `${name}: p99 added latency at 10 tasks/s < ${MAX_ADDED_P99_AT_10_S} s`,
      value: at10
        ? `${round(at10.median, 2)} s (operator p99 ${round(e.summary["10/s"].operatorLatencyS.p99.median, 2)} s, limit ${round(e.summary["10/s"].limitLatencyS.p99.median, 2)} s)`
        : "not measured (ATB_BENCH_RATES without 10)",
      met: at10 ? at10.median < MAX_ADDED_P99_AT_10_S : null,
    });
  }
  const runs = Object.values(all).flatMap(e => e.runs.filter(r => r.side === "operator"));
  if (runs.length) {
    const rss = Math.max(...runs.map(r => r.peakRssMiB));
    const tasks = Math.max(...runs.map(r => r.tasks));
    out.push({
      target: `operator RSS <= ${MAX_RSS_MIB} MiB peak with ${tasks} tasks per run`,
      value: `${rss} MiB peak over ${runs.length} runs`,
      met: rss <= MAX_RSS_MIB,
    });
  }
  return out;
}

function brokerTargets(broker: BrokerResult): Target[] {
  const r = broker.ratioClientBrokerToRawTrivial;
  return [{ target: "broker client >= 80% of the raw HTTPS rate", value: pct(r), met: r.median >= 0.8 }];
}

function restartTargets(restart: RestartResult): Target[] {
  const what = `restart with ${restart.finishedTasks} finished tasks`;
  return [
    {
      target: `${what}: 0 broker calls`,
      value: `${restart.brokerCalls.max} max`,
      met: restart.brokerCalls.max === 0,
    },
    {
      target: `${what}: 0 writes to tasks or targets`,
      value: `${restart.writes.max} max`,
      met: restart.writes.max === 0,
    },
    {
      target: `${what}: ready <= ${RESTART_MAX_READY_S} s`,
      value: `${restart.readySeconds.max} s max`,
      met: restart.readySeconds.max <= RESTART_MAX_READY_S,
    },
    {
      target: `${what}: RSS <= ${RESTART_MAX_RSS_MIB} MiB peak`,
      value: `${restart.peakRssMiB.max} MiB peak`,
      met: restart.peakRssMiB.max <= RESTART_MAX_RSS_MIB,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Summary

/** "median (min–max)", or "-" when the figure is missing. */
const f = (s: Spread | undefined, digits = 2) =>
  s ? `${round(s.median, digits)} (${round(s.min, digits)}–${round(s.max, digits)})` : "-";

/** The table docs/benchmarks.md leads with: each end-to-end scenario's burst. */
export function headline(r: Pick<BenchResults, E2eScenarioName>): HeadlineRow[] {
  return Object.entries(e2eResults(r)).map(([scenario, e]) => {
    const b = e.summary.burst;
    const op = e.runs.filter(x => x.side === "operator");
    return {
      scenario,
      tasks: e.runs[0]?.tasks ?? 0,
      limitTasksPerS: b.limitThroughput.median,
      operatorTasksPerS: b.operatorThroughput.median,
      ratio: round(b.throughputFractionOfLimit.median, 3),
      p99Ratio: round(b.latencyRatio.p99.median, 3),
      operatorRequestsPerTask: b.operatorRequestsPerTask.median,
      limitRequestsPerTask: b.limitRequestsPerTask.median,
      operatorPeakRssMiB: Math.max(...op.map(x => x.peakRssMiB)),
    };
  });
}

export function printSummary(d: BenchResults): void {
  console.log("\n==================== ATB operator benchmark ====================");
  console.log(`machine: ${JSON.stringify(d.machine)}`);
  for (const k of ["broker", ...E2E_SCENARIOS, "shards", "restart"] as const) {
    const o = d[k];
    if (failed(o)) console.log(`\n${k}: FAILED: ${o.error}`);
  }
  if (d.headline.length) {
    console.log(
      "\n| scenario | limit tasks/s | operator tasks/s | ratio | p99 ratio | requests/task (operator, limit) | RSS peak |",
    );
    console.log("|---|---|---|---|---|---|---|");
    for (const h of d.headline)
      console.log(
        `| ${h.scenario} (${h.tasks}) | ${h.limitTasksPerS} | ${h.operatorTasksPerS} | ${h.ratio} | ${h.p99Ratio} | ` +
          `${h.operatorRequestsPerTask}, ${h.limitRequestsPerTask} | ${h.operatorPeakRssMiB} MiB |`,
      );
  }
  const broker = succeeded(d.broker);
  const restart = succeeded(d.restart);
  if (broker) printBroker(broker);
  for (const [name, e] of Object.entries(e2eResults(d))) printE2e(name, e);
  const shards = succeeded(d.shards);
  if (shards) printShards(shards);
  if (restart) printRestart(restart);
  console.log("\ntargets");
  for (const t of d.targets)
    console.log(`  [${t.met === null ? "n/a" : t.met ? "met" : "NOT MET"}] ${t.target}: ${t.value}`);
  console.log("================================================================\n");
}

function printBroker(b: BrokerResult): void {
  console.log("\nbroker path (median (min–max) over repeats)");
  for (const k of LOOPS) {
    const l = b[k];
    console.log(`  ${k.padEnd(16)} ${f(l.ratePerS, 1)} req/s   p50 ${f(l.p50Ms)} ms   p99 ${f(l.p99Ms)} ms`);
  }
  for (const k of [
    "ratioClientBrokerToRawTrivial",
    "ratioClientToRawSameBroker",
    "ratioClientToRawSameTrivial",
  ] as const)
    console.log(`  ${k.padEnd(30)} ${f(b[k], 3)}`);
}

function printE2e(name: string, e: E2eResult): void {
  console.log(`\n${name}: ${e.action} of ${e.targets} ${e.targetKind}s (median (min–max) over repeats)`);
  for (const [mode, s] of Object.entries(e.summary)) printMode(mode, s);
}

function printMode(mode: string, s: ModeSummary): void {
  const lat = (l: LatencySpread) => `p50 ${f(l.p50)} p95 ${f(l.p95)} p99 ${f(l.p99)}`;
  console.log(`  ${mode}`);
  console.log(
    `    throughput: operator ${f(s.operatorThroughput)} tasks/s, limit ${f(s.limitThroughput)} tasks/s, ratio ${f(s.throughputFractionOfLimit, 3)}`,
  );
  console.log(`    latency operator ${lat(s.operatorLatencyS)} s; limit ${lat(s.limitLatencyS)} s`);
  console.log(
    `    latency ratio p50 ${f(s.latencyRatio.p50)} p99 ${f(s.latencyRatio.p99)}; added p99 ${f(s.addedLatencyS.p99)} s; ` +
      `operator CPU ${f(s.operatorCpuSecondsPer1000)} s/1000 tasks (limit ${f(s.limitCpuSecondsPer1000)}); operator peak RSS ${f(s.operatorPeakRssMiB, 1)} MiB`,
  );
  console.log(
    `    requests/task operator ${f(s.operatorRequestsPerTask)} (status writes ${f(s.operatorStatusWritesPerCompletedTask)}, Events ${f(s.operatorEventsPerTask)}), limit ${f(s.limitRequestsPerTask)}`,
  );
  console.log(`      operator ${JSON.stringify(s.operatorApiRequestsPerTask)}`);
  console.log(`      limit    ${JSON.stringify(s.limitApiRequestsPerTask)}`);
  console.log(`    stages operator ${JSON.stringify(s.operatorStagesS)}`);
}

function printShards(s: ShardsResult): void {
  console.log(
    `\nshards: a burst of ${s.tasks} scale tasks over ${s.targets} Deployments; limit ${s.limit.throughput} tasks/s`,
  );
  console.log(
    "| shards | tasks/s | ratio to limit | p50 s | p99 s | requests/task | CPU s/1000 | tasks by shard | written by two shards |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of s.runs)
    console.log(
      `| ${r.shards} | ${r.throughput} | ${r.ratioToLimit} | ${r.run.latencyS.p50} | ${r.run.latencyS.p99} | ` +
        `${r.run.requestsPerTask} | ${r.run.cpuSecondsPer1000} | ${JSON.stringify(r.tasksByShard)} | ` +
        `${r.targetsWrittenByTwoShards.length + r.tasksWrittenByTwoShards.length} |`,
    );
}

function printRestart(r: RestartResult): void {
  console.log(
    `\nrestart with ${String(r.finishedTasks)} finished tasks: ready ${f(r.readySeconds)} s, broker calls ${f(r.brokerCalls, 0)}, writes ${f(r.writes, 0)}, RSS ${f(r.rssMiB, 1)} MiB (peak ${f(r.peakRssMiB, 1)})`,
  );
  const b = r.baselineNoTasks;
  console.log(
    `  the same restart with no tasks: ready ${f(b.readySeconds)} s, RSS ${f(b.rssMiB, 1)} MiB (peak ${f(b.peakRssMiB, 1)})`,
  );
}
