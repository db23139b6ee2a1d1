// The plan call of the broker client (POST /api/v1/plan): what the policy would ask of a change
// (its risk tier and the approvals it needs) without a token. A plan never allows anything: an
// answer that says `allowed: true`, or is not marked `plan: true`, is malformed (fail closed), and
// nothing in it can move a task to Executing. The body is the decide body without token and
// attestations; a Plan task's spec.poaToken, if it has one, is never sent.
import { AtbError } from "../errors";
import type { Requester } from "../requester";
import { interpretWith, normaliseTier, type RawAnswer, type RiskTier } from "./response";

export const PLAN_PATH = "/api/v1/plan";

/** What a plan call asks: the decide request (client.ts DecideRequest) without token and attestations. */
export interface PlanRequest {
  /** k8s.<Kind>.<action>. */
  action: string;
  /** spec.agentId. */
  agentId: string;
  /** The Kubernetes identity that created the task, as recorded at admission. */
  requester: Requester;
  target: { kind: string; name: string; namespace: string };
  /** The canonical change. */
  params: Record<string, unknown>;
  /** What the operator observed (task, current, before, after). */
  context: Record<string, unknown>;
}

/** The approvals the policy would need for the change. */
export interface ApprovalsRequired {
  count: number;
  /** Roles each counted approver must hold (e.g. executive for CRITICAL); absent: any approver. */
  roles?: string[];
}

/** The broker's answer to a plan call. */
export interface PlanAnswer {
  riskTier: RiskTier;
  approvalsRequired: ApprovalsRequired;
  /** The digest the broker computed from the params (sha256:<hex>), when it sent one. */
  changeSha256?: string;
  reason: string;
  requestId: string;
}

const MAX_ROLES = 16;
const MAX_ROLE_CHARS = 256;
const MAX_APPROVALS = 1_000;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function malformed(why: string): AtbError {
  return new AtbError("BROKER_MALFORMED", `broker answered 200 with a malformed plan: ${why}`);
}

function approvalsOf(v: unknown): ApprovalsRequired | undefined {
  if (!isRecord(v)) return undefined;
  const count = v.count;
  if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0 || count > MAX_APPROVALS) return undefined;
  if (v.roles === undefined || v.roles === null) return { count };
  const roles = v.roles;
  if (
    !Array.isArray(roles) ||
    roles.length > MAX_ROLES ||
    !roles.every(r => typeof r === "string" && r.length > 0 && r.length <= MAX_ROLE_CHARS)
  )
    return undefined;
  return roles.length ? { count, roles: [...(roles as string[])] } : { count };
}

/**
 * Parses the body of a 200 answer to a plan call. Fail closed: `plan` must be true and `allowed`
 * false, the tier one of the four, approvals_required {count >= 0, roles?: strings}.
 */
export function parsePlanBody(text: string, fallbackRequestId: string): PlanAnswer | AtbError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return malformed("body is not JSON");
  }
  if (!isRecord(body)) return malformed("body is not a JSON object");
  if (body.plan !== true) return malformed("`plan` is not true (not an answer to a plan call)");
  if (body.allowed !== false) return malformed("`allowed` must be false (a plan never allows)");
  const riskTier = normaliseTier(body.risk_tier);
  if (!riskTier) return malformed("`risk_tier` is missing or not one of LOW, MEDIUM, HIGH, CRITICAL");
  const approvalsRequired = approvalsOf(body.approvals_required);
  if (!approvalsRequired)
    return malformed("`approvals_required` must be {count: a non-negative integer, roles?: [strings]}");
  const answer: PlanAnswer = {
    riskTier,
    approvalsRequired,
    reason: typeof body.reason === "string" ? body.reason.slice(0, 256) : "",
    requestId:
      typeof body.request_id === "string" && body.request_id ? body.request_id.slice(0, 256) : fallbackRequestId,
  };
  if (typeof body.change_sha256 === "string" && /^sha256:[0-9a-f]{64}$/.test(body.change_sha256))
    answer.changeSha256 = body.change_sha256;
  return answer;
}

/** The JSON body of a plan call: no token, no attestations. */
export function planBody(request: PlanRequest): string {
  return JSON.stringify({
    action: request.action,
    agent_id: request.agentId,
    requester: request.requester,
    target: request.target,
    params: request.params,
    context: request.context,
  });
}

export type PlanAttempt = { ok: true; decision: PlanAnswer } | { ok: false; error: AtbError; retryAfterMs?: number };

/** One HTTP answer to a plan attempt: the same status mapping as a decision's. */
export const interpretPlanResponse: (answer: RawAnswer, requestId: string, nowMs: number) => PlanAttempt =
  interpretWith(parsePlanBody);
