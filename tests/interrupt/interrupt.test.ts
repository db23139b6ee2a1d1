// GIVEN `npm test`'s runner (node tools/run-ts.mjs tools/test.ts) running one e2e file, with its
// control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK), the broker's OPA and
// the operator up, WHEN its process group gets SIGINT (what a terminal's Ctrl-C sends), or WHEN
// the runner's group and jest are SIGKILLed (a crash: nothing gets to clean up), THEN within a
// bounded time no process of that run is left, and neither are its control plane's data folder and
// OPA's socket folder.
//
// The run is told apart from everything else on the machine (the outer run's own control plane
// included) by a variable in its environment that every process it starts inherits; /proc shows
// a process's environment as it started, also after its parents are gone.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { processesWithEnv, stopRemaining, type MarkedProcess } from "../../tools/reaper";

const root = join(__dirname, "..", "..");
const MARK = "ATB_INTERRUPT_MARK";
// An e2e file that starts a whole stack (broker, OPA, operator) in its beforeAll.
const INNER = "tests/e2e/pipeline.test.ts";
const STARTUP_MS = 240_000;
/** From the signal to the last process of the run gone. */
const BOUND_MS = 45_000;

type Kind = "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kwok" | "opa" | "operator";
const KINDS: Kind[] = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kwok",
  "opa",
  "operator",
];

function kindOf(p: MarkedProcess): Kind | "jest" | "other" {
  const argv0 = basename(p.command.split(" ")[0] ?? "");
  if ((KINDS as string[]).includes(argv0)) return argv0 as Kind;
  if (p.command.includes(join(root, "pepr.ts"))) return "operator";
  if (/node_modules\/(\.bin\/jest|jest\/bin\/jest\.js)/.test(p.command)) return "jest";
  return "other";
}

interface Run {
  mark: string;
  child: ChildProcess;
  output: () => string;
  scratch: string;
}

const processesOf = (run: Run) => processesWithEnv(MARK).filter(p => p.value === run.mark);
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
const describeAll = (ps: MarkedProcess[]) => ps.map(p => `${p.pid} [${kindOf(p)}] ${p.command.slice(0, 160)}`);
const runs: Run[] = [];

/** Starts the runner in a process group of its own, as a shell starts a foreground job. */
function startRun(): Run {
  const mark = `${process.pid}-${runs.length}-${Date.now()}`;
  const scratch = mkdtempSync(join(tmpdir(), "atb-interrupt-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    [MARK]: mark,
    ATB_TEST_RESULTS: join(scratch, "jest-results.json"),
  };
  // Nothing of this jest worker's own run may leak in: the e2e plane it points at, its worker id.
  for (const k of ["ATB_E2E_STATE", "KUBECONFIG", "JEST_WORKER_ID", "ATB_E2E_KEEP"]) delete env[k];
  const child = spawn(process.execPath, [join(root, "tools", "run-ts.mjs"), "tools/test.ts", INNER], {
    cwd: root,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  const run = { mark, child, output: () => out, scratch };
  runs.push(run);
  return run;
}

/** Waits until every kind of process is up; returns them and the folders the run must remove. */
async function waitForStack(run: Run): Promise<{ procs: MarkedProcess[]; dirs: string[] }> {
  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    const procs = processesOf(run);
    const seen = new Set(procs.map(kindOf));
    if (KINDS.every(k => seen.has(k)) && seen.has("jest")) {
      const arg = (kind: Kind, re: RegExp) => re.exec(procs.find(p => kindOf(p) === kind)!.command)?.[1];
      // The control plane's data folder, and OPA's socket folder when it listens on one.
      const dirs = [dirname(arg("etcd", /--data-dir=(\S+)/)!), arg("opa", /--addr=unix:\/\/(\S+)\/opa\.sock/)];
      return { procs, dirs: dirs.filter((d): d is string => d !== undefined) };
    }
    if (run.child.exitCode !== null || Date.now() > deadline)
      throw new Error(
        `the run did not bring up ${KINDS.filter(k => !seen.has(k)).join(", ")}:\n${run.output().slice(-4000)}`,
      );
    await sleep(250);
  }
}

/** What is left of the run when everything is gone or the bound has passed. */
async function leftAfter(run: Run, since: number): Promise<MarkedProcess[]> {
  while (processesOf(run).length > 0 && Date.now() - since < BOUND_MS) await sleep(200);
  return processesOf(run);
}

afterAll(async () => {
  // Whatever a failed expectation left: killed here, so a failure does not leak a control plane.
  for (const run of runs) {
    const left = processesOf(run);
    for (const p of left) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    await stopRemaining(() => processesOf(run), 0);
    rmSync(run.scratch, { recursive: true, force: true });
  }
});

test("Ctrl-C (SIGINT to the runner's process group) stops every process of the run", async () => {
  const run = startRun();
  const { dirs } = await waitForStack(run);
  const exited = new Promise<number | null>(r => run.child.once("exit", code => r(code)));
  const t0 = Date.now();
  process.kill(-run.child.pid!, "SIGINT");
  const left = await leftAfter(run, t0);
  const code = await Promise.race([exited, sleep(5_000).then(() => "still running")]);
  expect({ left: describeAll(left), dirsLeft: dirs.filter(d => existsSync(d)) }).toEqual({ left: [], dirsLeft: [] });
  // The runner waits for the run's processes before it exits, and says it was interrupted.
  expect({ code, closing: /tests: 0 passed, 1 failed \(interrupted by SIGINT\)/.test(run.output()) }).toEqual({
    code: 130,
    closing: true,
  });
  console.log(`[interrupt] SIGINT: every process of the run gone ${((Date.now() - t0) / 1000).toFixed(1)}s later`);
}, 330_000);

test("a crash (SIGKILL of the runner's group and of jest) stops every process of the run", async () => {
  const run = startRun();
  const { procs, dirs } = await waitForStack(run);
  const jest = procs.find(p => kindOf(p) === "jest")!;
  const t0 = Date.now();
  process.kill(-run.child.pid!, "SIGKILL");
  process.kill(jest.pid, "SIGKILL");
  const left = await leftAfter(run, t0);
  expect({ left: describeAll(left), dirsLeft: dirs.filter(d => existsSync(d)) }).toEqual({ left: [], dirsLeft: [] });
  console.log(`[interrupt] SIGKILL: every process of the run gone ${((Date.now() - t0) / 1000).toFixed(1)}s later`);
}, 330_000);
