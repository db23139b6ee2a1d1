// The retry decorator of the broker client: runs attempts until one yields a decision, a
// non-retryable error, or the deadline (which the caller never sets past the PoA's exp). Backoff
// is exponential with full jitter (the AWS/OpenTelemetry exporter shape); a Retry-After from the
// broker is honoured as a floor. Time and randomness are injected so the maths is unit-tested.
import { AtbError, messageOf } from "../errors";
import type { AttemptResult, Decision } from "./response";

export interface RetryPolicy {
  maxAttempts: number;
  attemptTimeoutMs: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
}

export interface RetryClock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Uniform in [0, 1). */
  random(): number;
}

export const systemClock: RetryClock = {
  now: () => Date.now(),
  sleep: ms => new Promise(resolve => setTimeout(resolve, ms)),
  random: () => Math.random(),
};

/** An attempt shorter than this cannot complete a TLS handshake and a decision; not worth starting. */
export const MIN_ATTEMPT_MS = 50;

/** Full jitter: uniform in [0, min(max, base * 2^(attempt-1))). attempt counts from 1. */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.floor(Math.max(0, Math.min(random, 1)) * exp);
}

/** The wait before the next attempt: jittered backoff, at least the broker's Retry-After. */
export function nextDelayMs(attempt: number, policy: RetryPolicy, random: number, retryAfterMs?: number): number {
  const jittered = backoffDelayMs(attempt, policy.baseBackoffMs, policy.maxBackoffMs, random);
  return Math.max(jittered, retryAfterMs ?? 0);
}

/** One attempt's result; T is what a successful answer parses to (a Decision, or a plan). */
export type AttemptOf<T> = { ok: true; decision: T } | Exclude<AttemptResult, { ok: true }>;
export type Attempt<T = Decision> = (attempt: number, timeoutMs: number) => Promise<AttemptOf<T>>;
export type RetryListener = (attempt: number, delayMs: number, error: AtbError) => void;

function deadlineError(attempts: number, deadlineMs: number, last?: AtbError): AtbError {
  const when = new Date(deadlineMs).toISOString();
  if (!last) {
    return new AtbError(
      "BROKER_DEADLINE",
      `no attempt was possible before the deadline ${when} (PoA expired or about to)`,
    );
  }
  return new AtbError(
    "BROKER_DEADLINE",
    `no decision after ${attempts} attempt(s) (attempts exhausted or deadline ${when} reached); last error ${last.code}: ${messageOf(last)}`,
    { cause: last },
  );
}

/**
 * Runs attempt(1), attempt(2), ... Each attempt gets min(attemptTimeoutMs, time left). Throws the
 * first non-retryable error as is, or BROKER_DEADLINE (carrying the last error) when attempts or
 * time run out. Never returns anything but a Decision parsed by the result layer.
 */
export async function withRetry<T = Decision>(
  attempt: Attempt<T>,
  policy: RetryPolicy,
  deadlineMs: number,
  { clock = systemClock, onRetry }: { clock?: RetryClock; onRetry?: RetryListener } = {},
): Promise<T> {
  let last: AtbError | undefined;
  let made = 0;
  for (let n = 1; n <= policy.maxAttempts; n++) {
    const remaining = deadlineMs - clock.now();
    if (remaining < MIN_ATTEMPT_MS) break;
    made = n;
    const result = await attempt(n, Math.min(policy.attemptTimeoutMs, remaining));
    if (result.ok) return result.decision;
    last = result.error;
    if (!last.retryable || n === policy.maxAttempts) break;
    const delay = nextDelayMs(n, policy, clock.random(), result.retryAfterMs);
    if (clock.now() + delay + MIN_ATTEMPT_MS > deadlineMs) break;
    onRetry?.(n, delay, last);
    await clock.sleep(delay);
  }
  if (last && !last.retryable) throw last;
  throw deadlineError(made, deadlineMs, last);
}
