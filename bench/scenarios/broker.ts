// Scenario "broker": the broker path. Four closed loops, each in a process of its own
// (bench/broker-load.ts): the operator's broker client and raw HTTPS requests, each against the
// reference broker and against a trivial HTTPS endpoint (same server certificate, client
// certificate required, a fixed decision-shaped answer). Their order flips every repeat.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { tieProcess, untieProcess } from "../../tools/reaper";
import type { LoadResult, LoadSpec } from "../broker-load";
import type { BenchEnv } from "../environment";
import { decideRequests } from "../fixtures";
import { log } from "../log";
import { round, spread } from "../measure";
import { LOOPS, type BrokerResult, type LoadSummary, type Loop } from "../results";

const ROOT = join(__dirname, "..", "..");
const CONNECTIONS = 16;

/** What each loop calls, and how. */
const LOOP_SETUP: Record<Loop, { mode: LoadSpec["mode"]; to: "broker" | "trivial" }> = {
  clientToBroker: { mode: "client", to: "broker" },
  rawToTrivial: { mode: "raw", to: "trivial" },
  rawToBroker: { mode: "raw", to: "broker" },
  clientToTrivial: { mode: "client", to: "trivial" },
};

export async function brokerScenario(env: BenchEnv): Promise<BrokerResult> {
  const { settings } = env;
  const m = env.stack.material;
  const dir = join(env.dataDir, "broker-load");
  mkdirSync(dir, { recursive: true });
  const requestsFile = join(dir, "requests.json");
  const requests = await decideRequests(env.stack, 64, settings.targets);
  writeFileSync(requestsFile, JSON.stringify(requests), { mode: 0o600 });
  const trivial = await startTrivialEndpoint(env);
  const urls = {
    broker: `https://127.0.0.1:${env.stack.brokerPort}`,
    trivial: `https://127.0.0.1:${(trivial.address() as { port: number }).port}`,
  };
  const results = Object.fromEntries(LOOPS.map(k => [k, [] as LoadResult[]])) as Record<Loop, LoadResult[]>;
  try {
    for (let rep = 1; rep <= settings.repeats; rep++) {
      for (const key of rep % 2 ? LOOPS : [...LOOPS].reverse()) {
        const setup = LOOP_SETUP[key];
        const r = await runLoad({
          mode: setup.mode,
          url: urls[setup.to],
          tls: { certFile: m.client.cert, keyFile: m.client.key, caFile: m.ca.cert },
          concurrency: settings.brokerConcurrency,
          connections: CONNECTIONS,
          durationMs: settings.brokerSeconds * 1000,
          warmupMs: 1000,
          requestsFile,
          logFile: join(dir, `${key}.log`),
        });
        results[key].push(r);
        log(
          `broker ${key.padEnd(16)} #${rep}: ${round(r.rate, 1)} req/s, p50 ${round(r.p50Ms, 2)} ms, p99 ${round(r.p99Ms, 2)} ms, errors ${r.errors}${r.firstError ? ` (${r.firstError})` : ""}`,
        );
      }
    }
  } finally {
    trivial.closeAllConnections();
    await new Promise(r => trivial.close(r));
  }
  return summarize(results, env);
}

function summarize(results: Record<Loop, LoadResult[]>, env: BenchEnv): BrokerResult {
  const s = (k: Loop): LoadSummary => ({
    ratePerS: spread(results[k].map(r => r.rate)),
    p50Ms: spread(results[k].map(r => r.p50Ms)),
    p99Ms: spread(results[k].map(r => r.p99Ms)),
    errors: results[k].reduce((a, r) => a + r.errors, 0),
  });
  // Paired per repeat: both loops of a ratio ran in the same repeat, next to each other.
  const ratio = (a: Loop, b: Loop) => spread(results[a].map((r, i) => r.rate / results[b][i].rate));
  return {
    concurrency: env.settings.brokerConcurrency,
    connections: CONNECTIONS,
    secondsPerMeasurement: env.settings.brokerSeconds,
    clientToBroker: s("clientToBroker"),
    rawToTrivial: s("rawToTrivial"),
    rawToBroker: s("rawToBroker"),
    clientToTrivial: s("clientToTrivial"),
    ratioClientBrokerToRawTrivial: ratio("clientToBroker", "rawToTrivial"),
    ratioClientToRawSameBroker: ratio("clientToBroker", "rawToBroker"),
    ratioClientToRawSameTrivial: ratio("clientToTrivial", "rawToTrivial"),
  };
}

/** The trivial endpoint: the broker's TLS setup, no work, a fixed allowed decision. */
async function startTrivialEndpoint(env: BenchEnv): Promise<Server> {
  const m = env.stack.material;
  const server = createServer(
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
  await new Promise<void>(r => server.listen(0, "127.0.0.1", r));
  return server;
}

/** One loop in a process of its own (bench/broker-load.ts); its last stdout line is the result. */
function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench", "broker-load.ts")], {
      cwd: ROOT,
      env: { ...process.env, ATB_BENCH_LOAD: JSON.stringify(spec) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    // Stopped with the bench however it ends (a SIGKILL included).
    const pid = child.pid;
    if (pid) {
      tieProcess(pid);
      child.once("exit", () => untieProcess(pid));
    }
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.on("exit", code => {
      if (code !== 0) return reject(new Error(`broker-load exited with ${code}`));
      resolve(JSON.parse(out.trim().split("\n").pop()!) as LoadResult);
    });
  });
}
