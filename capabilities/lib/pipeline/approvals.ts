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
// without a broker call.
import type { AgentTask } from "../../../crds/agenttask";
import type { AgentTaskApproval, TaskApprovals } from "../../../crds/agenttaskapproval";
import { poaExpiry, type Decision } from "../broker/client";
import type { KubeApi } from "../kube";
import { resourcePath } from "../kube";
import type { Transition } from "../status/conditions";
import { authorize } from "./authorize";
import type { StepResult, StepScope } from "./scope";
import { DEADLINE_SLACK_MS, LOCK_RECHECK_MS } from "./timing";
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
/** Approval objects read per page while listing a namespace's approvals. */
const LIST_PAGE = 500;

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

interface ApprovalList {
  items?: AgentTaskApproval[];
  metadata?: { continue?: string };
}

const approvalId = (a: AgentTaskApproval): string => `${a.metadata?.name}@${a.metadata?.resourceVersion}`;

/** Every approval object in the task's namespace that names the task, listed in pages. */
async function listFor(kube: KubeApi, task: AgentTask): Promise<AgentTaskApproval[]> {
  const m = task.metadata!;
  const mine: AgentTaskApproval[] = [];
  let cont: string | undefined;
  do {
    const page: ApprovalList = await kube.request<ApprovalList>({
      method: "GET",
      path: resourcePath("AgentTaskApproval", m.namespace),
      query: { limit: String(LIST_PAGE), ...(cont ? { continue: cont } : {}) },
    });
    mine.push(...(page.items ?? []).filter(a => namesTask(a, m.name)));
    cont = page.metadata?.continue || undefined;
  } while (cont);
  return mine;
}

const namesTask = (a: AgentTaskApproval, name: string | undefined): boolean =>
  a.spec?.taskRef?.name === name && typeof a.spec?.attestation === "string";

const byAge = (a: AgentTaskApproval, b: AgentTaskApproval): number =>
  String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)) ||
  String(a.metadata?.name).localeCompare(String(b.metadata?.name));

/**
 * The approval objects for this task, listed with the operator's own identity: those in the
 * task's namespace whose spec.taskRef.name is the task's name (any other is ignored), oldest
 * first, as many as the broker judges next to the task's own attestations.
 */
export async function approvalsFor(kube: KubeApi, task: AgentTask): Promise<IncludedApprovals> {
  const room = Math.max(0, MAX_ATTESTATIONS - (task.spec?.attestations?.length ?? 0));
  const chosen = (await listFor(kube, task)).sort(byAge).slice(0, room);
  return { attestations: chosen.map(a => a.spec!.attestation), seen: chosen.map(approvalId).sort() };
}

/** When the wait ends: the PoA's exp or the task's deadline, whichever is first, and why. */
export function waitEnds(task: AgentTask, deadlineMs: number): { at: number; why: string } {
  const created = Date.parse(String(task.metadata?.creationTimestamp));
  const deadline = { at: created + deadlineMs, why: `the task's deadline (${deadlineMs / 1000}s after creation)` };
  let exp: number;
  try {
    exp = poaExpiry(String(task.spec?.poaToken)).getTime();
  } catch {
    return deadline;
  }
  return exp < deadline.at ? { at: exp, why: `the PoA expired at ${new Date(exp).toISOString()}` } : deadline;
}

/**
 * The AwaitingApproval step: past the PoA's exp or the deadline, Denied ApprovalTimeout (no
 * broker call). Otherwise the task's approval objects are listed; when one is not in
 * status.approvals.seen the task is authorized again with their attestations, else it waits.
 */
export async function awaitApproval(s: StepScope, kube: KubeApi): Promise<StepResult> {
  const ends = waitEnds(s.task, s.config.taskDeadlineMs);
  if (s.now.getTime() >= ends.at) return { transition: approvalTimeout(ends.why) };
  let included: IncludedApprovals;
  try {
    included = await approvalsFor(kube, s.task);
  } catch (err) {
    return { error: err, stage: "reconcile" };
  }
  const seen = new Set(s.task.status?.approvals?.seen ?? []);
  if (included.seen.some(id => !seen.has(id))) return authorize({ ...s, approvals: included });
  return { requeueAfterMs: Math.min(LOCK_RECHECK_MS, ends.at - s.now.getTime() + DEADLINE_SLACK_MS) };
}
