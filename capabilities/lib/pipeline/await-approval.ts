// The AwaitingApproval step (see approvals.ts for the rules): past the PoA's exp or the task's
// deadline the wait ends Denied ApprovalTimeout without a broker call; otherwise the task's
// AgentTaskApprovals are listed with the operator's own identity, and the task is authorized again
// (authorize.ts, with their attestations) only when one of them is not in status.approvals.seen.
// A waiting task does not hold its target: it takes it again (after any task holding it) only to
// be decided once more; a changed target is then judged afresh, and a change that no longer
// matches the token's and the approvers' digest is denied change_mismatch.
import type { AgentTask } from "../../../crds/agenttask";
import type { AgentTaskApproval } from "../../../crds/agenttaskapproval";
import { poaExpiry } from "../broker/client";
import type { KubeApi } from "../kube";
import { resourcePath } from "../kube";
import { approvalTimeout, MAX_ATTESTATIONS, type IncludedApprovals } from "./approvals";
import { authorize } from "./authorize";
import type { StepResult, StepScope } from "./scope";
import { DEADLINE_SLACK_MS, LOCK_RECHECK_MS } from "./timing";

/** Approval objects read per page while listing a namespace's approvals. */
const LIST_PAGE = 500;

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
export async function awaitApproval(s: StepScope, kube: KubeApi, takeTarget: () => boolean): Promise<StepResult> {
  const ends = waitEnds(s.task, s.config.taskDeadlineMs);
  if (s.now.getTime() >= ends.at) return { transition: approvalTimeout(ends.why) };
  let included: IncludedApprovals;
  try {
    included = await approvalsFor(kube, s.task);
  } catch (err) {
    return { error: err, stage: "reconcile" };
  }
  const seen = new Set(s.task.status?.approvals?.seen ?? []);
  if (included.seen.some(id => !seen.has(id))) {
    // Decided again only while holding the target, like any authorization; else queued for it
    // (the holder's release wakes this task).
    if (!takeTarget())
      return { requeueAfterMs: Math.min(LOCK_RECHECK_MS, ends.at - s.now.getTime() + DEADLINE_SLACK_MS) };
    return authorize({ ...s, approvals: included });
  }
  return { requeueAfterMs: Math.min(LOCK_RECHECK_MS, ends.at - s.now.getTime() + DEADLINE_SLACK_MS) };
}
