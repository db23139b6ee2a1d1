// npm run bench: the benchmark of the operator against the physical limit of this machine, in the
// same run (docs/benchmarks.md says what is measured and how). This file is the entry: it reads
// the settings, starts the environment, runs the selected scenarios in their fixed order, writes
// the results and prints the summary. Where the rest lives:
//   settings.ts       every ATB_BENCH_* variable (parseSettings)
//   environment.ts    control plane, broker, operator, the limit process; machine facts
//   fixtures.ts       the Deployments, tasks, finished statuses and PoAs the scenarios create
//   scenarios/        broker.ts, e2e.ts (the scenarios scale and update-config), shards.ts, restart.ts
//   limit/            the same-run limit, the least API work a task needs: worker.ts (its
//                     process), driver.ts (our side), protocol.ts, identity.ts (who it is)
//   audit.ts          the API server's audit log: each side's requests per task
//   broker-load.ts    the broker scenario's load process
//   results.ts        the shape of results.json (BenchResults); report.ts: targets and summary
//   api.ts, tracker.ts, measure.ts, profile.ts, log.ts: API client and watch, task watch,
//                     statistics and /proc, the operator's CPU profile, progress lines
// A new scenario is a file in scenarios/ returning its result type (added to results.ts), a
// name in SCENARIOS (settings.ts), an entry in RUNNERS below, and its targets in report.ts.
import { writeFileSync } from "node:fs";
import { memory, round, loadAverage } from "./measure";
import { operatorHeap, startEnvironment, Teardown, type BenchEnv } from "./environment";
import { log } from "./log";
import { summarizeProfiles } from "./profile";
import { headline, printSummary, targets, UNITS } from "./report";
import type { BenchResults, ScenarioResultOf, ScenarioResults } from "./results";
import { brokerScenario } from "./scenarios/broker";
import { e2eScenario } from "./scenarios/e2e";
import { restartScenario } from "./scenarios/restart";
import { shardsScenario } from "./scenarios/shards";
import { parseSettings, SCENARIOS, type ScenarioName, type Settings } from "./settings";

type Runners = { [K in ScenarioName]: (env: BenchEnv) => Promise<ScenarioResultOf[K]> };

const RUNNERS: Runners = {
  broker: brokerScenario,
  scale: e2eScenario("scale"),
  "update-config": e2eScenario("update-config"),
  shards: shardsScenario,
  restart: restartScenario,
};

/** A failing scenario is recorded with its error; the others still run and the file is written. */
async function runScenario<K extends ScenarioName>(name: K, env: BenchEnv, into: ScenarioResults): Promise<void> {
  try {
    into[name] = await RUNNERS[name](env);
  } catch (err) {
    log(`scenario ${name} failed: ${String(err)}`);
    into[name] = { error: String(err) };
  }
}

async function benchmark(settings: Settings, teardown: Teardown): Promise<void> {
  const started = new Date();
  log(`settings ${JSON.stringify(settings)}`);
  const env = await startEnvironment(settings, teardown);
  const results: ScenarioResults = {};
  for (const name of SCENARIOS) if (settings.scenarios.includes(name)) await runScenario(name, env, results);
  const operatorLifetime = {
    ...memory(env.stack.operator.process.pid!),
    heap: await operatorHeap(env.stack),
    note: "current operator process (after the last restart when the restart scenario ran)",
  };
  // The operator writes its CPU profile when it exits.
  await env.limit.stop();
  await env.stack.stop();
  // The output path is the one setting not recorded.
  const recorded: Omit<Settings, "out"> & { out?: string } = { ...settings };
  delete recorded.out;
  const doc: BenchResults = {
    benchmark: "ATB operator: throughput, latency, API work, cost and restart against the same-run limit",
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationMinutes: round((Date.now() - started.getTime()) / 60_000, 1),
    machine: { ...env.machine, loadAverageAtEnd: loadAverage() },
    settings: {
      ...recorded,
      operatorEnv: { ...env.operatorEnv, ATB_SWEEP_INTERVAL_SECONDS: "5" },
      limit: { user: env.limitIdentity.username, writesTargetsAs: env.limitIdentity.executor, brokerCalls: 0 },
    },
    units: UNITS,
    headline: headline(results),
    targets: targets(results),
    ...results,
    operatorLifetime,
    ...(settings.profile ? { profile: summarizeProfiles(env.profileDir) } : {}),
  };
  writeFileSync(settings.out, `${JSON.stringify(doc, null, 2)}\n`);
  printSummary(doc);
  log(`wrote ${settings.out}`);
}

async function main(): Promise<void> {
  const settings = parseSettings(process.env);
  const teardown = new Teardown();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping everything`);
      void teardown.run().finally(() => process.exit(130));
    });
  }
  try {
    await benchmark(settings, teardown);
  } finally {
    await teardown.run();
  }
}

main().catch(err => {
  console.error(err);
  process.exitCode = 1;
});
