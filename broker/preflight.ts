// The token preflight, POST /api/v1/verify: may this PoA be used for this action on this target?
// The operator asks it before it reads, dry-runs or evaluates anything of the target (issue 13,
// "no read before the token is good"), so a task whose token fails is Denied the same way
// whatever the target holds. Checked: the signature, lifetime and claims (verify.ts), that the
// jti is not already used by another task (read-only: nothing is reserved), and the policy's
// binding rules (policies/preflight.rego: action string, sub, act, the token's target). The answer
// has the decide shape; an allow here only opens the way to the decision.
import { randomUUID } from "node:crypto";
import { baseInput, isPolicyDecision, taskUid, type DecideCall, type DecideDeps, type Reply } from "./decide";
import { parseDecideBody, type DecideBody } from "./request";

export const PREFLIGHT_PATH = "atb/k8s/binding";

interface Verdict {
  decision: "allow" | "deny" | "error";
  reason: string;
  riskTier: string | null;
  jti: string | null;
}

async function binding(deps: DecideDeps, inp: Record<string, unknown>): Promise<Omit<Verdict, "jti">> {
  try {
    const r: unknown = await deps.opa.evaluate(PREFLIGHT_PATH, inp, deps.evalTimeoutMs);
    if (!isPolicyDecision(r)) return { decision: "error", reason: "policy_result_malformed", riskTier: null };
    return { decision: r.allow ? "allow" : "deny", reason: r.reason, riskTier: r.risk_tier };
  } catch {
    return { decision: "error", reason: "policy_unavailable", riskTier: null };
  }
}

async function judge(deps: DecideDeps, b: DecideBody, operatorId: string | null, nowMs: number): Promise<Verdict> {
  const verified = await deps.verifier.verify(b.token, b.agent_id, nowMs);
  if (!verified.ok) {
    const tier = await binding(deps, baseInput(b, operatorId, null, nowMs));
    const decision = verified.reason === "poa_keys_unavailable" ? "error" : "deny";
    return { decision, reason: verified.reason, riskTier: tier.riskTier ?? "CRITICAL", jti: null };
  }
  const poa = verified.poa;
  const verdict = await binding(deps, baseInput(b, operatorId, poa, nowMs));
  if (verdict.decision === "allow" && deps.jti.wouldReplay(poa.jti, Math.floor(nowMs / 1000), taskUid(b)))
    return { decision: "deny", reason: "jti_replayed", riskTier: verdict.riskTier, jti: poa.jti };
  return { ...verdict, jti: poa.jti };
}

/** Handles one preflight end to end (everything but HTTP); audited like a decision. */
export async function handleVerify(deps: DecideDeps, call: DecideCall): Promise<Reply> {
  const parsed = parseDecideBody(call.raw);
  if (!parsed.ok)
    return { status: 400, body: { error: "bad_request", message: parsed.message, request_id: call.requestId } };
  const b = parsed.body;
  const started = performance.now();
  const v = await judge(deps, b, call.operatorId, deps.now());
  const evaluateMs = Math.round((performance.now() - started) * 1000) / 1000;
  const decisionId = randomUUID();
  deps.audit.write({
    request_id: call.requestId,
    decision_id: decisionId,
    poa_jti: v.jti,
    agent_identity: b.agent_id,
    requester_identity: b.requester?.username ?? null,
    operator_identity: call.operatorId,
    action: b.action,
    target: b.target,
    decision: v.decision,
    reason: v.reason,
    risk_tier: v.riskTier,
    policy_revision: deps.opa.revision,
    evaluate_ms: evaluateMs,
    phase: "preflight",
  });
  if (v.decision === "error") {
    const status = v.reason === "policy_result_malformed" ? 500 : 503;
    return {
      status,
      body: { error: v.reason, message: `no verdict: ${v.reason}`, request_id: call.requestId },
      headers: status === 503 ? { "retry-after": "1" } : {},
    };
  }
  return {
    status: 200,
    body: {
      allowed: v.decision === "allow",
      risk_tier: v.riskTier,
      reason: v.reason,
      request_id: call.requestId,
      metadata: { evaluate_ms: evaluateMs, decision_id: decisionId, policy_revision: deps.opa.revision },
    },
  };
}
