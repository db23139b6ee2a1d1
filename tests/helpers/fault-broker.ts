// A fault-injecting mTLS broker for the reliability tests, run as a process of its own: the jest
// worker's event loop is blocked while kubectl runs (spawnSync), so a stub inside it would answer
// late and turn every fault into a timeout. It listens on the port the operator calls and picks
// its behaviour from the decide request's target name (the token preflight, /api/v1/verify, is
// always forwarded to the real broker):
//   slow-*         answers a valid allow, but only after 3 s (beyond the attempt timeout)
//   flaky-*        answers 500 twice, then forwards the third request to a real reference broker
//   bad-<variant>-* answers 200 (or 201) with a malformed decision (see MALFORMED)
//   ok-*           forwards to the real reference broker
// In "impostor" mode it presents the certificate it is given (from another CA) and answers a
// valid allow to every request. The parent asks for its counts over IPC.
import { fork, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { createServer, request, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { tieProcess, untieProcess } from "../../tools/reaper";

export interface FaultBrokerOptions {
  port: number;
  mode: "misbehave" | "impostor";
  server: { cert: string; key: string };
  /** CA of the clients the broker accepts (and of the backend's certificate). */
  ca: string;
  /** Client certificate for forwarding to the backend, and the backend's own material. */
  client: { cert: string; key: string };
  backend?: { server: { cert: string; key: string }; poaPublicKey: string; audit: string; log: string };
}

export interface FaultBrokerStats {
  /** Requests received, by target name. */
  seen: Record<string, number>;
  total: number;
}

export const VALID_ALLOW = {
  allowed: true,
  risk_tier: "LOW",
  reason: "allowed",
  request_id: "stub",
  metadata: { evaluate_ms: 1 },
};

/** Answers that must never count as an allow (status 200 unless given). */
export const MALFORMED: Record<string, { status?: number; type?: string; body: string }> = {
  "allowed-only": { body: JSON.stringify({ allowed: true }) },
  "allowed-string": { body: JSON.stringify({ ...VALID_ALLOW, allowed: "true" }) },
  "allowed-missing": { body: JSON.stringify({ risk_tier: "LOW", reason: "allowed", request_id: "stub" }) },
  "allowed-number": { body: JSON.stringify({ ...VALID_ALLOW, allowed: 1 }) },
  "tier-unknown": { body: JSON.stringify({ ...VALID_ALLOW, risk_tier: "NONE" }) },
  truncated: { body: JSON.stringify(VALID_ALLOW).slice(0, 30) },
  array: { body: JSON.stringify([VALID_ALLOW]) },
  "not-json": { type: "text/plain", body: "allowed: true" },
  oversized: { body: JSON.stringify({ ...VALID_ALLOW, reason: "x".repeat(200_000) }) },
  "status-201": { status: 201, body: JSON.stringify(VALID_ALLOW) },
};

export interface FaultBroker {
  stats(): Promise<FaultBrokerStats>;
  stop(): Promise<void>;
}

/** Starts the fault broker process and waits until it listens. */
export async function startFaultBroker(o: FaultBrokerOptions): Promise<FaultBroker> {
  const child: ChildProcess = fork(__filename, [], {
    cwd: join(__dirname, "..", ".."),
    execArgv: ["--import", "tsx"],
    env: { ...process.env, ATB_FAULT_BROKER: JSON.stringify(o) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  // Stopped with the test process however it ends (a SIGKILL of a bare jest run included).
  const pid = child.pid;
  if (pid) {
    tieProcess(pid);
    child.once("close", () => untieProcess(pid));
  }
  await new Promise<void>((resolve, reject) => {
    child.once("exit", code => reject(new Error(`fault broker exited with ${code}`)));
    child.on("message", m => {
      if ((m as { ready?: boolean }).ready) resolve();
    });
  });
  child.removeAllListeners("exit");
  return {
    stats: () =>
      new Promise(resolve => {
        const on = (m: unknown) => {
          if ((m as { stats?: FaultBrokerStats }).stats) {
            child.off("message", on);
            resolve((m as { stats: FaultBrokerStats }).stats);
          }
        };
        child.on("message", on);
        child.send({ stats: true });
      }),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise(r => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function main(o: FaultBrokerOptions): Promise<void> {
  const seen: Record<string, number> = {};
  let total = 0;
  let backendPort = 0;
  let backendStop: (() => Promise<void>) | undefined;
  if (o.backend) {
    const { startBroker } = await import("../../broker/server");
    const { createLogger } = await import("../../capabilities/lib/logger");
    const { LOCAL_ADMIN_BINDING, writeDataWithBinding } = await import("../../tools/requester-binding");
    const b = await startBroker({
      port: 0,
      tls: { certFile: o.backend.server.cert, keyFile: o.backend.server.key, clientCaFile: o.ca },
      poa: { publicKeyFiles: [o.backend.poaPublicKey], preset: "dev" },
      audit: o.backend.audit,
      logger: createLogger("info", "broker", createWriteStream(o.backend.log, { flags: "a" })),
      // The tasks are created with the admin kubeconfig, as under the stack's own broker.
      dataFile: writeDataWithBinding(
        join(__dirname, "..", "..", "policies", "data.json"),
        [LOCAL_ADMIN_BINDING],
        `${o.backend.log}.policy-data.json`,
      ),
    });
    backendPort = b.port;
    backendStop = () => b.stop();
  }
  const clientTls = { cert: readFileSync(o.client.cert), key: readFileSync(o.client.key), ca: readFileSync(o.ca) };

  const forward = (req: IncomingMessage, body: string, res: ServerResponse) => {
    const up = request(
      { host: "127.0.0.1", port: backendPort, path: req.url, method: req.method, headers: req.headers, ...clientTls },
      answer => {
        const out: Buffer[] = [];
        answer.on("data", (c: Buffer) => out.push(c));
        answer.on("end", () => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(out));
        });
      },
    );
    up.on("error", () => res.destroy());
    up.end(body);
  };

  const handle = (req: IncomingMessage, text: string, res: ServerResponse) => {
    // The token preflight goes to the real broker untouched: the faults are the decision's.
    if (o.mode !== "impostor" && backendPort && req.url === "/api/v1/verify") return forward(req, text, res);
    total++;
    let name = "";
    try {
      name = String((JSON.parse(text) as { target?: { name?: unknown } }).target?.name ?? "");
    } catch {
      /* unknown target */
    }
    const n = (seen[name] = (seen[name] ?? 0) + 1);
    const json = (status: number, payload: string, type = "application/json") => {
      if (res.destroyed) return;
      res.writeHead(status, { "content-type": type });
      res.end(payload);
    };
    if (o.mode === "impostor") return json(200, JSON.stringify(VALID_ALLOW));
    if (name.startsWith("slow-")) {
      setTimeout(() => json(200, JSON.stringify(VALID_ALLOW)), 3_000);
      return;
    }
    if (name.startsWith("flaky-")) {
      if (n % 3 !== 0) return json(500, JSON.stringify({ error: "internal", message: "injected fault" }));
      return forward(req, text, res);
    }
    const variant = Object.keys(MALFORMED).find(v => name.startsWith(`bad-${v}-`));
    if (variant) {
      const m = MALFORMED[variant];
      return json(m.status ?? 200, m.body, m.type);
    }
    if (name.startsWith("ok-")) return forward(req, text, res);
    json(500, "{}");
  };

  const server: Server = createServer(
    {
      cert: readFileSync(o.server.cert),
      key: readFileSync(o.server.key),
      ca: readFileSync(o.ca),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => handle(req, Buffer.concat(chunks).toString("utf8"), res));
    },
  );
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(o.port, "127.0.0.1", resolve));
  process.on("message", () => process.send?.({ stats: { seen, total } }));
  process.on("SIGTERM", () => {
    server.closeAllConnections();
    server.close();
    void (backendStop?.() ?? Promise.resolve()).finally(() => process.exit(0));
  });
  process.send?.({ ready: true });
}

if (process.env.ATB_FAULT_BROKER) {
  main(JSON.parse(process.env.ATB_FAULT_BROKER) as FaultBrokerOptions).catch(err => {
    console.error(`fault broker failed: ${String(err)}`);
    process.exit(1);
  });
}
