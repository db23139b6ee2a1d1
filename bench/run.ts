// npm run bench: the benchmark of issue 7 part 1 on a control plane of its own (up() in a scratch
// folder under /dev/shm), with the reference broker over mTLS and the operator as a child
// process (tools/stack.ts). Scenarios, each repeated ATB_BENCH_REPEATS times:
//   broker   the broker client against the reference broker vs raw HTTPS to a trivial endpoint
//   e2e      N LOW scale tasks over T Deployments, burst and fixed rates, through the operator and
//            through the same-run limit (bench/limit-worker.ts), interleaved; cost (CPU, RSS)
//   restart  F finished tasks, then operator restarts: time to ready, broker calls, writes, RSS
// Writes bench/results.json and prints a summary. Settings: see README of bench in
// docs/benchmarks.md (ATB_BENCH_*).
import { fork, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:https";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { request as httpRequest } from "node:http";
import type { DecideRequest } from "../capabilities/lib/broker/client";
import { ensureBinaries } from "../tools/controlplane/binaries";
import { auditLogPath, down, kubectl, up, type ClusterState } from "../tools/controlplane/cluster";
import { installCrds, startStack, type Stack } from "../tools/stack";
import { BUNDLE } from "../tools/operator";
import { webhookConfigurations } from "../tools/webhooks";
import { USER_AGENT } from "../capabilities/lib/kube";
import type { FromLimit, LimitInit, ToLimit } from "./limit-worker";
import type { LoadResult, LoadSpec } from "./broker-load";
import {
  Api,
  cpuSeconds,
  memory,
  percentiles,
  round,
  RssSampler,
  sleep,
  spread,
  Tracker,
  type Spread,
  type TaskTimes,
} from "./lib";

const ROOT = join(__dirname, "..");
const env = (name: string, def: string) => process.env[name] ?? def;
const CFG = {
  tasks: Number(env("ATB_BENCH_TASKS", "1000")),
  targets: Number(env("ATB_BENCH_TARGETS", "50")),
  repeats: Number(env("ATB_BENCH_REPEATS", "3")),
  rates: env("ATB_BENCH_RATES", "10,50,100").split(",").filter(Boolean).map(Number),
  finished: Number(env("ATB_BENCH_FINISHED", "10000")),
  fill: env("ATB_BENCH_FILL", "bulk") as "bulk" | "operator",
  restarts: Number(env("ATB_BENCH_RESTARTS", "3")),
  qps: Number(env("ATB_BENCH_QPS", "1000")),
  workers: Number(env("ATB_BENCH_WORKERS", "8")),
  pollMs: 500,
  brokerSeconds: Number(env("ATB_BENCH_BROKER_SECONDS", "5")),
  brokerConcurrency: Number(env("ATB_BENCH_BROKER_CONCURRENCY", "8")),
  createConcurrency: Number(env("ATB_BENCH_CREATE_CONCURRENCY", "16")),
  scenarios: env("ATB_BENCH_SCENARIOS", "broker,e2e,restart").split(","),
  profile: env("ATB_BENCH_PROFILE", "0") === "1",
  /** bundle: the module as `npm run build` ships it, under plain node; source: pepr.ts under tsx. */
  operator: env("ATB_BENCH_OPERATOR", "bundle") as "bundle" | "source",
  keep: env("ATB_BENCH_KEEP", "0") === "1",
  out: env("ATB_BENCH_OUT", join(ROOT, "bench", "results.json")),
};
const NS = "bench";
const NS_LIMIT = "bench-limit";
const NS_DONE = "bench-done";
const AGENT = "spiffe://atb.example.com/agent/bench-agent";
const TASKS_PATH = (ns: string) => `/apis/atb.siemens.com/v1alpha1/namespaces/${ns}/agenttasks`;
const log = (s: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`);

interface Ctx {
  cluster: ClusterState;
  stack: Stack;
  api: Api;
  dataDir: string;
  trackers: Record<"operator" | "limit" | "done", Tracker>;
  limit: LimitChild;
  rss: RssSampler;
}

// ---------------------------------------------------------------------------------------------
// The limit child

class LimitChild {
  private readonly waiting = new Map<string, (m: FromLimit) => void>();
  errors: string[] = [];
  constructor(readonly child: ChildProcess) {
    child.on("message", (m: FromLimit) => {
      if (m.type === "done" && m.error) this.errors.push(`${m.name}: ${m.error}`);
      const w = this.waiting.get(m.type);
      if (w) {
        this.waiting.delete(m.type);
        w(m);
      }
    });
  }
  static async start(init: LimitInit): Promise<LimitChild> {
    const child = fork(join(__dirname, "limit-worker.ts"), [], {
      execArgv: ["--import", "tsx"],
      cwd: ROOT,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const l = new LimitChild(child);
    const ready = l.next("ready");
    l.send(init);
    await ready;
    return l;
  }
  send(m: ToLimit): void {
    this.child.send(m);
  }
  next(type: FromLimit["type"]): Promise<FromLimit> {
    return new Promise(r => this.waiting.set(type, r));
  }
  async stats(): Promise<{ requests: number; writes: number }> {
    const p = this.next("stats");
    this.send({ type: "stats" });
    const m = await p;
    return m.type === "stats" ? { requests: m.requests, writes: m.writes } : { requests: 0, writes: 0 };
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise(r => this.child.once("exit", r));
    this.send({ type: "exit" });
    const t = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------
// Setup

function deployment(name: string, namespace: string, replicas: number): object {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: "app", image: "nginx:1.27" }], terminationGracePeriodSeconds: 0 },
      },
    },
  };
}

async function createDeployments(api: Api, namespace: string, prefix: string, n: number, replicas: number) {
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      api.ok(
        "POST",
        `/apis/apps/v1/namespaces/${namespace}/deployments`,
        deployment(`${prefix}-${i}`, namespace, replicas),
      ),
    ),
  );
  const deadline = Date.now() + 180_000;
  for (;;) {
    const list = await api.ok<{ items: { spec: { replicas: number }; status?: { availableReplicas?: number } }[] }>(
      "GET",
      `/apis/apps/v1/namespaces/${namespace}/deployments`,
    );
    const ready = list.items.filter(d => (d.status?.availableReplicas ?? 0) === d.spec.replicas).length;
    if (ready === n) return;
    if (Date.now() > deadline) throw new Error(`${namespace}: only ${ready} of ${n} deployments available`);
    await sleep(1000);
  }
}

function versions(cluster: ClusterState): Record<string, string> {
  const bin = ensureBinaries();
  const v = JSON.parse(kubectl(bin, cluster.kubeconfig, ["version", "-o", "json"])) as {
    serverVersion?: { gitVersion?: string };
  };
  const etcd = spawnText(bin.etcd, ["--version"]);
  const opa = spawnText(bin.opa, ["version"]);
  return {
    kubernetes: v.serverVersion?.gitVersion ?? "unknown",
    etcd: /etcd Version: (\S+)/.exec(etcd)?.[1] ?? etcd.split("\n")[0],
    opa: /Version: (\S+)/.exec(opa)?.[1] ?? opa.split("\n")[0],
    kwok:
      (/KWOK_VERSION=(\S+)/.exec(readFileSync(join(ROOT, "tools/controlplane/versions.env"), "utf8")) ?? [])[1] ?? "",
  };
}

function spawnText(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
}

function machine(cluster: ClusterState) {
  const cpu = cpus();
  return {
    cores: cpu.length,
    cpuModel: cpu[0]?.model ?? "unknown",
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    ...versions(cluster),
    loadAverageAtStart: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number),
  };
}

// ---------------------------------------------------------------------------------------------
// Tasks

async function mintTasks(
  stack: Stack,
  namespace: string,
  prefix: string,
  n: number,
  targets: number,
  replicasOf: (i: number) => number,
  maxReplicas = 10,
  targetPrefix = "app",
): Promise<object[]> {
  const out: object[] = [];
  for (let i = 0; i < n; i++) {
    const target = `${targetPrefix}-${i % targets}`;
    const token = await stack.mint({
      agent: AGENT,
      action: "scale",
      target: { kind: "Deployment", namespace, name: target },
      maxReplicas,
      ttlSeconds: 300,
    });
    out.push({
      apiVersion: "atb.siemens.com/v1alpha1",
      kind: "AgentTask",
      metadata: { name: `${prefix}-${i}`, namespace },
      spec: {
        agentId: AGENT,
        poaToken: token,
        action: "scale",
        target: { kind: "Deployment", name: target, namespace },
        payload: { replicas: replicasOf(i) },
      },
    });
  }
  return out;
}

/** Creates the tasks: `rate` undefined = as fast as the API server accepts them (createConcurrency in flight). */
async function createTasks(
  api: Api,
  tracker: Tracker,
  namespace: string,
  tasks: object[],
  rate: number | undefined,
  onCreated: (name: string) => void,
): Promise<number> {
  let errors = 0;
  const one = async (t: object) => {
    const name = (t as { metadata: { name: string } }).metadata.name;
    const e = tracker.entry(name);
    e.sentAt = Date.now();
    const r = await api.request("POST", TASKS_PATH(namespace), t);
    if (r.status !== 201) {
      errors++;
      if (errors < 4) log(`create ${name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      e.doneAt = Date.now();
      e.terminal = "CreateFailed";
      return;
    }
    e.createdAt = Date.now();
    onCreated(name);
  };
  if (rate === undefined) {
    let next = 0;
    const worker = async () => {
      while (next < tasks.length) await one(tasks[next++]);
    };
    await Promise.all(Array.from({ length: CFG.createConcurrency }, worker));
  } else {
    const t0 = Date.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < tasks.length; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      inflight.push(one(tasks[i]));
    }
    await Promise.all(inflight);
  }
  return errors;
}

async function deleteTasks(api: Api, namespace: string): Promise<void> {
  await api.ok("DELETE", TASKS_PATH(namespace));
  await api.ok("DELETE", `/api/v1/namespaces/${namespace}/events`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const l = await api.ok<{ items: unknown[] }>("GET", `${TASKS_PATH(namespace)}?limit=1`);
    if (l.items.length === 0) return;
    if (Date.now() > deadline) throw new Error(`tasks in ${namespace} not deleted`);
    await sleep(500);
  }
}

// ---------------------------------------------------------------------------------------------
// End-to-end runs

interface RunResult {
  side: "operator" | "limit";
  mode: string;
  repeat: number;
  tasks: number;
  createErrors: number;
  phases: Record<string, number>;
  /** tasks per second from the first create sent to the last task terminal. */
  throughput: number;
  makespanS: number;
  createSeconds: number;
  latencyS: { p50: number; p95: number; p99: number; max: number; n: number };
  /** median seconds spent between the phases, as the watch saw them. */
  stagesS: Record<string, number>;
  cpuSeconds: number;
  cpuSecondsPer1000: number;
  peakRssMiB: number;
  apiRequestsPerTask: Record<string, number>;
  clientRequestsPerTask?: number;
}

const COUNTED = [
  "GET agenttasks",
  "PATCH agenttasks/status",
  "POST events",
  "GET deployments",
  "PATCH deployments",
  "PATCH deployments dry-run",
  "LIST agenttasks",
];

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

let runCounter = 0;

async function e2eRun(
  c: Ctx,
  side: "operator" | "limit",
  rate: number | undefined,
  repeat: number,
): Promise<RunResult> {
  const ns = side === "operator" ? NS : NS_LIMIT;
  const tracker = side === "operator" ? c.trackers.operator : c.trackers.limit;
  const mode = rate === undefined ? "burst" : `${rate}/s`;
  const prefix = `r${++runCounter}`;
  const flip = runCounter % 2;
  tracker.forget();
  const tasks = await mintTasks(
    c.stack,
    ns,
    prefix,
    CFG.tasks,
    CFG.targets,
    i => 2 + ((Math.floor(i / CFG.targets) + flip) % 2),
  );
  const names = tasks.map(t => (t as { metadata: { name: string } }).metadata.name);
  const pid = side === "operator" ? c.stack.operator.process.pid! : c.limit.child.pid!;
  const counters0 = await c.api.requestCounters();
  const limit0 = side === "limit" ? await c.limit.stats() : undefined;
  const cpu0 = cpuSeconds(pid);
  const rss = new RssSampler(() => pid, 200);
  const t0 = Date.now();
  const createErrors = await createTasks(c.api, tracker, ns, tasks, rate, name =>
    side === "limit" ? c.limit.send({ type: "task", namespace: ns, name }) : undefined,
  );
  const createSeconds = (Date.now() - t0) / 1000;
  await tracker.waitTerminal(names, Math.max(300_000, rate ? (CFG.tasks / rate) * 3000 : 0));
  const cpu = cpuSeconds(pid) - cpu0;
  const peakRssMiB = rss.max();
  rss.stop();
  const counters1 = await c.api.requestCounters();
  const limit1 = side === "limit" ? await c.limit.stats() : undefined;
  const times = names.map(n => tracker.tasks.get(n)!);
  const first = Math.min(...times.map(t => t.sentAt!));
  const last = Math.max(...times.map(t => t.doneAt!));
  const phases: Record<string, number> = {};
  for (const t of times) phases[t.terminal!] = (phases[t.terminal!] ?? 0) + 1;
  const perTask: Record<string, number> = {};
  for (const k of COUNTED) perTask[k] = round(((counters1.get(k) ?? 0) - (counters0.get(k) ?? 0)) / CFG.tasks, 2);
  const completed = times.filter(t => t.terminal === "Completed");
  const r: RunResult = {
    side,
    mode,
    repeat,
    tasks: CFG.tasks,
    createErrors,
    phases,
    throughput: round(CFG.tasks / ((last - first) / 1000), 2),
    makespanS: round((last - first) / 1000, 2),
    createSeconds: round(createSeconds, 2),
    latencyS: percentiles(completed.map(t => (t.doneAt! - t.sentAt!) / 1000)),
    stagesS: stages(completed),
    cpuSeconds: round(cpu, 2),
    cpuSecondsPer1000: round((cpu / CFG.tasks) * 1000, 2),
    peakRssMiB,
    apiRequestsPerTask: perTask,
    ...(limit0 && limit1 ? { clientRequestsPerTask: round((limit1.requests - limit0.requests) / CFG.tasks, 2) } : {}),
  };
  log(
    `${side.padEnd(8)} ${mode.padEnd(6)} #${repeat}: ${r.throughput} tasks/s, p50 ${r.latencyS.p50}s p99 ${r.latencyS.p99}s, ` +
      `cpu ${r.cpuSecondsPer1000}s/1000, rss ${peakRssMiB} MiB, phases ${JSON.stringify(phases)}`,
  );
  await deleteTasks(c.api, ns);
  return r;
}

async function e2eScenario(c: Ctx) {
  const modes: (number | undefined)[] = [undefined, ...CFG.rates];
  const runs: RunResult[] = [];
  for (let rep = 1; rep <= CFG.repeats; rep++) {
    for (const rate of modes) {
      const order: ("operator" | "limit")[] =
        (rep + modes.indexOf(rate)) % 2 ? ["operator", "limit"] : ["limit", "operator"];
      for (const side of order) runs.push(await e2eRun(c, side, rate, rep));
    }
  }
  if (c.limit.errors.length) log(`limit client errors: ${c.limit.errors.slice(0, 5).join(" | ")}`);
  const summary: Record<string, unknown> = {};
  for (const rate of modes) {
    const mode = rate === undefined ? "burst" : `${rate}/s`;
    const op = runs.filter(r => r.mode === mode && r.side === "operator");
    const li = runs.filter(r => r.mode === mode && r.side === "limit");
    const pairs = op.map(o => ({ o, l: li.find(l => l.repeat === o.repeat)! }));
    summary[mode] = {
      operatorThroughput: spread(op.map(r => r.throughput)),
      limitThroughput: spread(li.map(r => r.throughput)),
      throughputFractionOfLimit: spread(pairs.map(p => p.o.throughput / p.l.throughput)),
      operatorLatencyS: {
        p50: spread(op.map(r => r.latencyS.p50)),
        p95: spread(op.map(r => r.latencyS.p95)),
        p99: spread(op.map(r => r.latencyS.p99)),
      },
      limitLatencyS: {
        p50: spread(li.map(r => r.latencyS.p50)),
        p95: spread(li.map(r => r.latencyS.p95)),
        p99: spread(li.map(r => r.latencyS.p99)),
      },
      addedLatencyS: {
        p50: spread(pairs.map(p => p.o.latencyS.p50 - p.l.latencyS.p50)),
        p99: spread(pairs.map(p => p.o.latencyS.p99 - p.l.latencyS.p99)),
      },
      /** p99 added latency as a multiple of the limit's p99 per-task latency. */
      p99AddedOverLimitP99: spread(pairs.map(p => (p.o.latencyS.p99 - p.l.latencyS.p99) / p.l.latencyS.p99)),
      operatorCpuSecondsPer1000: spread(op.map(r => r.cpuSecondsPer1000)),
      limitCpuSecondsPer1000: spread(li.map(r => r.cpuSecondsPer1000)),
      operatorPeakRssMiB: spread(op.map(r => r.peakRssMiB)),
      operatorStagesS: medianStages(op),
      limitStagesS: medianStages(li),
      operatorApiRequestsPerTask: medianRecord(op.map(r => r.apiRequestsPerTask)),
      limitApiRequestsPerTask: medianRecord(li.map(r => r.apiRequestsPerTask)),
    };
  }
  return { runs, summary };
}

function medianRecord(list: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(list[0] ?? {})) out[k] = spread(list.map(r => r[k])).median;
  return out;
}

function medianStages(list: RunResult[]): Record<string, number> {
  return medianRecord(list.map(r => r.stagesS));
}

// ---------------------------------------------------------------------------------------------
// Broker path

async function brokerScenario(c: Ctx) {
  const m = c.stack.material;
  const dir = join(c.dataDir, "broker-load");
  mkdirSync(dir, { recursive: true });
  // 64 decide requests, each with its own token bound to its own task uid: the broker allows a
  // token again for the same task, so the loop can cycle through them.
  const requests: DecideRequest[] = [];
  for (let i = 0; i < 64; i++) {
    const name = `app-${i % CFG.targets}`;
    const token = await c.stack.mint({
      agent: AGENT,
      action: "scale",
      target: { kind: "Deployment", namespace: NS, name },
      maxReplicas: 10,
      ttlSeconds: 300,
    });
    requests.push({
      action: "k8s.Deployment.scale",
      token,
      agentId: AGENT,
      target: { kind: "Deployment", name, namespace: NS },
      params: { replicas: 3 },
      context: {
        current: { replicas: 2, readyReplicas: 2 },
        requested: { replicas: 3 },
        task: { uid: randomUUID(), name: `broker-bench-${i}`, namespace: NS },
      },
    });
  }
  const requestsFile = join(dir, "requests.json");
  writeFileSync(requestsFile, JSON.stringify(requests), { mode: 0o600 });
  // The trivial endpoint: same server certificate, same client-certificate requirement, a fixed
  // decision-shaped answer.
  const trivial = createServer(
    {
      cert: readFileSync(m.server.cert),
      key: readFileSync(m.server.key),
      ca: readFileSync(m.ca.cert),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    },
    (req, res) => {
      req.resume();
      req.on("end", () => {
        const body = JSON.stringify({
          allowed: true,
          risk_tier: "LOW",
          reason: "ok",
          request_id: req.headers["x-request-id"],
          metadata: { evaluate_ms: 0 },
        });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(body);
      });
    },
  );
  await new Promise<void>(r => trivial.listen(0, "127.0.0.1", r));
  const trivialUrl = `https://127.0.0.1:${(trivial.address() as { port: number }).port}`;
  const brokerUrl = `https://127.0.0.1:${c.stack.brokerPort}`;
  const configs: { key: string; mode: "client" | "raw"; url: string }[] = [
    { key: "clientToBroker", mode: "client", url: brokerUrl },
    { key: "rawToTrivial", mode: "raw", url: trivialUrl },
    { key: "rawToBroker", mode: "raw", url: brokerUrl },
    { key: "clientToTrivial", mode: "client", url: trivialUrl },
  ];
  const results: Record<string, LoadResult[]> = {};
  try {
    for (let rep = 1; rep <= CFG.repeats; rep++) {
      for (const cfg of rep % 2 ? configs : [...configs].reverse()) {
        const spec: LoadSpec = {
          mode: cfg.mode,
          url: cfg.url,
          tls: { certFile: m.client.cert, keyFile: m.client.key, caFile: m.ca.cert },
          concurrency: CFG.brokerConcurrency,
          connections: 16,
          durationMs: CFG.brokerSeconds * 1000,
          warmupMs: 1000,
          requestsFile,
          logFile: join(dir, `${cfg.key}.log`),
        };
        const r = await runLoad(spec);
        (results[cfg.key] ??= []).push(r);
        log(
          `broker ${cfg.key.padEnd(16)} #${rep}: ${round(r.rate, 1)} req/s, p50 ${round(r.p50Ms, 2)} ms, p99 ${round(r.p99Ms, 2)} ms, errors ${r.errors}${r.firstError ? ` (${r.firstError})` : ""}`,
        );
      }
    }
  } finally {
    trivial.closeAllConnections();
    await new Promise(r => trivial.close(r));
  }
  const s = (k: string) => ({
    ratePerS: spread(results[k].map(r => r.rate)),
    p50Ms: spread(results[k].map(r => r.p50Ms)),
    p99Ms: spread(results[k].map(r => r.p99Ms)),
    errors: results[k].reduce((a, r) => a + r.errors, 0),
  });
  const ratio = (a: string, b: string) => spread(results[a].map((r, i) => r.rate / results[b][i].rate));
  return {
    concurrency: CFG.brokerConcurrency,
    connections: 16,
    secondsPerMeasurement: CFG.brokerSeconds,
    clientToBroker: s("clientToBroker"),
    rawToTrivial: s("rawToTrivial"),
    rawToBroker: s("rawToBroker"),
    clientToTrivial: s("clientToTrivial"),
    /** The issue's ratio: broker client against the reference broker / raw HTTPS to a trivial endpoint. */
    ratioClientBrokerToRawTrivial: ratio("clientToBroker", "rawToTrivial"),
    /** The client's own overhead, same endpoint: client / raw, both against the reference broker. */
    ratioClientToRawSameBroker: ratio("clientToBroker", "rawToBroker"),
    /** The client's own overhead, same endpoint: client / raw, both against the trivial endpoint. */
    ratioClientToRawSameTrivial: ratio("clientToTrivial", "rawToTrivial"),
  };
}

function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(__dirname, "broker-load.ts")], {
      cwd: ROOT,
      env: { ...process.env, ATB_BENCH_LOAD: JSON.stringify(spec) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.on("exit", code => {
      if (code !== 0) return reject(new Error(`broker-load exited with ${code}`));
      resolve(JSON.parse(out.trim().split("\n").pop()!) as LoadResult);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Restart at scale

function brokerLines(stack: Stack): number {
  if (!existsSync(stack.auditFile)) return 0;
  return readFileSync(stack.auditFile, "utf8").split("\n").filter(Boolean).length;
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
    if (!line.includes(USER_AGENT)) continue;
    const e = JSON.parse(line) as {
      stage: string;
      requestURI: string;
      userAgent?: string;
      objectRef?: { resource?: string; subresource?: string };
      responseStatus?: { code?: number };
    };
    if (e.stage !== "ResponseComplete" || !e.userAgent?.startsWith(USER_AGENT) || /[?&]dryRun=/.test(e.requestURI))
      continue;
    const code = e.responseStatus?.code ?? 0;
    if (code < 200 || code >= 300) continue;
    const key = `${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}`;
    byResource[key] = (byResource[key] ?? 0) + 1;
    writes++;
  }
  return { writes, byResource };
}

/** The operator's own view of its memory (prom-client default metrics), in MiB. */
async function heapOf(stack: Stack): Promise<Record<string, number>> {
  const text = await stack.metrics().catch(() => "");
  const out: Record<string, number> = {};
  for (const name of [
    "atb_operator_nodejs_heap_size_used_bytes",
    "atb_operator_nodejs_heap_size_total_bytes",
    "atb_operator_nodejs_external_memory_bytes",
    "atb_operator_process_resident_memory_bytes",
  ]) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(text);
    if (m) out[name.replace("atb_operator_", "").replace("_bytes", "MiB")] = round(Number(m[1]) / 2 ** 20, 1);
  }
  return out;
}

function readyz(port: number): Promise<number> {
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

/** A finished task's status as the operator writes it (Completed, or Denied for every 10th). */
function finishedStatus(i: number, at: string): object {
  const denied = i % 10 === 9;
  const cond = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    observedGeneration: 1,
    lastTransitionTime: at,
  });
  const atbResult = {
    allowed: !denied,
    riskTier: "LOW",
    reason: denied ? "replicas_above_poa_limit" : "low_risk_within_constraints",
    requestId: `${randomUUID()}.0-a1`,
    evaluateMs: 1.2,
    decisionId: randomUUID(),
    policyRevision: "bench",
  };
  return denied
    ? {
        phase: "Denied",
        message: "ATB denied the action: replicas_above_poa_limit",
        observedGeneration: 1,
        attempts: 0,
        startedAt: at,
        finishedAt: at,
        atbResult,
        conditions: [
          cond("Authorized", "False", "PolicyDenied", "ATB denied the action: replicas_above_poa_limit"),
          cond("Succeeded", "False", "PolicyDenied", "ATB denied the action: replicas_above_poa_limit"),
        ],
      }
    : {
        phase: "Completed",
        message: "Deployment done-1 has 1 ready replicas",
        observedGeneration: 1,
        attempts: 0,
        startedAt: at,
        finishedAt: at,
        atbResult,
        conditions: [
          cond("Authorized", "True", "Authorized", "low_risk_within_constraints"),
          cond("Executed", "True", "Applied", "change applied; waiting for it to take effect"),
          cond("Succeeded", "True", "Completed", "Deployment done-1 has 1 ready replicas"),
        ],
      };
}

/**
 * Bulk fill: with the operator stopped and its webhooks removed, create the tasks (with the labels
 * the mutating webhook would add) and write a finished status on each, then put the webhooks back
 * and start the operator. Minutes faster than sending 10,000 tasks through the pipeline.
 */
async function bulkFill(c: Ctx, n: number, targets: number): Promise<string[]> {
  const s = c.stack;
  const bin = s.bin;
  const name = `atb-operator-local-${s.operator.port}`;
  await s.operator.stop("SIGTERM");
  for (const kind of ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"])
    kubectl(bin, c.cluster.kubeconfig, ["delete", kind, name, "--ignore-not-found"]);
  await sleep(2000); // the API server drops the webhook configuration
  const names: string[] = [];
  for (let start = 0; start < n; start += 1000) {
    const tasks = (await mintTasks(
      s,
      NS_DONE,
      `done-${start}`,
      Math.min(1000, n - start),
      targets,
      () => 1,
      3,
      "done",
    )) as {
      metadata: { name: string; labels?: Record<string, string> };
    }[];
    for (const t of tasks)
      t.metadata.labels = { "atb.siemens.com/action": "scale", "atb.siemens.com/agent": "bench-agent" };
    let next = 0;
    const worker = async () => {
      while (next < tasks.length) {
        const i = next++;
        const t = tasks[i];
        await c.api.ok("POST", TASKS_PATH(NS_DONE), t);
        await c.api.ok(
          "PATCH",
          `${TASKS_PATH(NS_DONE)}/${t.metadata.name}/status`,
          { status: finishedStatus(start + i, new Date().toISOString()) },
          "application/merge-patch+json",
        );
      }
    };
    await Promise.all(Array.from({ length: CFG.createConcurrency }, worker));
    names.push(...tasks.map(t => t.metadata.name));
  }
  await s.restartOperator();
  for (const cfg of webhookConfigurations(s.operator.port, s.operator.apiPath, s.operator.caFile, name, [NS, NS_DONE]))
    kubectl(bin, c.cluster.kubeconfig, ["apply", "-f", "-"], JSON.stringify(cfg));
  return names;
}

async function restartScenario(c: Ctx) {
  const tracker = c.trackers.done;
  const targets = 100;
  await createDeployments(c.api, NS_DONE, "done", targets, 1);
  // The same restart with no task in the operator's namespaces: what the process costs by itself.
  log("restart: baseline with no tasks");
  const baseline = await measureRestarts(c, [], {}, 0, 1);
  const t0 = Date.now();
  let names: string[] = [];
  if (CFG.fill === "bulk") {
    log(`restart: bulk-creating ${CFG.finished} finished tasks (operator stopped, status written by the benchmark)`);
    names = await bulkFill(c, CFG.finished, targets);
  } else {
    names = await fillThroughOperator(c, tracker, targets, t0);
  }
  const fillSeconds = (Date.now() - t0) / 1000;
  const list = await c.api.ok<{ items: { status?: { phase?: string } }[] }>("GET", TASKS_PATH(NS_DONE));
  const phases: Record<string, number> = {};
  for (const t of list.items) phases[t.status?.phase ?? "none"] = (phases[t.status?.phase ?? "none"] ?? 0) + 1;
  log(`restart: ${names.length} finished tasks after ${round(fillSeconds, 1)}s: ${JSON.stringify(phases)}`);
  await sleep(12_000); // two sweeps: nothing left in flight
  const r = await measureRestarts(c, names, phases, fillSeconds, CFG.restarts);
  return {
    ...r,
    baselineNoTasks: { readySeconds: baseline.readySeconds, rssMiB: baseline.rssMiB, peakRssMiB: baseline.peakRssMiB },
  };
}

async function fillThroughOperator(c: Ctx, tracker: Tracker, targets: number, t0: number): Promise<string[]> {
  log(
    `restart: creating ${CFG.finished} tasks the broker denies (over the token's maxReplicas) over ${targets} Deployments`,
  );
  const chunk = 1000;
  const names: string[] = [];
  for (let start = 0; start < CFG.finished; start += chunk) {
    const n = Math.min(chunk, CFG.finished - start);
    const tasks = (await mintTasks(c.stack, NS_DONE, `done-${start}`, n, targets, () => 9, 3, "done")) as {
      metadata: { name: string };
    }[];
    names.push(...tasks.map(t => t.metadata.name));
    await createTasks(c.api, tracker, NS_DONE, tasks, undefined, () => undefined);
  }
  log(`restart: ${names.length} created in ${round((Date.now() - t0) / 1000, 1)}s; waiting for them to finish`);
  await tracker.waitTerminal(names, 3_600_000);
  return names;
}

async function measureRestarts(
  c: Ctx,
  names: string[],
  phases: Record<string, number>,
  fillSeconds: number,
  count: number,
) {
  const observeMs = 15_000;
  const restarts = [];
  for (let i = 1; i <= count; i++) {
    const audit0 = statSync(auditLogPath(c.dataDir)).size;
    const broker0 = brokerLines(c.stack);
    const s0 = Date.now();
    await c.stack.operator.stop("SIGTERM");
    const stopSeconds = (Date.now() - s0) / 1000;
    const spawnAt = Date.now();
    await c.stack.restartOperator();
    const pid = c.stack.operator.process.pid!;
    const healthySeconds = (Date.now() - spawnAt) / 1000;
    while ((await readyz(c.stack.metricsPort)) !== 200) {
      if (Date.now() - spawnAt > 300_000) throw new Error("operator not ready 300 s after restart");
      await sleep(25);
    }
    const readySeconds = (Date.now() - spawnAt) / 1000;
    const cpuAtReady = cpuSeconds(pid);
    await sleep(observeMs);
    await sleep(2000); // the audit log is written asynchronously
    const w = operatorWritesSince(c.dataDir, audit0);
    const r = {
      restart: i,
      stopSeconds: round(stopSeconds, 2),
      healthySeconds: round(healthySeconds, 2),
      readySeconds: round(readySeconds, 2),
      brokerCalls: brokerLines(c.stack) - broker0,
      writes: w.writes,
      writesByResource: w.byResource,
      cpuSecondsToReady: round(cpuAtReady, 2),
      cpuSecondsAfterWindow: round(cpuSeconds(pid), 2),
      ...memory(pid),
      heap: await heapOf(c.stack),
      observedSeconds: round((Date.now() - spawnAt) / 1000, 1),
    };
    log(
      `restart #${i}: ready in ${r.readySeconds}s, broker calls ${r.brokerCalls}, writes ${r.writes}, rss ${r.rssMiB} MiB (peak ${r.hwmMiB})`,
    );
    restarts.push(r);
  }
  return {
    finishedTasks: names.length,
    fill: CFG.fill,
    finishedPhases: phases,
    fillSeconds: round(fillSeconds, 1),
    fillThroughput: fillSeconds > 0 ? round(names.length / fillSeconds, 1) : 0,
    observeSecondsAfterReady: observeMs / 1000,
    readySeconds: spread(restarts.map(r => r.readySeconds)),
    brokerCalls: spread(restarts.map(r => r.brokerCalls)),
    writes: spread(restarts.map(r => r.writes)),
    rssMiB: spread(restarts.map(r => r.rssMiB)),
    peakRssMiB: spread(restarts.map(r => r.hwmMiB)),
    cpuSecondsAfterWindow: spread(restarts.map(r => r.cpuSecondsAfterWindow)),
    restarts,
  };
}

// ---------------------------------------------------------------------------------------------
// Profile

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time by package/file and by function, from the operator's --cpu-prof files. */
function summarizeProfiles(dir: string) {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter(f => f.endsWith(".cpuprofile"));
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  let total = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), "utf8")) as CpuProfile;
    const node = new Map(p.nodes.map(n => [n.id, n.callFrame]));
    p.samples.forEach((id, i) => {
      const us = p.timeDeltas[i] ?? 0;
      const cf = node.get(id)!;
      total += us;
      const url = cf.url.replace(/^file:\/\//, "");
      const area = !url
        ? `(${cf.functionName || "native"})`
        : url.includes("node_modules/")
          ? url
              .split("node_modules/")
              .pop()!
              .split("/")
              .slice(0, url.includes("node_modules/@") ? 2 : 1)
              .join("/")
          : url.startsWith("node:")
            ? url
            : url.replace(`${ROOT}/`, "");
      byArea.set(area, (byArea.get(area) ?? 0) + us);
      const fn = `${cf.functionName || "(anonymous)"} ${area}:${cf.lineNumber + 1}`;
      byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    });
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => ({ where: k, seconds: round(v / 1e6, 2), share: round(v / total, 3) }));
  return {
    files: files.length,
    totalSeconds: round(total / 1e6, 2),
    byArea: top(byArea, 20),
    byFunction: top(byFn, 25),
  };
}

// ---------------------------------------------------------------------------------------------
// Targets and summary

function targets(results: Record<string, unknown>) {
  const ok = (k: string) => (results[k] && !(results[k] as { error?: string }).error ? results[k] : undefined);
  const e2e = ok("e2e") as { summary: Record<string, Record<string, Spread & Record<string, Spread>>> } | undefined;
  const broker = ok("broker") as { ratioClientBrokerToRawTrivial: Spread } | undefined;
  const restart = ok("restart") as
    | { brokerCalls: Spread; writes: Spread; peakRssMiB: Spread; finishedTasks: number }
    | undefined;
  const out: { target: string; value: string; met: boolean | null }[] = [];
  if (e2e) {
    for (const [mode, s] of Object.entries(e2e.summary)) {
      const f = s.throughputFractionOfLimit as Spread;
      out.push({
        target: `operator throughput >= 70% of the same-run limit (${mode})`,
        value: `${round(f.median * 100, 1)}% (${round(f.min * 100, 1)}–${round(f.max * 100, 1)})`,
        met: f.median >= 0.7,
      });
    }
    const s50 = e2e.summary["50/s"];
    if (s50) {
      const r = s50.p99AddedOverLimitP99 as Spread;
      out.push({
        target: "p99 added latency < 2x the limit's p99 per-task latency at 50 tasks/s",
        value: `${round(r.median, 2)}x (${round(r.min, 2)}–${round(r.max, 2)})`,
        met: r.median < 2,
      });
    }
    const rss = Math.max(...Object.values(e2e.summary).map(s => (s.operatorPeakRssMiB as Spread).max));
    out.push({
      target: "operator RSS < 200 MB during the e2e runs",
      value: `${rss} MiB peak`,
      met: rss * 1.048576 < 200,
    });
  }
  if (broker) {
    const r = broker.ratioClientBrokerToRawTrivial;
    out.push({
      target: "broker client >= 80% of the raw HTTPS rate",
      value: `${round(r.median * 100, 1)}% (${round(r.min * 100, 1)}–${round(r.max * 100, 1)})`,
      met: r.median >= 0.8,
    });
  }
  if (restart) {
    out.push({
      target: `restart with ${restart.finishedTasks} finished tasks: 0 broker calls`,
      value: `${restart.brokerCalls.max} max`,
      met: restart.brokerCalls.max === 0,
    });
    out.push({
      target: `restart with ${restart.finishedTasks} finished tasks: 0 writes to tasks or targets`,
      value: `${restart.writes.max} max`,
      met: restart.writes.max === 0,
    });
    out.push({
      target: `restart with ${restart.finishedTasks} finished tasks: RSS < 200 MB`,
      value: `${restart.peakRssMiB.max} MiB peak`,
      met: restart.peakRssMiB.max * 1.048576 < 200,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Main

/** `pepr build` into dist/, so the operator measured is the bundle that ships, built from this tree. */
function buildBundle(): void {
  log("building the module bundle (npm run build)");
  const r = spawnSync(join(ROOT, "node_modules", ".bin", "pepr"), ["build"], { cwd: ROOT, encoding: "utf8" });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.status !== 0 || /error TS/.test(out) || !existsSync(BUNDLE)) {
    throw new Error(`pepr build failed (exit ${r.status}):\n${out.slice(-3000)}`);
  }
}

async function main(): Promise<void> {
  const base = existsSync("/dev/shm") ? "/dev/shm" : "/tmp";
  const dataDir = join(base, `atb-bench-${process.pid}`);
  let cluster: ClusterState | undefined;
  let stack: Stack | undefined;
  let api: Api | undefined;
  let limit: LimitChild | undefined;
  const trackers: Tracker[] = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const t of trackers) t.close();
    await limit?.stop().catch(() => undefined);
    await stack?.stop().catch(() => undefined);
    await api?.close().catch(() => undefined);
    await down(dataDir, l => log(l)).catch(() => undefined);
    if (!CFG.keep) rmSync(dataDir, { recursive: true, force: true });
    else log(`kept ${dataDir}`);
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping everything`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  const started = new Date();
  try {
    log(`settings ${JSON.stringify(CFG)}`);
    if (CFG.operator === "bundle") buildBundle();
    cluster = await up({ dataDir, nodes: 3, log: l => log(l) });
    installCrds(ensureBinaries(), cluster.kubeconfig);
    const profDir = join(dataDir, "profile");
    const operatorEnv: Record<string, string> = {
      ATB_API_QPS: String(CFG.qps),
      ATB_WORKERS: String(CFG.workers),
    };
    stack = await startStack({
      cluster,
      workDir: join(dataDir, "stack"),
      namespaces: [NS, NS_DONE],
      operatorEnv,
      operatorEntry: CFG.operator,
      // Node refuses --cpu-prof in NODE_OPTIONS; the profile is written when the operator exits.
      operatorNodeArgs: CFG.profile ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [],
    });
    api = Api.open(cluster.kubeconfig);
    await api.ok("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS_LIMIT } });
    const info = machine(cluster);
    log(`machine ${JSON.stringify(info)}`);
    const ctxTrackers = {
      operator: new Tracker(api, NS),
      limit: new Tracker(api, NS_LIMIT),
      done: new Tracker(api, NS_DONE),
    };
    trackers.push(...Object.values(ctxTrackers));
    for (const t of trackers) await t.start();
    limit = await LimitChild.start({
      type: "init",
      kubeconfig: cluster.kubeconfig,
      brokerUrl: `https://127.0.0.1:${stack.brokerPort}`,
      tls: { certFile: stack.material.client.cert, keyFile: stack.material.client.key, caFile: stack.material.ca.cert },
      workers: CFG.workers,
      qps: CFG.qps,
      pollMs: CFG.pollMs,
      logFile: join(dataDir, "limit-client.log"),
    });
    const s = { stack, api };
    const c: Ctx = {
      cluster,
      stack,
      api,
      dataDir,
      trackers: ctxTrackers,
      limit,
      rss: new RssSampler(() => s.stack.operator.process.pid),
    };
    const results: Record<string, unknown> = {};
    // A failing scenario is recorded with its error; the others still run and the file is written.
    const scenario = async (name: string, f: () => Promise<unknown>) => {
      if (!CFG.scenarios.includes(name)) return;
      try {
        results[name] = await f();
      } catch (err) {
        log(`scenario ${name} failed: ${String(err)}`);
        results[name] = { error: String(err) };
      }
    };
    await scenario("broker", () => brokerScenario(c));
    await scenario("e2e", async () => {
      log(`e2e: ${CFG.targets} Deployments in ${NS} and ${NS_LIMIT}`);
      await createDeployments(s.api, NS, "app", CFG.targets, 2);
      await createDeployments(s.api, NS_LIMIT, "app", CFG.targets, 2);
      return e2eScenario(c);
    });
    await scenario("restart", () => restartScenario(c));
    results.operatorLifetime = {
      ...memory(stack.operator.process.pid!),
      heap: await heapOf(stack),
      note: "current operator process (after the last restart when the restart scenario ran)",
    };
    c.rss.stop();
    await limit.stop();
    await stack.stop();
    if (CFG.profile) results.profile = summarizeProfiles(profDir);
    const t = targets(results);
    const doc = {
      benchmark: "ATB operator, issue 7 part 1",
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      durationMinutes: round((Date.now() - started.getTime()) / 60_000, 1),
      machine: { ...info, loadAverageAtEnd: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number) },
      settings: {
        ...CFG,
        out: undefined,
        operatorEnv: { ...operatorEnv, ATB_SWEEP_INTERVAL_SECONDS: "5" },
        limitPollMs: CFG.pollMs,
      },
      units: {
        throughput: "tasks/s, first create sent → last task terminal",
        latencyS: "seconds, create sent → the benchmark's watch sees phase Completed",
        cpuSecondsPer1000: "CPU seconds (utime+stime from /proc/<pid>/stat) per 1000 tasks",
        RssMiB: "MiB (VmRSS sampled every 200 ms; VmHWM for peaks)",
        ratePerS: "requests/s",
        Ms: "milliseconds",
        readySeconds: "seconds from spawning the operator to /readyz 200 (after its initial sweep)",
      },
      targets: t,
      ...results,
    };
    writeFileSync(CFG.out, `${JSON.stringify(doc, null, 2)}\n`);
    printSummary(doc as unknown as Summary);
    log(`wrote ${CFG.out}`);
  } finally {
    await cleanup();
  }
}

interface Summary {
  machine: Record<string, unknown>;
  targets: { target: string; value: string; met: boolean | null }[];
  broker?: Record<string, { ratePerS?: Spread; p50Ms?: Spread; p99Ms?: Spread } & Spread>;
  e2e?: { summary: Record<string, Record<string, Spread | Record<string, Spread | number>>> };
  restart?: Record<string, unknown>;
}

function printSummary(d: Summary): void {
  const f = (s: Spread | undefined, digits = 2) =>
    s ? `${round(s.median, digits)} (${round(s.min, digits)}–${round(s.max, digits)})` : "-";
  console.log("\n==================== ATB operator benchmark ====================");
  console.log(`machine: ${JSON.stringify(d.machine)}`);
  for (const k of ["broker", "e2e", "restart"] as const) {
    const e = (d[k] as { error?: string } | undefined)?.error;
    if (e) {
      console.log(`\n${k}: FAILED: ${e}`);
      delete d[k];
    }
  }
  if (d.broker) {
    console.log("\nbroker path (median (min–max) over repeats)");
    for (const k of ["clientToBroker", "rawToTrivial", "rawToBroker", "clientToTrivial"]) {
      const b = d.broker[k];
      console.log(`  ${k.padEnd(16)} ${f(b.ratePerS, 1)} req/s   p50 ${f(b.p50Ms)} ms   p99 ${f(b.p99Ms)} ms`);
    }
    for (const k of ["ratioClientBrokerToRawTrivial", "ratioClientToRawSameBroker", "ratioClientToRawSameTrivial"])
      console.log(`  ${k.padEnd(30)} ${f(d.broker[k] as Spread, 3)}`);
  }
  if (d.e2e) {
    console.log("\nend to end (median (min–max) over repeats)");
    for (const [mode, s] of Object.entries(d.e2e.summary)) {
      const ol = s.operatorLatencyS as Record<string, Spread>;
      const ll = s.limitLatencyS as Record<string, Spread>;
      console.log(`  ${mode}`);
      console.log(
        `    throughput: operator ${f(s.operatorThroughput as Spread)} tasks/s, limit ${f(s.limitThroughput as Spread)} tasks/s, fraction ${f(s.throughputFractionOfLimit as Spread, 3)}`,
      );
      console.log(
        `    latency operator p50 ${f(ol.p50)} p95 ${f(ol.p95)} p99 ${f(ol.p99)} s; limit p50 ${f(ll.p50)} p95 ${f(ll.p95)} p99 ${f(ll.p99)} s`,
      );
      console.log(
        `    p99 added / limit p99: ${f(s.p99AddedOverLimitP99 as Spread)}; operator CPU ${f(s.operatorCpuSecondsPer1000 as Spread)} s/1000 tasks (limit ${f(s.limitCpuSecondsPer1000 as Spread)}); operator peak RSS ${f(s.operatorPeakRssMiB as Spread, 1)} MiB`,
      );
      console.log(`    stages operator ${JSON.stringify(s.operatorStagesS)}`);
      console.log(`    stages limit    ${JSON.stringify(s.limitStagesS)}`);
    }
  }
  if (d.restart) {
    const r = d.restart as Record<string, Spread | number>;
    console.log(
      `\nrestart with ${String(r.finishedTasks)} finished tasks: ready ${f(r.readySeconds as Spread)} s, broker calls ${f(r.brokerCalls as Spread, 0)}, writes ${f(r.writes as Spread, 0)}, RSS ${f(r.rssMiB as Spread, 1)} MiB (peak ${f(r.peakRssMiB as Spread, 1)})`,
    );
    const b = r.baselineNoTasks as unknown as Record<string, Spread> | undefined;
    if (b)
      console.log(
        `  the same restart with no tasks: ready ${f(b.readySeconds)} s, RSS ${f(b.rssMiB, 1)} MiB (peak ${f(b.peakRssMiB, 1)})`,
      );
  }
  console.log("\ntargets");
  for (const t of d.targets) console.log(`  [${t.met ? "met" : "NOT MET"}] ${t.target}: ${t.value}`);
  console.log("================================================================\n");
}

main().catch(err => {
  console.error(err);
  process.exitCode = 1;
});
