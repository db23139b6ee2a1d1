// The "result" layer of the broker client: pure functions that turn one HTTP answer from the
// broker into either a typed Decision or a typed AtbError. Nothing here does I/O, so the
// fail-closed rules (only a well-formed 200 with allowed === true allows) are unit-tested with
// fast-check against arbitrary bodies.
import { AtbError } from "../errors";
import { parseDetails, type DecisionDetails } from "./details";

export type RiskTier = "LOW" | "MEDIUM" | "HIGH" | "CRITICAL";
export const RISK_TIERS: readonly RiskTier[] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];

/** The broker's verdict for one task. A deny is a value, not an error. */
export interface Decision {
  allowed: boolean;
  riskTier: RiskTier;
  reason: string;
  /** The broker's request id (joins the operator's logs with the broker's audit log). */
  requestId: string;
  evaluateMs: number;
  decisionId?: string;
  policyRevision?: string;
  /** metadata.details as far as the operator reads it (deny codes, approvals); see details.ts. */
  details?: DecisionDetails;
}

/** What the retry decorator needs from one attempt. */
export type AttemptResult = { ok: true; decision: Decision } | { ok: false; error: AtbError; retryAfterMs?: number };

/** Longest body we read from the broker; a decision is a few hundred bytes. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
const MAX_REASON_CHARS = 256;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Upper-cases a tier; lower-case tiers from other ATB implementations are accepted. */
export function normaliseTier(value: unknown): RiskTier | undefined {
  if (typeof value !== "string") return undefined;
  const upper = value.toUpperCase();
  return (RISK_TIERS as readonly string[]).includes(upper) ? (upper as RiskTier) : undefined;
}

function malformed(why: string): AtbError {
  return new AtbError("BROKER_MALFORMED", `broker answered 200 with a malformed decision: ${why}`);
}

function optionalString(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v.slice(0, MAX_REASON_CHARS) : undefined;
}

function evaluateMsOf(metadata: Record<string, unknown>): number {
  const v = metadata.evaluate_ms;
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
}

/**
 * Parses the body of a 200 answer. Fail closed: allowed must be a boolean, risk_tier one of the
 * four tiers and reason a string, otherwise BROKER_MALFORMED (never an allow).
 */
export function parseDecisionBody(text: string, fallbackRequestId: string): Decision | AtbError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return malformed("body is not JSON");
  }
  if (!isRecord(body)) return malformed("body is not a JSON object");
  if (typeof body.allowed !== "boolean") return malformed("`allowed` is missing or not a boolean");
  const riskTier = normaliseTier(body.risk_tier);
  if (!riskTier) return malformed("`risk_tier` is missing or not one of LOW, MEDIUM, HIGH, CRITICAL");
  if (typeof body.reason !== "string") return malformed("`reason` is missing or not a string");
  const metadata = isRecord(body.metadata) ? body.metadata : {};
  const decision: Decision = {
    allowed: body.allowed,
    riskTier,
    reason: body.reason.slice(0, MAX_REASON_CHARS),
    requestId: optionalString(body.request_id) ?? fallbackRequestId,
    evaluateMs: evaluateMsOf(metadata),
  };
  const decisionId = optionalString(metadata.decision_id);
  const policyRevision = optionalString(metadata.policy_revision);
  if (decisionId) decision.decisionId = decisionId;
  if (policyRevision) decision.policyRevision = policyRevision;
  const details = parseDetails(metadata.details);
  if (details) decision.details = details;
  return decision;
}

/**
 * Retry-After as milliseconds: delta-seconds or an HTTP date. Undefined when absent or
 * unparseable; never negative.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

/** A short, token-free excerpt of an error body for messages. */
function excerpt(text: string): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  if (!oneLine) return "";
  return `: ${oneLine.slice(0, 200).replace(/eyJ[A-Za-z0-9_.-]+/g, "[REDACTED]")}`;
}

/** Maps a non-200 status to the project's error, per the contract's outcome table. */
export function errorForStatus(status: number, text: string): AtbError {
  const detail = `broker answered HTTP ${status}${excerpt(text)}`;
  if (status === 408 || status === 429 || status >= 500) return new AtbError("BROKER_UNAVAILABLE", detail);
  if (status === 401 || status === 403) {
    return new AtbError(
      "BROKER_UNAUTHORIZED",
      `${detail} (the broker does not trust the operator: check TLS_CERT_FILE/TLS_KEY_FILE and the broker's client CA)`,
    );
  }
  if (status >= 400) return new AtbError("BROKER_BAD_REQUEST", detail);
  return new AtbError("BROKER_MALFORMED", `${detail} (expected 200)`);
}

/** The parts of an HTTP answer the result layer reads. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * One HTTP answer to an attempt result, for any answer body: a 200 is parsed by `parse`, any other
 * status mapped once here (the decide, verify and plan calls share it).
 */
export function interpretWith<T>(
  parse: (text: string, requestId: string) => T | AtbError,
): (
  answer: RawAnswer,
  requestId: string,
  nowMs: number,
) => { ok: true; decision: T } | Exclude<AttemptResult, { ok: true }> {
  return ({ status, headers, text }, requestId, nowMs) => {
    if (status === 200) {
      const parsed = parse(text, requestId);
      return parsed instanceof AtbError ? { ok: false, error: parsed } : { ok: true, decision: parsed };
    }
    const error = errorForStatus(status, text);
    const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(headers["retry-after"], nowMs) : undefined;
    return retryAfterMs === undefined ? { ok: false, error } : { ok: false, error, retryAfterMs };
  };
}

/** One HTTP answer to a decision attempt's result. */
export const interpretResponse: (answer: RawAnswer, requestId: string, nowMs: number) => AttemptResult =
  interpretWith(parseDecisionBody);
