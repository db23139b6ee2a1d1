// Runs real OPA for the reference broker: `opa run --server` as a child process that the broker
// owns (started with it, killed with it), loaded with the policy files (tests excluded) and the
// data file, queried over HTTP with a keep-alive pool. OPA listens on a Unix socket in a private
// directory (mode 0700; a free loopback port only when the socket path would be too long): cheaper
// per query than loopback TCP on both sides, and no other local process can reach OPA's API (which
// would let it replace the policy). The policy revision is a hash of exactly the files OPA loaded,
// so every decision names what judged it.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Pool } from "undici";
import type { Logger } from "../capabilities/lib/logger";

export interface OpaOptions {
  binary: string;
  policyDir: string;
  dataFile: string;
  logger: Logger;
  startTimeoutMs?: number;
}

export interface OpaEngine {
  readonly url: string;
  readonly revision: string;
  readonly pid: number | undefined;
  /** Evaluates data.<path> (slash-separated) for input; throws when OPA fails or the rule is undefined. */
  evaluate(path: string, input: unknown, timeoutMs: number): Promise<unknown>;
  healthy(): boolean;
  stop(): Promise<void>;
}

/** Policy files OPA should load: every .rego under dir except the *_test.rego files. */
export function policyFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...policyFiles(path));
    else if (name.endsWith(".rego") && !name.endsWith("_test.rego")) out.push(path);
  }
  return out;
}

/** A short content hash of the loaded policy and data: the decision's policy_revision. */
export function policyRevision(dir: string, files: string[], dataFile: string): string {
  const hash = createHash("sha256");
  for (const f of [...files, dataFile]) hash.update(relative(dir, f)).update("\0").update(readFileSync(f)).update("\0");
  return `sha256:${hash.digest("hex").slice(0, 16)}`;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tailOf(child: ChildProcess, log: Logger): () => string {
  let tail = "";
  const keep = (chunk: Buffer): void => {
    const text = chunk.toString("utf8");
    tail = (tail + text).slice(-2000);
    for (const line of text.split("\n").filter(Boolean)) log.debug("opa", { line: line.slice(0, 500) });
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return () => tail.trim();
}

async function waitHealthy(pool: Pool, child: ChildProcess, timeoutMs: number, tail: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`opa exited during start-up: ${tail()}`);
    try {
      const res = await pool.request({ path: "/health", method: "GET", headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise(r => setTimeout(r, 50));
  }
  throw new Error(`opa did not become healthy within ${timeoutMs} ms: ${tail()}`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise(resolve => {
    const hard = setTimeout(() => child.kill("SIGKILL"), 3000);
    child.once("exit", () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

async function query(pool: Pool, path: string, input: unknown, timeoutMs: number): Promise<unknown> {
  const res = await pool.request({
    path: `/v1/data/${path}`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ input }),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`opa answered ${res.statusCode}: ${text.slice(0, 300)}`);
  const parsed = JSON.parse(text) as { result?: unknown };
  if (parsed.result === undefined) throw new Error(`policy rule data.${path.replace(/\//g, ".")} is undefined`);
  return parsed.result;
}

interface Listen {
  /** OPA's --addr. */
  addr: string;
  /** For logs and OpaEngine.url: unix://<socket> or http://127.0.0.1:<port>. */
  url: string;
  socketPath?: string;
  /** The private directory holding the socket; removed when OPA stops. */
  dir?: string;
}

// sun_path holds 108 bytes on Linux (104 on macOS); stay well below.
const MAX_SOCKET_PATH = 100;

async function listenAddress(): Promise<Listen> {
  const dir = mkdtempSync(join(tmpdir(), "atb-opa-"));
  const socketPath = join(dir, "opa.sock");
  if (Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH)
    return { addr: `unix://${socketPath}`, url: `unix://${socketPath}`, socketPath, dir };
  rmSync(dir, { recursive: true, force: true });
  const port = await freePort();
  return { addr: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}` };
}

/**
 * OPA's environment: the broker's, with Go's GC target raised from 100 to 400 % unless GOGC is
 * set. Every query allocates the parsed input and the evaluation's bindings, so with the default
 * the collector runs every few dozen decisions; at 400 OPA spent ~15-25 % less CPU per decision
 * (2-core machine, noisy), for ~17 MiB more peak RSS (47 -> 65 MiB under load).
 */
export function opaEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.GOGC ? env : { ...env, GOGC: "400" };
}

/** Starts OPA and resolves once it answers /health; rejects with OPA's own output on failure. */
export async function startOpa(opts: OpaOptions): Promise<OpaEngine> {
  const log = opts.logger.child({ subsystem: "opa" });
  const files = policyFiles(opts.policyDir);
  if (files.length === 0) throw new Error(`no .rego policy files in ${opts.policyDir}`);
  const revision = policyRevision(opts.policyDir, files, opts.dataFile);
  const listen = await listenAddress();
  const removeDir = (): void => {
    if (listen.dir) rmSync(listen.dir, { recursive: true, force: true });
  };
  const args = [
    "run",
    "--server",
    `--addr=${listen.addr}`,
    "--unix-socket-perm=600",
    "--disable-telemetry",
    "--log-level=error",
    ...files,
    opts.dataFile,
  ];
  const child = spawn(opts.binary, args, { stdio: ["ignore", "pipe", "pipe"], env: opaEnv(process.env) });
  const tail = tailOf(child, log);
  const killOnExit = (): void => {
    child.kill("SIGKILL");
    removeDir();
  };
  process.once("exit", killOnExit);
  let stopping = false;
  child.once("exit", (code, signal) => {
    if (!stopping)
      log.error("opa exited unexpectedly; decisions fail closed until the broker restarts", {
        code,
        signal,
        output: tail(),
      });
  });
  const url = listen.url;
  const pool = listen.socketPath
    ? new Pool("http://localhost", { socketPath: listen.socketPath, connections: 16, keepAliveTimeout: 30_000 })
    : new Pool(url, { connections: 16, keepAliveTimeout: 30_000 });
  const stop = async (): Promise<void> => {
    stopping = true;
    process.removeListener("exit", killOnExit);
    await stopChild(child);
    await pool.close();
    removeDir();
  };
  try {
    await waitHealthy(pool, child, opts.startTimeoutMs ?? 20_000, tail);
  } catch (err) {
    await stop();
    throw err;
  }
  log.info("opa started", { url, pid: child.pid, revision, policies: files.length });
  return {
    url,
    revision,
    pid: child.pid,
    evaluate: (path, input, timeoutMs) => query(pool, path, input, timeoutMs),
    healthy: () => !stopping && child.exitCode === null && child.signalCode === null,
    stop,
  };
}
