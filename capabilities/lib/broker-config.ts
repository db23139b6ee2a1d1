// Configuration of the broker client: the plain object the factory takes, its defaults, and a
// pure parser from an environment map (the operator's config module may call it; nothing here
// reads process.env). Fails fast with CONFIG_INVALID naming the variable.
import { AtbError } from "./errors";
import type { BrokerTlsFiles } from "./broker-transport";

export interface BrokerClientConfig {
  /** e.g. https://atb-broker.atb-system.svc:8443 (the decide path is appended). */
  brokerUrl: string;
  tls: BrokerTlsFiles;
  /** ATB_INSECURE=true: skip server-certificate verification (never in production). */
  insecure: boolean;
  attemptTimeoutMs: number;
  maxAttempts: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** Keep-alive connections in the pool. */
  connections?: number;
}

export const BROKER_CLIENT_DEFAULTS = {
  attemptTimeoutMs: 5_000,
  maxAttempts: 5,
  baseBackoffMs: 200,
  maxBackoffMs: 5_000,
  connections: 16,
} as const;

function invalid(message: string): AtbError {
  return new AtbError("CONFIG_INVALID", message);
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw invalid(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

function bool(name: string, raw: string | undefined): boolean {
  if (raw === undefined || raw === "") return false;
  const v = raw.trim().toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw invalid(`${name} must be true or false, got "${raw}"`);
}

/** Checks a config object and returns a frozen copy with defaults filled in. */
export function validateBrokerClientConfig(input: BrokerClientConfig): Readonly<BrokerClientConfig> {
  let url: URL;
  try {
    url = new URL(input.brokerUrl);
  } catch {
    throw invalid(`ATB_BROKER_URL is not a URL: "${input.brokerUrl}"`);
  }
  if (url.protocol !== "https:") throw invalid(`ATB_BROKER_URL must use https (mTLS), got "${url.protocol}"`);
  if (Boolean(input.tls.certFile) !== Boolean(input.tls.keyFile)) {
    throw invalid("TLS_CERT_FILE and TLS_KEY_FILE must be set together");
  }
  for (const key of ["attemptTimeoutMs", "maxAttempts", "baseBackoffMs", "maxBackoffMs"] as const) {
    if (!Number.isInteger(input[key]) || input[key] <= 0)
      throw invalid(`broker client ${key} must be a positive integer`);
  }
  if (input.maxBackoffMs < input.baseBackoffMs) throw invalid("broker client maxBackoffMs must be >= baseBackoffMs");
  return Object.freeze({
    ...input,
    tls: Object.freeze({ ...input.tls }),
    connections: input.connections ?? BROKER_CLIENT_DEFAULTS.connections,
  });
}

/** Builds the client config from environment variables (pure: pass process.env or a test map). */
export function brokerClientConfigFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): Readonly<BrokerClientConfig> {
  const brokerUrl = env.ATB_BROKER_URL?.trim();
  if (!brokerUrl) throw invalid("ATB_BROKER_URL is required (e.g. https://atb-broker.atb-system.svc:8443)");
  const d = BROKER_CLIENT_DEFAULTS;
  return validateBrokerClientConfig({
    brokerUrl,
    tls: {
      certFile: env.TLS_CERT_FILE || undefined,
      keyFile: env.TLS_KEY_FILE || undefined,
      caFile: env.TLS_CA_FILE || undefined,
    },
    insecure: bool("ATB_INSECURE", env.ATB_INSECURE),
    attemptTimeoutMs: positiveInt("ATB_BROKER_TIMEOUT_MS", env.ATB_BROKER_TIMEOUT_MS, d.attemptTimeoutMs),
    maxAttempts: positiveInt("ATB_BROKER_MAX_ATTEMPTS", env.ATB_BROKER_MAX_ATTEMPTS, d.maxAttempts),
    baseBackoffMs: positiveInt("ATB_BROKER_BACKOFF_BASE_MS", env.ATB_BROKER_BACKOFF_BASE_MS, d.baseBackoffMs),
    maxBackoffMs: positiveInt("ATB_BROKER_BACKOFF_MAX_MS", env.ATB_BROKER_BACKOFF_MAX_MS, d.maxBackoffMs),
    connections: positiveInt("ATB_BROKER_CONNECTIONS", env.ATB_BROKER_CONNECTIONS, d.connections),
  });
}
