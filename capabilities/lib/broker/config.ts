// Configuration of the broker client: the plain object the factory takes, its defaults and its
// validation. The operator's config module (capabilities/lib/config.ts) reads the environment.
import { AtbError } from "../errors";
import type { BrokerTlsFiles } from "./transport";

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

/** The one set of defaults: the operator's environment (lib/config.ts), the bench and the tests
 * start from these. */
export const BROKER_CLIENT_DEFAULTS = {
  attemptTimeoutMs: 5_000,
  maxAttempts: 4,
  baseBackoffMs: 200,
  maxBackoffMs: 5_000,
  connections: 16,
} as const;

function invalid(message: string): AtbError {
  return new AtbError("CONFIG_INVALID", message);
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
