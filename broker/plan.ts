// The plan, POST /api/v1/plan: what the policy would ask of a change, without a token. The
// operator asks it for a Plan task (spec.mode Plan): the decide body without `token` and
// `attestations` (requester, agent_id, action, target, params, context); the answer is the tier,
// the approvals the policy would need (policies/plan.rego) and the change digest computed from the
// params. It never allows: `allowed` is false and `plan` true in every answer, so no client can
// mistake it for a decision. A body that carries a token or attestations is refused (400): a plan
// verifies nothing, and a token must not travel where it is not checked. Audited like a decision,
// with phase "plan".
import { randomUUID } from "node:crypto";
import { changeDigest } from "../capabilities/lib/change-digest";
import { baseInput, type DecideCall, type DecideDeps, type Reply } from "./decide";
import { parseDecideBody, parseJsonObject, type DecideBody } from "./request";

export const PLAN_POLICY_PATH = "atb/k8s/plan";
const TIERS = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];

interface PlanResult {
  risk_tier: string;
  approvals_required: { count: number; roles?: string[] };
  details?: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The policy's plan, checked: never an allow, a known tier, approvals {count >= 0, roles?}. */
export function isPlanResult(v: unknown): v is PlanResult {
  if (!isRecord(v) || v.allow !== false || !TIERS.includes(v.risk_tier as string)) return false;
  const a = v.approvals_required;
  if (!isRecord(a) || !Number.isSafeInteger(a.count) || (a.count as number) < 0) return false;
  return a.roles === undefined || (Array.isArray(a.roles) && a.roles.every(r => typeof r === "string"));
}

type ParsedPlan = { ok: true; body: Omit<DecideBody, "token" | "attestations"> } | { ok: false; message: string };

/** The decide body's rules (request.ts), without a token; a token or attestations are refused. */
export function parsePlanRequest(raw: string): ParsedPlan {
  const json = parseJsonObject(raw);
  if (!json.ok) return json;
  const v = json.v;
  for (const field of ["token", "attestations"])
    if (field in v)
      return {
        ok: false,
        message: `\`${field}\` is not taken by a plan (a plan verifies no token and never allows); leave it out`,
      };
  // The same validation as a decide body's: parseDecideBody wants a token, so it gets a stand-in
  // that is dropped again (nothing reads it).
  const parsed = parseDecideBody(JSON.stringify({ ...v, token: "-" }));
  if (!parsed.ok) return parsed;
  const { action, agent_id, requester, target, params, context } = parsed.body;
  return { ok: true, body: { action, agent_id, ...(requester ? { requester } : {}), target, params, context } };
}

function changeOf(params: Record<string, unknown>): string | null {
  try {
    return changeDigest(params);
  } catch {
    return null;
  }
}

async function evaluate(
  deps: DecideDeps,
  input: Record<string, unknown>,
): Promise<{ result?: PlanResult; error?: string }> {
  try {
    const r: unknown = await deps.opa.evaluate(PLAN_POLICY_PATH, input, deps.evalTimeoutMs);
    return isPlanResult(r) ? { result: r } : { error: "policy_result_malformed" };
  } catch {
    return { error: "policy_unavailable" };
  }
}

/** Handles one plan call end to end (everything but HTTP). */
export async function handlePlan(deps: DecideDeps, call: DecideCall): Promise<Reply> {
  const parsed = parsePlanRequest(call.raw);
  if (!parsed.ok)
    return { status: 400, body: { error: "bad_request", message: parsed.message, request_id: call.requestId } };
  const b = parsed.body;
  const started = performance.now();
  const change = changeOf(b.params);
  const input = {
    ...baseInput({ ...b, token: "" }, call.operatorId, null, deps.now()),
    params: b.params,
    context: b.context,
    change: { sha256: change },
  };
  delete (input as Record<string, unknown>).poa;
  const { result, error } = await evaluate(deps, input);
  const evaluateMs = Math.round((performance.now() - started) * 1000) / 1000;
  const decisionId = randomUUID();
  deps.audit.write({
    request_id: call.requestId,
    decision_id: decisionId,
    poa_jti: null,
    agent_identity: b.agent_id,
    requester_identity: b.requester?.username ?? null,
    operator_identity: call.operatorId,
    action: b.action,
    target: b.target,
    decision: result ? "deny" : "error",
    reason: result ? "plan_only" : error!,
    risk_tier: result?.risk_tier ?? null,
    policy_revision: deps.opa.revision,
    evaluate_ms: evaluateMs,
    phase: "plan",
  });
  if (!result) {
    const status = error === "policy_result_malformed" ? 500 : 503;
    return {
      status,
      body: { error, message: `no plan: ${error}`, request_id: call.requestId },
      headers: status === 503 ? { "retry-after": "1" } : {},
    };
  }
  const roles = result.approvals_required.roles;
  return {
    status: 200,
    body: {
      allowed: false,
      plan: true,
      risk_tier: result.risk_tier,
      approvals_required: { count: result.approvals_required.count, ...(roles?.length ? { roles } : {}) },
      change_sha256: change,
      reason: "plan_only",
      request_id: call.requestId,
      details: result.details ?? {},
      metadata: { evaluate_ms: evaluateMs, decision_id: decisionId, policy_revision: deps.opa.revision },
    },
  };
}
