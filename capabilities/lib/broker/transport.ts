// The "transport" layer of the broker client: one HTTPS POST over a keep-alive undici Pool with
// mTLS material read from files. It knows nothing about decisions; it returns the raw answer or
// throws an AtbError converted at this boundary from undici's UND_ERR_* and Node's TLS/socket
// errors, so the retry decorator only ever sees the project's error catalog.
import { readFileSync } from "node:fs";
import { Pool } from "undici";
import { AtbError, messageOf } from "../errors";
import { MAX_RESPONSE_BYTES, type RawAnswer } from "./response";

export interface BrokerTlsFiles {
  /** Client certificate (PEM) presented to the broker; its URI SAN is the operator's SPIFFE ID. */
  certFile?: string;
  keyFile?: string;
  /** CA bundle (PEM) that signs the broker's server certificate; system CAs when absent. */
  caFile?: string;
}

export interface TransportConfig {
  brokerUrl: string;
  tls: BrokerTlsFiles;
  /** Disables server-certificate verification only; the client certificate is still sent. */
  insecure: boolean;
  /** Upper bound for the TLS connect phase of one attempt. */
  connectTimeoutMs: number;
  connections?: number;
}

export type HttpAnswer = RawAnswer;

export interface BrokerTransport {
  post(path: string, body: string, requestId: string, timeoutMs: number): Promise<HttpAnswer>;
  close(): Promise<void>;
}

// Server certificate not acceptable to us: a configuration problem, retrying will not help.
const UNTRUSTED_SERVER = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_REJECTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "HOSTNAME_MISMATCH",
]);
// TLS alerts the broker sends when it does not accept our client certificate.
const REFUSED_BY_SERVER =
  /ALERT_(CERTIFICATE_REQUIRED|UNKNOWN_CA|BAD_CERTIFICATE|ACCESS_DENIED|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE)/;
const CLOSED = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);
const TIMEOUTS = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

/** Every `code` along an error's cause chain (undici wraps Node's socket and TLS errors). */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    current = (current as { cause?: unknown }).cause;
  }
  return codes;
}

/** Converts a failed attempt into the project's error; pure, so each mapping is unit-tested. */
export function classifyTransportError(err: unknown, timedOut: boolean, timeoutMs: number): AtbError {
  if (err instanceof AtbError) return err;
  const codes = errorCodes(err);
  const what = `${codes[0] ?? "error"}: ${messageOf(err)}`;
  if (timedOut || codes.some(c => TIMEOUTS.has(c))) {
    return new AtbError("BROKER_TIMEOUT", `broker did not answer within ${timeoutMs} ms (${what})`, { cause: err });
  }
  if (codes.some(c => UNTRUSTED_SERVER.has(c))) {
    return new AtbError(
      "BROKER_TLS_UNTRUSTED",
      `the broker's server certificate is not trusted (${what}); check TLS_CA_FILE and ATB_BROKER_URL's host name`,
      { cause: err },
    );
  }
  if (codes.some(c => REFUSED_BY_SERVER.test(c))) {
    return new AtbError(
      "BROKER_UNAUTHORIZED",
      `the broker refused the operator's client certificate at the TLS layer (${what}); check TLS_CERT_FILE/TLS_KEY_FILE`,
      { cause: err },
    );
  }
  // With TLS 1.3 the broker rejects a client certificate after the handshake, and undici
  // usually reports only "other side closed"; say what that often means without guessing.
  const hint = codes.some(c => CLOSED.has(c))
    ? "; if this persists, the broker may be refusing the operator's client certificate (TLS_CERT_FILE/TLS_KEY_FILE)"
    : "";
  return new AtbError("BROKER_UNAVAILABLE", `broker unreachable (${what})${hint}`, { cause: err });
}

function readPemFile(label: string, path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new AtbError("BROKER_TLS_CONFIG", `cannot read ${label} ${path}: ${messageOf(err)}`, { cause: err });
  }
}

function createPool(config: TransportConfig): Pool {
  const origin = new URL(config.brokerUrl).origin;
  const cert = readPemFile("client certificate", config.tls.certFile);
  const key = readPemFile("client key", config.tls.keyFile);
  const ca = readPemFile("CA bundle", config.tls.caFile);
  return new Pool(origin, {
    connections: config.connections ?? 16,
    keepAliveTimeout: 30_000,
    connect: {
      cert,
      key,
      ca,
      rejectUnauthorized: !config.insecure,
      timeout: config.connectTimeoutMs,
      minVersion: "TLSv1.2",
    },
  });
}

async function readLimited(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) {
      body.destroy();
      throw new AtbError("BROKER_MALFORMED", `broker answer larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Creates the transport; reads the TLS files once (throws BROKER_TLS_CONFIG when unreadable). */
export function createTransport(config: TransportConfig): BrokerTransport {
  const pool = createPool(config);
  const basePath = new URL(config.brokerUrl).pathname.replace(/\/+$/, "");
  async function post(path: string, body: string, requestId: string, timeoutMs: number): Promise<HttpAnswer> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    try {
      const res = await pool.request({
        path: basePath + path,
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json", "x-request-id": requestId },
        body,
        signal: controller.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const text = await readLimited(res.body);
      return { status: res.statusCode, headers: res.headers, text };
    } catch (err) {
      throw classifyTransportError(err, timedOut, timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }
  return { post, close: () => pool.close() };
}
