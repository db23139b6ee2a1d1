// Backoff maths and the retry decorator, with an injected clock: full jitter bounded by the cap,
// Retry-After as a floor, non-retryable errors stop at once, the deadline is never passed.
import fc from "fast-check";
import { AtbError } from "../../capabilities/lib/errors";
import {
  backoffDelayMs,
  nextDelayMs,
  withRetry,
  type RetryClock,
  type RetryPolicy,
} from "../../capabilities/lib/broker/retry";
import type { AttemptResult, Decision } from "../../capabilities/lib/broker/response";

const policy: RetryPolicy = { maxAttempts: 5, attemptTimeoutMs: 1000, baseBackoffMs: 100, maxBackoffMs: 1000 };
const decision: Decision = { allowed: true, riskTier: "LOW", reason: "allowed", requestId: "r", evaluateMs: 1 };

function fakeClock(random = 0.5): RetryClock & { t: number; sleeps: number[] } {
  const c = {
    t: 0,
    sleeps: [] as number[],
    now: () => c.t,
    random: () => random,
    sleep: async (ms: number) => {
      c.sleeps.push(ms);
      c.t += ms;
    },
  };
  return c;
}

const unavailable = (): AttemptResult => ({ ok: false, error: new AtbError("BROKER_UNAVAILABLE", "500") });

describe("backoffDelayMs (full jitter)", () => {
  it.each([
    [1, 0.999, 99],
    [2, 0.999, 199],
    [3, 0.5, 200],
    [5, 0.999, 999],
    [50, 0.5, 500],
    [1, 0, 0],
  ])("attempt %i with random %f waits %i ms", (attempt, random, expected) => {
    expect(backoffDelayMs(attempt, 100, 1000, random)).toBe(expected);
  });

  it("stays within [0, min(cap, base*2^(n-1)))", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 60000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (n, base, cap, r) => {
          const d = backoffDelayMs(n, base, cap, r);
          return d >= 0 && d <= Math.min(cap, base * 2 ** (n - 1)) && Number.isInteger(d);
        },
      ),
    );
  });

  it("uses Retry-After as a floor", () => {
    expect(nextDelayMs(1, policy, 0.5, 3000)).toBe(3000);
    expect(nextDelayMs(4, policy, 0.999, 10)).toBe(799);
  });
});

describe("withRetry", () => {
  it("returns the first decision and sends attempt numbers and timeouts", async () => {
    const clock = fakeClock();
    const calls: [number, number][] = [];
    const result = await withRetry(
      async (n, timeout) => (calls.push([n, timeout]), n < 3 ? unavailable() : { ok: true, decision }),
      policy,
      10_000,
      { clock },
    );
    expect(result).toBe(decision);
    expect(calls).toEqual([
      [1, 1000],
      [2, 1000],
      [3, 1000],
    ]);
    expect(clock.sleeps).toEqual([50, 100]);
  });

  it("throws a non-retryable error at once", async () => {
    const clock = fakeClock();
    let n = 0;
    const err = new AtbError("BROKER_MALFORMED", "bad");
    await expect(withRetry(async () => (n++, { ok: false, error: err }), policy, 10_000, { clock })).rejects.toBe(err);
    expect(n).toBe(1);
  });

  it("gives up with BROKER_DEADLINE after maxAttempts, carrying the last error", async () => {
    const clock = fakeClock();
    const p = withRetry(async () => unavailable(), policy, 1_000_000, { clock });
    await expect(p).rejects.toMatchObject({ code: "AT_ERR_BROKER_DEADLINE", retryable: false });
    await expect(p).rejects.toHaveProperty("cause.code", "AT_ERR_BROKER_UNAVAILABLE");
    expect(clock.sleeps).toHaveLength(4);
  });

  it("never lets an attempt run past the deadline and never sleeps across it", () => {
    return fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 5000 }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        async (deadline, r) => {
          const clock = fakeClock(r);
          const ends: number[] = [];
          await withRetry(
            async (_n, timeout) => ((clock.t += timeout), ends.push(clock.t), unavailable()),
            { ...policy, maxAttempts: 100 },
            deadline,
            { clock },
          ).catch(() => undefined);
          return ends.every(e => e <= deadline);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("does not start when less than the minimum attempt time is left", async () => {
    let n = 0;
    await expect(withRetry(async () => (n++, unavailable()), policy, 10, { clock: fakeClock() })).rejects.toMatchObject(
      { code: "AT_ERR_BROKER_DEADLINE" },
    );
    expect(n).toBe(0);
  });
});
