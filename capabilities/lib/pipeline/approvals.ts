// Waiting for approval (phase AwaitingApproval). When the broker denies a task and every deny
// code is an approval code (policies/decision.rego: a missing approval for the tier, an expired
// approval, duplicate approvers), the task waits instead of ending Denied. Approvers create
// AgentTaskApproval objects (crds/agenttaskapproval.yaml) naming the task; each new one makes the
// operator ask the broker again with the task's own attestations plus those of every approval
// object for the task. The broker verifies every attestation (signature, approver key, roles,
// change digest, binding); the operator counts nothing itself.
//
// At most one decision per new approval: status.approvals.seen records `<name>@<resourceVersion>`
// of the approval objects a decision included, and the task is decided again only when an
// approval object it lists is not among them (the sweep and the timers only look). Bounded: the
// PoA's exp or the task's deadline, whichever comes first, ends the wait Denied ApprovalTimeout
// without a broker call. The AwaitingApproval step itself is in await-approval.ts.
import type { AgentTask, TaskApprovals } from "../../../crds/agenttask";
import type { Decision } from "../broker/client";
import type { Transition } from "../status/conditions";
import { decisionTransition, Reason } from "./transitions";

/**
 * The deny codes that only say approvals are missing (policies/decision.rego, priorities 71-73):
 * a task denied with these and nothing else waits for approvals.
 */
export const APPROVAL_CODES: ReadonlySet<string> = new Set([
  "medium_risk_approval_required",
  "high_risk_dual_control_required",
  "critical_risk_executive_approval_required",
  "approval_expired",
  "duplicate_approvers",
]);

/** Attestations the broker judges per request (broker/attestations.ts MAX_ATTESTATIONS). */
export const MAX_ATTESTATIONS = 16;
/** status.approvals.sentence is kept to this many characters (the CRD allows 4096). */
const MAX_SENTENCE = 2_000;

/** The approvals a decision includes: what is sent and what status.approvals.seen records. */
export interface IncludedApprovals {
  attestations: string[];
  seen: string[];
}

/** A denial whose every code is an approval code; an answer without deny codes never is (fail closed). */
export function waitsForApproval(d: Decision): boolean {
  const denies = d.details?.denies;
  return !d.allowed && !!denies && denies.length > 0 && denies.every(c => APPROVAL_CODES.has(c));
}

/** What the policy requires for a tier (policies/approvals.rego). */
export function requiredFor(tier: Decision["riskTier"]): TaskApprovals["required"] {
  switch (tier) {
    case "LOW":
      return { count: 0 };
    case "MEDIUM":
      return { count: 1 };
    case "HIGH":
      return { count: 2 };
    default:
      return { count: 2, roles: ["executive"] };
  }
}

function who(required: TaskApprovals["required"]): string {
  const n = required.count;
  const approvers = n === 1 ? "1 approver" : `${n} distinct approvers`;
  const roles = required.roles?.length ? ` with the role ${required.roles.join(", ")}` : "";
  return `${approvers}${roles} other than the agent`;
}

/** Who must approve what, in one sentence (status.approvals.sentence, the condition, the Event). */
export function approvalSentence(task: AgentTask, d: Decision, a: Omit<TaskApprovals, "sentence">): string {
  const spec = task.spec!;
  const t = spec.target;
  const what = `${spec.action} of ${t.kind} ${t.namespace}/${t.name} (task ${task.metadata?.namespace}/${task.metadata?.name})`;
  const counted = a.counted.length ? `counted so far: ${a.counted.join(", ")}` : "none counted so far";
  const ignored = a.ignored.length
    ? `; not counted: ${a.ignored.map(i => `${i.id ?? "unnamed"} (${i.why})`).join(", ")}`
    : "";
  const codes = d.details?.denies.filter(c => c === "approval_expired" || c === "duplicate_approvers") ?? [];
  const also = codes.length ? `; the broker also said: ${codes.join(", ")}` : "";
  const sentence = `${d.riskTier}: ${who(a.required)} must approve the ${what}, each with an AgentTaskApproval carrying their attestation of this change; ${counted}${ignored}${also}`;
  return sentence.length > MAX_SENTENCE ? `${sentence.slice(0, MAX_SENTENCE - 1)}…` : sentence;
}

/** status.approvals for a decision that included these approval objects. */
export function approvalsStatus(task: AgentTask, d: Decision, seen: string[]): TaskApprovals {
  const a = {
    required: requiredFor(d.riskTier),
    counted: d.details?.counted ?? [],
    ignored: d.details?.ignored ?? [],
    seen,
  };
  return { ...a, sentence: approvalSentence(task, d, a) };
}

/** Still waiting: AwaitingApproval with Authorized=False ApprovalRequired and what is needed. */
export function awaitingApproval(task: AgentTask, d: Decision, seen: string[]): Transition {
  const approvals = approvalsStatus(task, d, seen);
  const message = `waiting for approval: ${approvals.sentence}`;
  return {
    ...decisionTransition(d),
    phase: "AwaitingApproval",
    reason: Reason.ApprovalRequired,
    message,
    approvals,
    conditions: [{ type: "Authorized", status: "False", reason: Reason.ApprovalRequired, message }],
  };
}

/** The wait is over without enough approvals: the PoA expired or the task's deadline passed. */
export function approvalTimeout(why: string): Transition {
  const message = `no decision with enough approvals before ${why}`;
  return {
    phase: "Denied",
    reason: Reason.ApprovalTimeout,
    message,
    conditions: [
      { type: "Authorized", status: "False", reason: Reason.ApprovalTimeout, message },
      { type: "Succeeded", status: "False", reason: Reason.ApprovalTimeout, message },
    ],
  };
}

/**
 * The transition a decision leads to. Only approval codes: AwaitingApproval. Otherwise as
 * decisionTransition, with status.approvals updated when the decision included approval objects
 * or the task was waiting (what was counted stays visible after it moved on).
 */
export function afterDecision(task: AgentTask, d: Decision, included?: IncludedApprovals): Transition {
  const seen = included?.seen ?? [];
  if (waitsForApproval(d)) return awaitingApproval(task, d, seen);
  const t = decisionTransition(d);
  if (!included && !task.status?.approvals) return t;
  return { ...t, approvals: approvalsStatus(task, d, seen) };
}
