// The decide pipeline of the reference broker: body -> PoA verification (jose) -> jti reserve ->
// OPA decision -> jti commit/release -> answer, audit line, metrics. Pure of HTTP: server.ts
// adapts it. Fail closed everywhere: an OPA failure or a malformed policy result is an error
// answer (503/500), never an allow.
import { randomUUID } from "node:crypto";
import type { Logger } from "../capabilities/lib/logger";
import { messageOf } from "../capabilities/lib/errors";
import type { AuditRecord, AuditSink } from "./audit";
import type { JtiCache } from "./jti-cache";
import type { BrokerMetrics } from "./metrics";
import type { OpaEngine } from "./opa";
import { changeDigest } from "../capabilities/lib/change-digest";
import { parseDecideBody, type DecideBody } from "./request";
import { KEYS_UNAVAILABLE, type PoaVerifier, type VerifiedPoa } from "./verify";

export const DECISION_PATH = "atb/k8s/decision";
/** Reasons the broker itself gives (besides POA_FAILURES and the policy's codes). */
export const BROKER_REASONS = [
  "jti_replayed",
  "poa_keys_unavailable",
  "replay_cache_full",
  "policy_unavailable",
  "policy_result_malformed",
  "bad_request",
] as const;
const TIER_PATH = "atb/k8s/computed_tier";
const TIERS = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];

export interface DecideDeps {
  verifier: PoaVerifier;
  jti: JtiCache;
  opa: OpaEngine;
  metrics: BrokerMetrics;
  audit: AuditSink;
  logger: Logger;
  clockSkewS: number;
  evalTimeoutMs: number;
  now: () => number;
}

export interface DecideCall {
  raw: string;
  requestId: string;
  operatorId: string | null;
}

export interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

interface Outcome {
  decision: AuditRecord["decision"];
  reason: string;
  riskTier: string | null;
  evaluateMs: number;
  details?: unknown;
}

/**
 * The digest of the change being decided (capabilities/lib/change-digest.ts over the request's
 * params); null when the params have no canonical form (e.g. a number JSON cannot carry).
 */
function changeSha256(b: DecideBody): string | null {
  try {
    return changeDigest(b.params);
  } catch {
    return null;
  }
}

interface Judged {
  b: DecideBody;
  operatorId: string | null;
  nowMs: number;
  /** changeSha256(b), computed once per request. */
  change: string | null;
}

/**
 * What every policy query gets: the action, who asks for whom (the agent, the Kubernetes identity
 * that created the task, the operator), the verified token, the target, the time.
 */
export function baseInput(
  b: DecideBody,
  operatorId: string | null,
  poa: VerifiedPoa | null,
  nowMs: number,
): Record<string, unknown> {
  return {
    action: b.action,
    agent: { spiffe_id: b.agent_id },
    // Absent when the caller sent none: the policy then denies requester_mismatch.
    ...(b.requester ? { requester: b.requester } : {}),
    operator: { spiffe_id: operatorId },
    poa: poa ?? {},
    target: b.target,
    now: new Date(nowMs).toISOString(),
  };
}

function policyInput({ b, operatorId, nowMs, change }: Judged, poa: VerifiedPoa | null): Record<string, unknown> {
  return {
    ...baseInput(b, operatorId, poa, nowMs),
    params: b.params,
    context: b.context,
    change: { sha256: change },
  };
}

export function isPolicyDecision(
  v: unknown,
): v is { allow: boolean; reason: string; risk_tier: string; details?: unknown } {
  const d = v as Record<string, unknown> | null;
  return (
    typeof d === "object" &&
    d !== null &&
    typeof d.allow === "boolean" &&
    typeof d.reason === "string" &&
    TIERS.includes(d.risk_tier as string)
  );
}

/** The action's tier for answers that end before the policy runs (bad token, replay). */
async function tierOnly(deps: DecideDeps, input: Record<string, unknown>): Promise<string> {
  try {
    const tier = await deps.opa.evaluate(TIER_PATH, input, deps.evalTimeoutMs);
    return typeof tier === "string" && TIERS.includes(tier) ? tier : "CRITICAL";
  } catch {
    return "CRITICAL";
  }
}

async function evaluatePolicy(deps: DecideDeps, input: Record<string, unknown>): Promise<Outcome> {
  const started = performance.now();
  try {
    const result = await deps.opa.evaluate(DECISION_PATH, input, deps.evalTimeoutMs);
    const evaluateMs = Math.round((performance.now() - started) * 1000) / 1000;
    if (!isPolicyDecision(result))
      return { decision: "error", reason: "policy_result_malformed", riskTier: null, evaluateMs };
    deps.metrics.evaluation.observe({ result: result.allow ? "allow" : "deny" }, evaluateMs / 1000);
    return {
      decision: result.allow ? "allow" : "deny",
      reason: result.reason,
      riskTier: result.risk_tier,
      evaluateMs,
      details: result.details,
    };
  } catch (err) {
    deps.logger.error("policy evaluation failed", { error: messageOf(err) });
    return {
      decision: "error",
      reason: "policy_unavailable",
      riskTier: null,
      evaluateMs: Math.round(performance.now() - started),
    };
  }
}

/** The task a decide call is for (binds the jti to it); undefined when the caller sends none. */
export function taskUid(b: DecideBody): string | undefined {
  const task = b.context?.task as { uid?: unknown } | undefined;
  return typeof task?.uid === "string" && task.uid.length > 0 ? task.uid : undefined;
}

/** Verification, replay check and policy; returns the outcome and the jti it judged (if any). */
async function judge(deps: DecideDeps, j: Judged): Promise<{ outcome: Outcome; jti: string | null }> {
  const { b, nowMs } = j;
  const verified = await deps.verifier.verify(b.token, b.agent_id, nowMs, {
    changeSha256: j.change,
    taskUid: taskUid(b),
    attestations: b.attestations,
  });
  if (!verified.ok) {
    const riskTier = await tierOnly(deps, policyInput(j, null));
    // Keys that could not be fetched are no verdict on the token: an error the caller retries.
    const decision = verified.reason === KEYS_UNAVAILABLE ? "error" : "deny";
    if (decision === "error") deps.logger.warn("PoA keys unavailable", { error: verified.message });
    return { outcome: { decision, reason: verified.reason, riskTier, evaluateMs: 0 }, jti: null };
  }
  const poa = verified.poa;
  const reserved = deps.jti.reserve(poa.jti, poa.exp + deps.clockSkewS, Math.floor(nowMs / 1000), taskUid(b));
  if (reserved.result !== "reserved") {
    const riskTier = await tierOnly(deps, policyInput(j, null));
    const outcome: Outcome =
      reserved.result === "replayed"
        ? { decision: "deny", reason: "jti_replayed", riskTier, evaluateMs: 0 }
        : { decision: "error", reason: "replay_cache_full", riskTier, evaluateMs: 0 };
    return { outcome, jti: poa.jti };
  }
  const outcome = await evaluatePolicy(deps, policyInput(j, poa));
  if (outcome.decision === "allow") deps.jti.commit(reserved.ticket);
  else deps.jti.release(reserved.ticket);
  return { outcome, jti: poa.jti };
}

function replyFor(o: Outcome, requestId: string, decisionId: string, revision: string): Reply {
  if (o.decision === "error") {
    const status = o.reason === "policy_result_malformed" ? 500 : 503;
    return {
      status,
      body: { error: o.reason, message: `no decision: ${o.reason}`, request_id: requestId },
      headers: status === 503 ? { "retry-after": "1" } : {},
    };
  }
  const metadata: Record<string, unknown> = {
    evaluate_ms: o.evaluateMs,
    decision_id: decisionId,
    policy_revision: revision,
  };
  if (o.details !== undefined) metadata.details = o.details;
  return {
    status: 200,
    body: { allowed: o.decision === "allow", risk_tier: o.riskTier, reason: o.reason, request_id: requestId, metadata },
  };
}

/** Handles one decide request end to end (everything but HTTP). */
export async function handleDecide(deps: DecideDeps, call: DecideCall): Promise<Reply> {
  const started = performance.now();
  const parsed = parseDecideBody(call.raw);
  if (!parsed.ok) {
    deps.metrics.decisions.inc({ result: "error", risk_tier: "", reason: "bad_request" });
    return { status: 400, body: { error: "bad_request", message: parsed.message, request_id: call.requestId } };
  }
  const b = parsed.body;
  const { outcome, jti } = await judge(deps, {
    b,
    operatorId: call.operatorId,
    nowMs: deps.now(),
    change: changeSha256(b),
  });
  const decisionId = randomUUID();
  deps.audit.write({
    request_id: call.requestId,
    decision_id: decisionId,
    poa_jti: jti,
    agent_identity: b.agent_id,
    requester_identity: b.requester?.username ?? null,
    operator_identity: call.operatorId,
    action: b.action,
    target: b.target,
    decision: outcome.decision,
    reason: outcome.reason,
    risk_tier: outcome.riskTier,
    policy_revision: deps.opa.revision,
    evaluate_ms: outcome.evaluateMs,
  });
  deps.metrics.decisions.inc({ result: outcome.decision, risk_tier: outcome.riskTier ?? "", reason: outcome.reason });
  deps.metrics.request.observe({ result: outcome.decision }, (performance.now() - started) / 1000);
  return replyFor(outcome, call.requestId, decisionId, deps.opa.revision);
}
