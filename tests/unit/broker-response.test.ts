// The result layer of the broker client faces untrusted input: property tests show it never
// allows unless the body is a JSON object with allowed === true and a valid tier.
import fc from "fast-check";
import { AtbError } from "../../capabilities/lib/errors";
import {
  errorForStatus,
  interpretResponse,
  normaliseTier,
  parseDecisionBody,
  parseRetryAfter,
} from "../../capabilities/lib/broker/response";

const tierCase = fc.constantFrom("LOW", "MEDIUM", "HIGH", "CRITICAL").chain(t => fc.constantFrom(t, t.toLowerCase()));

describe("parseDecisionBody", () => {
  it("never allows unless the body says allowed: true (arbitrary strings)", () => {
    fc.assert(
      fc.property(fc.string(), s => {
        const r = parseDecisionBody(s, "fallback");
        if (r instanceof AtbError) return r.code === "AT_ERR_BROKER_MALFORMED";
        return !r.allowed || (JSON.parse(s) as { allowed: unknown }).allowed === true;
      }),
    );
  });

  it("never allows unless the body says allowed: true (arbitrary JSON)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), v => {
        const r = parseDecisionBody(JSON.stringify(v), "fallback");
        return r instanceof AtbError || !r.allowed || (v as { allowed?: unknown }).allowed === true;
      }),
    );
  });

  it("never allows when allowed is present but not the boolean true", () => {
    const notTrue = fc.oneof(
      fc.constant("true"),
      fc.constant(1),
      fc.constant(null),
      fc.constant(false),
      fc.array(fc.boolean()),
      fc.string(),
    );
    fc.assert(
      fc.property(notTrue, tierCase, fc.string(), (allowed, tier, reason) => {
        const r = parseDecisionBody(JSON.stringify({ allowed, risk_tier: tier, reason }), "x");
        return r instanceof AtbError ? allowed !== false : r.allowed === false;
      }),
    );
  });

  it("parses every well-formed decision, upper-casing the tier", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        tierCase,
        fc.string({ maxLength: 50 }),
        fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: undefined }),
        (allowed, tier, reason, rid) => {
          const r = parseDecisionBody(
            JSON.stringify({ allowed, risk_tier: tier, reason, request_id: rid, metadata: { evaluate_ms: 3 } }),
            "fallback",
          );
          expect(r).toEqual({
            allowed,
            riskTier: tier.toUpperCase(),
            reason,
            requestId: rid ?? "fallback",
            evaluateMs: 3,
          });
        },
      ),
    );
  });

  it.each([
    ["missing allowed", { risk_tier: "LOW", reason: "r" }],
    ["missing tier", { allowed: true, reason: "r" }],
    ["unknown tier", { allowed: true, risk_tier: "SEVERE", reason: "r" }],
    ["missing reason", { allowed: true, risk_tier: "LOW" }],
    ["an array", [{ allowed: true, risk_tier: "LOW", reason: "r" }]],
  ])("is malformed for %s", (_n, body) => {
    expect(parseDecisionBody(JSON.stringify(body), "x")).toBeInstanceOf(AtbError);
  });
});

describe("interpretResponse", () => {
  it("never succeeds on a status other than 200, whatever the body", () => {
    const status = fc.integer({ min: 100, max: 599 }).filter(s => s !== 200);
    fc.assert(
      fc.property(
        status,
        fc.string(),
        (code, body) => !interpretResponse({ status: code, headers: {}, text: body }, "r", 0).ok,
      ),
    );
  });

  it.each([
    [408, "AT_ERR_BROKER_UNAVAILABLE", true],
    [429, "AT_ERR_BROKER_UNAVAILABLE", true],
    [500, "AT_ERR_BROKER_UNAVAILABLE", true],
    [503, "AT_ERR_BROKER_UNAVAILABLE", true],
    [400, "AT_ERR_BROKER_BAD_REQUEST", false],
    [422, "AT_ERR_BROKER_BAD_REQUEST", false],
    [409, "AT_ERR_BROKER_BAD_REQUEST", false],
    [401, "AT_ERR_BROKER_UNAUTHORIZED", false],
    [403, "AT_ERR_BROKER_UNAUTHORIZED", false],
    [204, "AT_ERR_BROKER_MALFORMED", false],
    [302, "AT_ERR_BROKER_MALFORMED", false],
  ])("maps HTTP %i to %s (retryable %s)", (status, code, retryable) => {
    const e = errorForStatus(status, "");
    expect({ code: e.code, retryable: e.retryable }).toEqual({ code, retryable });
  });

  it("keeps Retry-After only for 429 and 503", () => {
    const h = { "retry-after": "2" };
    expect(interpretResponse({ status: 429, headers: h, text: "" }, "r", 0)).toMatchObject({
      ok: false,
      retryAfterMs: 2000,
    });
    expect(interpretResponse({ status: 503, headers: h, text: "" }, "r", 0)).toMatchObject({
      ok: false,
      retryAfterMs: 2000,
    });
    expect(interpretResponse({ status: 500, headers: h, text: "" }, "r", 0)).not.toHaveProperty("retryAfterMs");
  });

  it("never quotes a token from an error body", () => {
    const token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
    expect(errorForStatus(400, `bad token ${token}`).message).not.toContain(token);
  });
});

describe("parseRetryAfter and normaliseTier", () => {
  it.each([
    ["3", 3000],
    ["0", 0],
    [" 10 ", 10000],
    ["Thu, 01 Jan 1970 00:00:05 GMT", 5000],
    ["Thu, 01 Jan 1970 00:00:00 GMT", 0],
    ["soon", undefined],
    [undefined, undefined],
  ])("Retry-After %p -> %p ms", (value, ms) => {
    expect(parseRetryAfter(value, 0)).toBe(ms);
  });

  it("accepts lower-case tiers and rejects others", () => {
    expect(normaliseTier("medium")).toBe("MEDIUM");
    expect(normaliseTier("Critical")).toBe("CRITICAL");
    expect(normaliseTier("severe")).toBeUndefined();
    expect(normaliseTier(3)).toBeUndefined();
  });
});
