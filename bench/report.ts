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
  type LatencySpread,
  type ModeSummary,
  type RestartResult,
  type Target,
} from "./results";

/** What the figures of results.json are in. */
export const UNITS: Record<string, string> = {
  throughput: "tasks/s, first create sent → last task terminal",
  latencyS: "seconds, create sent → the benchmark's watch sees phase Completed",
  cpuSecondsPer1000: "CPU seconds (utime+stime from /proc/<pid>/stat) per 1000 tasks",
  RssMiB: "MiB (VmRSS sampled every 200 ms; VmHWM for peaks)",
  ratePerS: "requests/s",
  Ms: "milliseconds",
  readySeconds: "seconds from spawning the operator to /readyz 200 (after its initial sweep)",
};

const MIB_IN_MB = 1.048576;
const pct = (s: Spread) => `${round(s.median * 100, 1)}% (${round(s.min * 100, 1)}–${round(s.max * 100, 1)})`;

// ---------------------------------------------------------------------------------------------
// Targets

/** The benchmark's targets (docs/benchmarks.md), for the scenarios that ran and did not fail. */
export function targets(r: Pick<BenchResults, "broker" | "e2e" | "restart">): Target[] {
  const e2e = succeeded(r.e2e);
  const broker = succeeded(r.broker);
  const restart = succeeded(r.restart);
  return [
    ...(e2e ? e2eTargets(e2e) : []),
    ...(broker ? brokerTargets(broker) : []),
    ...(restart ? restartTargets(restart) : []),
  ];
}

function e2eTargets(e2e: E2eResult): Target[] {
  const out: Target[] = [];
  for (const [mode, s] of Object.entries(e2e.summary)) {
    const f = s.throughputFractionOfLimit;
    out.push({
      target: `operator throughput >= 70% of the same-run limit (${mode})`,
      value: pct(f),
      met: f.median >= 0.7,
    });
  }
  const s50 = e2e.summary["50/s"];
  if (s50) {
    const r = s50.p99AddedOverLimitP99;
    out.push({
      target: "p99 added latency < 2x the limit's p99 per-task latency at 50 tasks/s",
      value: `${round(r.median, 2)}x (${round(r.min, 2)}–${round(r.max, 2)})`,
      met: r.median < 2,
    });
  }
  const rss = Math.max(...Object.values(e2e.summary).map(s => s.operatorPeakRssMiB.max));
  out.push({
    target: "operator RSS < 200 MB during the e2e runs",
    value: `${rss} MiB peak`,
    met: rss * MIB_IN_MB < 200,
  });
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
      target: `${what}: RSS < 200 MB`,
      value: `${restart.peakRssMiB.max} MiB peak`,
      met: restart.peakRssMiB.max * MIB_IN_MB < 200,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Summary

/** "median (min–max)", or "-" when the figure is missing. */
const f = (s: Spread | undefined, digits = 2) =>
  s ? `${round(s.median, digits)} (${round(s.min, digits)}–${round(s.max, digits)})` : "-";

export function printSummary(d: BenchResults): void {
  console.log("\n==================== ATB operator benchmark ====================");
  console.log(`machine: ${JSON.stringify(d.machine)}`);
  for (const k of ["broker", "e2e", "restart"] as const) {
    const o = d[k];
    if (failed(o)) console.log(`\n${k}: FAILED: ${o.error}`);
  }
  const broker = succeeded(d.broker);
  const e2e = succeeded(d.e2e);
  const restart = succeeded(d.restart);
  if (broker) printBroker(broker);
  if (e2e) printE2e(e2e);
  if (restart) printRestart(restart);
  console.log("\ntargets");
  for (const t of d.targets) console.log(`  [${t.met ? "met" : "NOT MET"}] ${t.target}: ${t.value}`);
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

function printE2e(e2e: E2eResult): void {
  console.log("\nend to end (median (min–max) over repeats)");
  for (const [mode, s] of Object.entries(e2e.summary)) printMode(mode, s);
}

function printMode(mode: string, s: ModeSummary): void {
  const lat = (l: LatencySpread) => `p50 ${f(l.p50)} p95 ${f(l.p95)} p99 ${f(l.p99)}`;
  console.log(`  ${mode}`);
  console.log(
    `    throughput: operator ${f(s.operatorThroughput)} tasks/s, limit ${f(s.limitThroughput)} tasks/s, fraction ${f(s.throughputFractionOfLimit, 3)}`,
  );
  console.log(`    latency operator ${lat(s.operatorLatencyS)} s; limit ${lat(s.limitLatencyS)} s`);
  console.log(
    `    p99 added / limit p99: ${f(s.p99AddedOverLimitP99)}; operator CPU ${f(s.operatorCpuSecondsPer1000)} s/1000 tasks (limit ${f(s.limitCpuSecondsPer1000)}); operator peak RSS ${f(s.operatorPeakRssMiB, 1)} MiB`,
  );
  console.log(`    stages operator ${JSON.stringify(s.operatorStagesS)}`);
  console.log(`    stages limit    ${JSON.stringify(s.limitStagesS)}`);
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
