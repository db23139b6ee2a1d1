// The reference ATB broker: an HTTPS server that requires a client certificate from its CA
// (refused at the TLS layer otherwise) and serves POST /api/v1/decide, POST /api/v1/verify (the
// token preflight), POST /api/v1/plan (a Plan task's tier and approvals, no token), GET /healthz and
// GET /metrics on loopback by default. startBroker() owns its OPA child process and stops it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { createLogger, type Logger } from "../capabilities/lib/logger";
import { messageOf } from "../capabilities/lib/errors";
import { createAuditSink } from "./audit";
import { handleVerify } from "./preflight";
import { handlePlan } from "./plan";
import { handleDecide, type DecideDeps, type Reply } from "./decide";
import { JtiCache } from "./jti-cache";
import { createBrokerMetrics } from "./metrics";
import { startOpa } from "./opa";
import { resolveOpaBinary, REPO_ROOT } from "./opa-binary";
import { acceptableRequestId } from "./request";
import { resolveTrust, type TrustSettings } from "./trust";
import { createPoaVerifier } from "./verify";

export const MAX_TOKEN_LIFETIME_CAP_S = 900;
// A decide body carries the object before and after the change (context.before/after) and, for a
// manifest deploy, the manifest itself: up to about two Kubernetes objects (1.5 MiB each at most).
const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface BrokerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8443; 0 picks a free port. */
  port?: number;
  tls: { certFile: string; keyFile: string; clientCaFile: string };
  /** Whom to trust (trust.ts: the simple key flags, a trust file, a trust object) and the clocks. */
  poa: TrustSettings & {
    maxLifetimeS?: number;
    clockSkewS?: number;
  };
  /** Default <repo>/policies and <policyDir>/data.json. */
  policyDir?: string;
  dataFile?: string;
  /** Default: ATB_OPA_BIN, else the control plane cache. */
  opaBin?: string;
  jtiCacheSize?: number;
  /** "stdout" (default), "stderr", a file path, or a stream. */
  audit?: string | NodeJS.WritableStream;
  logger?: Logger;
  evalTimeoutMs?: number;
  /** Clock for token checks and the policy's `now` (tests). */
  now?: () => number;
}

export interface RunningBroker {
  url: string;
  host: string;
  port: number;
  opaUrl: string;
  opaPid: number | undefined;
  policyRevision: string;
  registry: Registry;
  stop(): Promise<void>;
}

/** The peer certificate's SPIFFE ID (URI SAN), else its CN, else null. */
function identityOf(socket: TLSSocket): string | null {
  const cert = socket.getPeerCertificate?.();
  if (!cert || Object.keys(cert).length === 0) return null;
  const uri = (cert.subjectaltname ?? "").split(", ").find(s => s.startsWith("URI:"));
  if (uri) return uri.slice(4);
  const cn = cert.subject?.CN;
  return (Array.isArray(cn) ? cn[0] : cn) ?? null;
}

// getPeerCertificate() decodes the whole certificate (fingerprints, key, raw DER) on every call,
// ~90 µs per request under load, while the peer certificate of a keep-alive connection only
// changes with a new handshake: the identity is remembered per socket and forgotten whenever a
// handshake completes on it ('secure' is emitted after every handshake, TLS 1.2 renegotiation
// included).
const identities = new WeakMap<object, string | null>();

function operatorIdentity(req: IncomingMessage): string | null {
  const socket = req.socket as TLSSocket;
  if (identities.has(socket)) return identities.get(socket)!;
  const identity = identityOf(socket);
  if (typeof socket.once !== "function") return identity;
  identities.set(socket, identity);
  socket.once("secure", () => identities.delete(socket));
  return identity;
}

function send(res: ServerResponse, reply: Reply): void {
  const body = JSON.stringify(reply.body);
  // An explicit length: without it Node sends the answer chunked (size line and terminator as
  // extra pieces of the write).
  res.writeHead(reply.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...reply.headers,
  });
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on("end", () => resolve(size > MAX_BODY_BYTES ? null : Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

async function serveDecide(
  req: IncomingMessage,
  res: ServerResponse,
  deps: DecideDeps,
  requestId: string,
  handler: typeof handleDecide = handleDecide,
): Promise<void> {
  if (req.method !== "POST")
    return send(res, {
      status: 405,
      body: { error: "method_not_allowed", message: "use POST" },
      headers: { allow: "POST" },
    });
  const raw = await readBody(req);
  if (raw === null)
    return send(res, {
      status: 413,
      body: { error: "too_large", message: `body over ${MAX_BODY_BYTES} bytes`, request_id: requestId },
    });
  const reply = await handler(deps, { raw, requestId, operatorId: operatorIdentity(req) });
  // winston runs its whole format chain (redaction, JSON) even for a filtered level: check first.
  if (deps.logger.isDebugEnabled())
    deps.logger.debug("decide", { requestId, status: reply.status, reason: reply.body.reason ?? reply.body.error });
  send(res, reply);
}

function router(deps: DecideDeps, registry: Registry) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    const requestId = acceptableRequestId(req.headers["x-request-id"]) ?? randomUUID();
    if (path === "/api/v1/decide") return serveDecide(req, res, deps, requestId);
    if (path === "/api/v1/verify") return serveDecide(req, res, deps, requestId, handleVerify);
    if (path === "/api/v1/plan") return serveDecide(req, res, deps, requestId, handlePlan);
    if (path === "/healthz" && req.method === "GET") {
      const ok = deps.opa.healthy();
      return send(res, {
        status: ok ? 200 : 503,
        body: { status: ok ? "ok" : "opa_down", policy_revision: deps.opa.revision },
      });
    }
    if (path === "/metrics" && req.method === "GET") {
      res.writeHead(200, { "content-type": registry.contentType });
      return void res.end(await registry.metrics());
    }
    send(res, { status: 404, body: { error: "not_found", message: `no route ${req.method ?? ""} ${path}` } });
  };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

function lifetimeOf(o: BrokerOptions): number {
  const v = o.poa.maxLifetimeS ?? 300;
  if (!Number.isInteger(v) || v <= 0 || v > MAX_TOKEN_LIFETIME_CAP_S) {
    throw new Error(`max token lifetime must be 1..${MAX_TOKEN_LIFETIME_CAP_S} s, got ${v}`);
  }
  return v;
}

function tlsOptionsOf(o: BrokerOptions) {
  return {
    cert: readFileSync(o.tls.certFile),
    key: readFileSync(o.tls.keyFile),
    ca: readFileSync(o.tls.clientCaFile),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2" as const,
  };
}

async function buildDeps(o: BrokerOptions, logger: Logger): Promise<DecideDeps> {
  const clockSkewS = o.poa.clockSkewS ?? 30;
  const maxLifetimeS = lifetimeOf(o);
  const verifier = await createPoaVerifier({ trust: resolveTrust(o.poa), maxLifetimeS, clockSkewS, logger });
  const policyDir = o.policyDir ?? join(REPO_ROOT, "policies");
  const binary = resolveOpaBinary(o.opaBin, process.env);
  let opa;
  try {
    opa = await startOpa({ binary, policyDir, dataFile: o.dataFile ?? join(policyDir, "data.json"), logger });
  } catch (err) {
    await verifier.close();
    throw err;
  }
  return {
    verifier,
    opa,
    logger,
    clockSkewS,
    metrics: createBrokerMetrics(),
    audit: createAuditSink(o.audit ?? "stdout"),
    jti: new JtiCache(o.jtiCacheSize ?? 100_000),
    evalTimeoutMs: o.evalTimeoutMs ?? 2_000,
    now: o.now ?? Date.now,
  };
}

/** Starts OPA, then the HTTPS server. stop() closes both (and the audit file). */
export async function startBroker(o: BrokerOptions): Promise<RunningBroker> {
  const logger = (o.logger ?? createLogger(process.env.ATB_LOG_LEVEL ?? "info", "broker")).child({
    subsystem: "broker",
  });
  const tlsOptions = tlsOptionsOf(o);
  const deps = await buildDeps(o, logger);
  const { opa, metrics, audit } = deps;
  const handle = router(deps, metrics.registry);
  const server = createServer(tlsOptions, (req, res) => {
    handle(req, res).catch(err => {
      logger.error("request failed", { error: messageOf(err) });
      if (!res.headersSent) send(res, { status: 500, body: { error: "internal", message: "internal error" } });
    });
  });
  let port: number;
  try {
    port = await listen(server, o.port ?? 8443, o.host ?? "127.0.0.1");
  } catch (err) {
    await opa.stop();
    await audit.close();
    await deps.verifier.close();
    throw err;
  }
  const host = o.host ?? "127.0.0.1";
  const url = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  logger.info("broker listening", {
    url,
    opa: opa.url,
    policyRevision: opa.revision,
    keys: deps.verifier.keyCount,
    issuerProfiles: deps.verifier.profiles,
  });
  const stop = async (): Promise<void> => {
    await new Promise<void>(resolve => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await opa.stop();
    await audit.close();
    await deps.verifier.close();
    logger.info("broker stopped", { url });
  };
  return {
    url,
    host,
    port,
    opaUrl: opa.url,
    opaPid: opa.pid,
    policyRevision: opa.revision,
    registry: metrics.registry,
    stop,
  };
}
