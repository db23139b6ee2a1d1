// The broker path, measured from a process of its own (the broker and the trivial endpoint run in
// the benchmark's process, as the broker does for the operator): a closed loop of `concurrency`
// callers for `durationMs`, either through the operator's broker client (createBrokerClient:
// undici over mTLS with keep-alive, result parsing, retry wrapper, its info log line per
// decision) or as raw HTTPS requests on an undici Pool with the same TLS setup and pool size.
// Prints one JSON line: requests, errors, rate and latency percentiles.
import { createWriteStream, readFileSync } from "node:fs";
import { Pool } from "undici";
import { BROKER_CLIENT_DEFAULTS, createBrokerClient, type DecideRequest } from "../capabilities/lib/broker/client";
import { createLogger } from "../capabilities/lib/logger";
import { quantile } from "./measure";

export interface LoadSpec {
  mode: "client" | "raw";
  url: string;
  tls: { certFile: string; keyFile: string; caFile: string };
  concurrency: number;
  connections: number;
  durationMs: number;
  warmupMs: number;
  /** Decide requests to cycle through (each token bound to its own task uid, so reusable). */
  requestsFile: string;
  logFile: string;
}

export interface LoadResult {
  mode: string;
  url: string;
  requests: number;
  errors: number;
  firstError?: string;
  seconds: number;
  rate: number;
  p50Ms: number;
  p99Ms: number;
}

function rawBody(r: DecideRequest): string {
  return JSON.stringify({
    action: r.action,
    token: r.token,
    agent_id: r.agentId,
    requester: r.requester,
    target: r.target,
    params: r.params,
    context: r.context,
  });
}

type Call = (i: number) => Promise<void>;

function clientCall(spec: LoadSpec, requests: DecideRequest[]): { call: Call; close: () => Promise<void> } {
  const log = createLogger("info", "bench-broker-client", createWriteStream(spec.logFile, { flags: "a" }));
  const client = createBrokerClient(
    {
      brokerUrl: spec.url,
      tls: spec.tls,
      insecure: false,
      ...BROKER_CLIENT_DEFAULTS,
      connections: spec.connections,
    },
    log,
  );
  const deadline = new Date(Date.now() + 240_000);
  return {
    call: async i => {
      const r = requests[i % requests.length];
      const d = await client.decide(r, { deadline, requestIdBase: `bench-${i}` });
      if (!d.allowed) throw new Error(`denied: ${d.reason}`);
    },
    close: () => client.close(),
  };
}

function rawCall(spec: LoadSpec, requests: DecideRequest[]): { call: Call; close: () => Promise<void> } {
  const url = new URL(spec.url);
  const pool = new Pool(url.origin, {
    connections: spec.connections,
    keepAliveTimeout: 30_000,
    connect: {
      cert: readFileSync(spec.tls.certFile, "utf8"),
      key: readFileSync(spec.tls.keyFile, "utf8"),
      ca: readFileSync(spec.tls.caFile, "utf8"),
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    },
  });
  const bodies = requests.map(rawBody);
  return {
    call: async i => {
      const res = await pool.request({
        path: "/api/v1/decide",
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json", "x-request-id": `raw-${i}-a1` },
        body: bodies[i % bodies.length],
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
    },
    close: () => pool.close(),
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.ATB_BENCH_LOAD ?? "{}") as LoadSpec;
  const requests = JSON.parse(readFileSync(spec.requestsFile, "utf8")) as DecideRequest[];
  const { call, close } = spec.mode === "client" ? clientCall(spec, requests) : rawCall(spec, requests);
  let next = 0;
  let measuring = false;
  let errors = 0;
  let firstError: string | undefined;
  const latencies: number[] = [];
  const start = Date.now();
  let measureStart = 0;
  const end = start + spec.warmupMs + spec.durationMs;
  const worker = async () => {
    while (Date.now() < end) {
      const i = next++;
      const t0 = performance.now();
      try {
        await call(i);
        if (measuring) latencies.push(performance.now() - t0);
      } catch (err) {
        if (measuring) errors++;
        firstError ??= String(err).slice(0, 300);
      }
    }
  };
  setTimeout(() => {
    measuring = true;
    measureStart = Date.now();
  }, spec.warmupMs).unref();
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  const seconds = (Date.now() - measureStart) / 1000;
  await close();
  latencies.sort((a, b) => a - b);
  const result: LoadResult = {
    mode: spec.mode,
    url: spec.url,
    requests: latencies.length,
    errors,
    ...(firstError ? { firstError } : {}),
    seconds,
    rate: latencies.length / seconds,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
