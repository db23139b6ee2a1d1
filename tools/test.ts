// npm test: every test the project has, on a fresh clone. Builds the control plane first when the
// cache is empty (tens of minutes, with progress), then runs all jest projects (unit, integration
// with real TLS and OPA, e2e against the real control plane) and prints one closing line
// "tests: N passed, N failed". Extra arguments go to jest (e.g. a path filter).
//
// Nothing the run starts outlives it. Jest runs in a process group of its own, tied to this
// process (tools/reaper.ts), and every process of the run inherits ATB_TEST_RUN=<this run>:
// - Ctrl-C or SIGTERM: passed on to jest's whole group (jest, its workers, their in-group
//   children such as OPA); the watchdogs of jest and its workers then stop what those had
//   started in groups of their own (control planes, operators); this process waits for that and
//   SIGKILLs any process of the run still there, then exits 130 (143).
// - This process killed (SIGKILL, a crash): its watchdog stops jest's group, and the rest follows.
// - A run that was killed along with its watchdogs: the next run stops what it left (by the
//   environment variable, whose value names a runner that no longer exists).
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureBinaries } from "./controlplane/binaries";
import { processesWithEnv, processStart, running, stopRemaining, tieGroup, untieGroup } from "./reaper";

const root = join(__dirname, "..");
const RUN_VAR = "ATB_TEST_RUN";
const runId = `${process.pid}:${processStart(process.pid) ?? Date.now()}`;

interface JestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTotalTests: number;
  numRuntimeErrorTestSuites: number;
  success: boolean;
}

const ofThisRun = () => processesWithEnv(RUN_VAR).filter(p => p.value === runId);

/** Processes of earlier runs whose runner is gone (killed together with its watchdogs). */
async function stopLeftovers(): Promise<void> {
  const runnerGone = (value: string) => {
    const [pid, start] = value.split(":");
    return !(running(Number(pid)) && processStart(Number(pid)) === start);
  };
  const stale = () => processesWithEnv(RUN_VAR).filter(p => runnerGone(p.value));
  const found = stale();
  if (found.length === 0) return;
  for (const p of found) signal(p.pid, "SIGTERM");
  await stopRemaining(stale, 10_000);
  console.log(`[test] stopped ${found.length} processes left running by an earlier, killed test run`);
}

function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    /* already gone */
  }
}

interface JestExit {
  /** Jest's process group (its pid). */
  pgid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The signal this process received and passed on, if any. */
  interrupted?: NodeJS.Signals;
}

function runJest(args: string[]): Promise<JestExit> {
  const jest = join(root, "node_modules", ".bin", "jest");
  const child = spawn(jest, args, {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, FORCE_COLOR: "0", [RUN_VAR]: runId },
    detached: true,
  });
  const pgid = child.pid;
  if (!pgid) throw new Error("could not start jest");
  tieGroup(pgid);
  let interrupted: NodeJS.Signals | undefined;
  // A terminal's Ctrl-C reaches this process twice (directly, and passed on by run-ts.mjs); jest
  // is in a group of its own and gets it from here only, once.
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = sig;
    console.log(`\n[test] ${sig}: stopping jest and every process the run started`);
    signal(-pgid, sig);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return new Promise(resolve => {
    child.once("exit", (code, sig) => resolve({ pgid, code, signal: sig, interrupted }));
  });
}

/** After jest, however it ended: its group, then whatever of the run is still running. */
async function cleanUp(pgid: number): Promise<void> {
  signal(-pgid, "SIGTERM");
  // The watchdogs stop control planes and operators in the background (seconds): wait for them.
  const killed = await stopRemaining(ofThisRun, 20_000);
  untieGroup(pgid);
  if (killed.length > 0)
    console.log(`[test] killed ${killed.length} processes still running:\n  ${killed.join("\n  ")}`);
}

function report(out: string, t0: number, exit: JestExit): number {
  if (exit.interrupted) {
    console.log(`tests: 0 passed, 1 failed (interrupted by ${exit.interrupted})`);
    return exit.interrupted === "SIGINT" ? 130 : 143;
  }
  if (!existsSync(out)) {
    console.log(`tests: 0 passed, 1 failed (jest produced no results, exit ${exit.code ?? exit.signal})`);
    return 1;
  }
  const res = JSON.parse(readFileSync(out, "utf8")) as JestJson;
  const failed = res.numFailedTests + res.numRuntimeErrorTestSuites;
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  console.log(
    `\n[test] ${res.numTotalTests} tests in ${secs}s (suites that failed to run: ${res.numRuntimeErrorTestSuites})`,
  );
  console.log(`tests: ${res.numPassedTests} passed, ${failed} failed, ${res.numPendingTests} skipped`);
  if (res.numTotalTests === 0) return 1;
  return exit.code === 0 && res.success && failed === 0 && res.numPendingTests === 0 ? 0 : 1;
}

async function main(): Promise<number> {
  const t0 = Date.now();
  await stopLeftovers();
  ensureBinaries(l => console.log(l));
  // ATB_TEST_RESULTS: where jest's JSON goes (a nested run, such as the interrupt test's, keeps
  // its own).
  const out = process.env.ATB_TEST_RESULTS ?? join(root, "coverage", "jest-results.json");
  mkdirSync(join(out, ".."), { recursive: true });
  rmSync(out, { force: true });
  const args = ["--ci", "--maxWorkers=2", "--forceExit", "--json", `--outputFile=${out}`, ...process.argv.slice(2)];
  const exit = await runJest(args);
  await cleanUp(exit.pgid);
  return report(out, t0, exit);
}

main().then(
  code => process.exit(code),
  (err: unknown) => {
    console.error(err);
    console.log("tests: 0 passed, 1 failed (the runner failed)");
    process.exit(1);
  },
);
