// Scenario "restart": F finished tasks in the operator's namespace, then R restarts of the
// operator. Per restart: time from spawn to /readyz 200 (ready only after the initial sweep),
// broker calls (the broker's audit lines) and the operator's writes (the API server's audit log)
// over spawn + 15 s after ready, RSS and heap at the end. First the same restart with no tasks,
// as a baseline.
import { existsSync, readFileSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { USER_AGENT } from "../../capabilities/lib/kube";
import { auditLogPath } from "../../tools/controlplane/cluster";
import type { Stack } from "../../tools/stack";
import { operatorHeap, withOperatorOffline, type BenchEnv } from "../environment";
import {
  ADMISSION_LABELS,
  createDeployments,
  createTasks,
  finishedStatus,
  inParallel,
  NS_DONE,
  scaleTasks,
  tasksPath,
} from "../fixtures";
import { log } from "../log";
import { cpuSeconds, memory, round, sleep, spread } from "../measure";
import type { RestartMeasurement, RestartResult, RestartSeries } from "../results";

/** Deployments the finished tasks are spread over. */
const TARGETS = 100;
/** How long a restart is watched after ready. */
const OBSERVE_MS = 15_000;
/** Tasks minted and created per round while filling. */
const CHUNK = 1000;

export async function restartScenario(env: BenchEnv): Promise<RestartResult> {
  const { settings } = env;
  await createDeployments(env.api, { namespace: NS_DONE, prefix: "done", count: TARGETS, replicas: 1 });
  // The same restart with no task in the operator's namespaces: what the process costs by itself.
  log("restart: baseline with no tasks");
  const baseline = await measureRestarts(env, { names: [], phases: {}, fillSeconds: 0 }, 1);
  const t0 = Date.now();
  let names: string[];
  if (settings.fill === "bulk") {
    log(
      `restart: bulk-creating ${settings.finished} finished tasks (operator stopped, status written by the benchmark)`,
    );
    names = await withOperatorOffline(env, () => bulkFill(env, settings.finished));
  } else {
    names = await fillThroughOperator(env, t0);
  }
  const fillSeconds = (Date.now() - t0) / 1000;
  const phases = await phasesOf(env);
  log(`restart: ${names.length} finished tasks after ${round(fillSeconds, 1)}s: ${JSON.stringify(phases)}`);
  await sleep(12_000); // two sweeps: nothing left in flight
  const r = await measureRestarts(env, { names, phases, fillSeconds }, settings.restarts);
  return {
    ...r,
    baselineNoTasks: { readySeconds: baseline.readySeconds, rssMiB: baseline.rssMiB, peakRssMiB: baseline.peakRssMiB },
  };
}

async function phasesOf(env: BenchEnv): Promise<Record<string, number>> {
  const list = await env.api.ok<{ items: { status?: { phase?: string } }[] }>("GET", tasksPath(NS_DONE));
  const phases: Record<string, number> = {};
  for (const t of list.items) phases[t.status?.phase ?? "none"] = (phases[t.status?.phase ?? "none"] ?? 0) + 1;
  return phases;
}

// ---------------------------------------------------------------------------------------------
// Filling

/**
 * Bulk fill, with the operator offline: create the tasks (with the labels the mutating webhook
 * would add) and write a finished status on each. Minutes faster than sending 10,000 tasks
 * through the pipeline.
 */
async function bulkFill(env: BenchEnv, n: number): Promise<string[]> {
  const names: string[] = [];
  for (let start = 0; start < n; start += CHUNK) {
    const tasks = await scaleTasks(env.stack, {
      namespace: NS_DONE,
      prefix: `done-${start}`,
      count: Math.min(CHUNK, n - start),
      targets: TARGETS,
      targetPrefix: "done",
      replicasOf: () => 1,
      maxReplicas: 3,
    });
    for (const t of tasks) t.metadata.labels = { ...ADMISSION_LABELS };
    await inParallel(tasks, env.settings.createConcurrency, async (t, i) => {
      await env.api.ok("POST", tasksPath(NS_DONE), t);
      await env.api.ok(
        "PATCH",
        `${tasksPath(NS_DONE)}/${t.metadata.name}/status`,
        { status: finishedStatus(start + i, new Date().toISOString()) },
        "application/merge-patch+json",
      );
    });
    names.push(...tasks.map(t => t.metadata.name));
  }
  return names;
}

/** Tasks the broker denies (replicas over the token's maxReplicas), through the whole pipeline. */
async function fillThroughOperator(env: BenchEnv, t0: number): Promise<string[]> {
  const { settings } = env;
  const tracker = env.trackers.done;
  log(
    `restart: creating ${settings.finished} tasks the broker denies (over the token's maxReplicas) over ${TARGETS} Deployments`,
  );
  const names: string[] = [];
  for (let start = 0; start < settings.finished; start += CHUNK) {
    const tasks = await scaleTasks(env.stack, {
      namespace: NS_DONE,
      prefix: `done-${start}`,
      count: Math.min(CHUNK, settings.finished - start),
      targets: TARGETS,
      targetPrefix: "done",
      replicasOf: () => 9,
      maxReplicas: 3,
    });
    names.push(...tasks.map(t => t.metadata.name));
    await createTasks(env.api, tracker, tasks, { rate: undefined, concurrency: settings.createConcurrency });
  }
  log(`restart: ${names.length} created in ${round((Date.now() - t0) / 1000, 1)}s; waiting for them to finish`);
  await tracker.waitTerminal(names, 3_600_000);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Restarts

interface Filled {
  names: string[];
  phases: Record<string, number>;
  fillSeconds: number;
}

async function measureRestarts(env: BenchEnv, filled: Filled, count: number): Promise<RestartSeries> {
  const restarts: RestartMeasurement[] = [];
  for (let i = 1; i <= count; i++) {
    const r = await measureRestart(env, i);
    log(
      `restart #${i}: ready in ${r.readySeconds}s, broker calls ${r.brokerCalls}, writes ${r.writes}, rss ${r.rssMiB} MiB (peak ${r.hwmMiB})`,
    );
    restarts.push(r);
  }
  const { names, fillSeconds } = filled;
  return {
    finishedTasks: names.length,
    fill: env.settings.fill,
    finishedPhases: filled.phases,
    fillSeconds: round(fillSeconds, 1),
    fillThroughput: fillSeconds > 0 ? round(names.length / fillSeconds, 1) : 0,
    observeSecondsAfterReady: OBSERVE_MS / 1000,
    readySeconds: spread(restarts.map(r => r.readySeconds)),
    brokerCalls: spread(restarts.map(r => r.brokerCalls)),
    writes: spread(restarts.map(r => r.writes)),
    rssMiB: spread(restarts.map(r => r.rssMiB)),
    peakRssMiB: spread(restarts.map(r => r.hwmMiB)),
    cpuSecondsAfterWindow: spread(restarts.map(r => r.cpuSecondsAfterWindow)),
    restarts,
  };
}

/** SIGTERM, spawn again, wait for /readyz, watch OBSERVE_MS more; count what the new process did. */
async function measureRestart(env: BenchEnv, i: number): Promise<RestartMeasurement> {
  const stack = env.stack;
  const audit0 = statSync(auditLogPath(env.dataDir)).size;
  const broker0 = brokerLines(stack);
  const s0 = Date.now();
  await stack.operator.stop("SIGTERM");
  const stopSeconds = (Date.now() - s0) / 1000;
  const spawnAt = Date.now();
  await stack.restartOperator();
  const pid = stack.operator.process.pid!;
  const healthySeconds = (Date.now() - spawnAt) / 1000;
  while ((await readyz(stack.metricsPort)) !== 200) {
    if (Date.now() - spawnAt > 300_000) throw new Error("operator not ready 300 s after restart");
    await sleep(25);
  }
  const readySeconds = (Date.now() - spawnAt) / 1000;
  const cpuAtReady = cpuSeconds(pid);
  await sleep(OBSERVE_MS);
  await sleep(2000); // the audit log is written asynchronously
  const w = operatorWritesSince(env.dataDir, audit0);
  return {
    restart: i,
    stopSeconds: round(stopSeconds, 2),
    healthySeconds: round(healthySeconds, 2),
    readySeconds: round(readySeconds, 2),
    brokerCalls: brokerLines(stack) - broker0,
    writes: w.writes,
    writesByResource: w.byResource,
    cpuSecondsToReady: round(cpuAtReady, 2),
    cpuSecondsAfterWindow: round(cpuSeconds(pid), 2),
    ...memory(pid),
    heap: await operatorHeap(stack),
    observedSeconds: round((Date.now() - spawnAt) / 1000, 1),
  };
}

export function readyz(port: number): Promise<number> {
  return new Promise(resolve => {
    const req = httpRequest({ host: "127.0.0.1", port, path: "/readyz", timeout: 1000 }, res => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** Decisions the broker made so far (one audit line each). */
function brokerLines(stack: Stack): number {
  if (!existsSync(stack.auditFile)) return 0;
  return readFileSync(stack.auditFile, "utf8").split("\n").filter(Boolean).length;
}

interface AuditEntry {
  stage: string;
  verb: string;
  requestURI: string;
  userAgent?: string;
  objectRef?: { resource?: string; subresource?: string };
  responseStatus?: { code?: number };
}

/** A successful, non-dry-run write by the operator: "resource[/subresource]", else undefined. */
function operatorWrite(e: AuditEntry): string | undefined {
  if (e.stage !== "ResponseComplete" || !e.userAgent?.startsWith(USER_AGENT)) return undefined;
  // The audit policy also records reads of ConfigMaps and Secrets: only these verbs write.
  if (!["create", "update", "patch", "delete"].includes(e.verb) || /[?&]dryRun=/.test(e.requestURI)) return undefined;
  const code = e.responseStatus?.code ?? 0;
  if (code < 200 || code >= 300) return undefined;
  const sub = e.objectRef?.subresource ? `/${e.objectRef.subresource}` : "";
  return `${e.objectRef?.resource}${sub}`;
}

/** The operator's successful non-dry-run writes to tasks or targets recorded after `offset` bytes of the audit log. */
function operatorWritesSince(dataDir: string, offset: number): { writes: number; byResource: Record<string, number> } {
  const path = auditLogPath(dataDir);
  const size = statSync(path).size;
  const text = readFileSync(path)
    .subarray(size >= offset ? offset : 0)
    .toString("utf8");
  const byResource: Record<string, number> = {};
  let writes = 0;
  for (const line of text.split("\n")) {
    // Most lines are the benchmark's own or the controllers': skip them before parsing.
    if (!line.includes(USER_AGENT)) continue;
    const key = operatorWrite(JSON.parse(line) as AuditEntry);
    if (key === undefined) continue;
    byResource[key] = (byResource[key] ?? 0) + 1;
    writes++;
  }
  return { writes, byResource };
}
