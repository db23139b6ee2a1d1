// A Plan task (spec.mode Plan): Processing → Planned | Failed, never Executing. The task is
// planned like any other, but it is shown, not applied:
//   1. the requester (recorded at admission; authorize() denies a task without one) may `get` the
//      target: a SubjectAccessReview, asked BEFORE anything about the target is read, so a
//      refusal (Failed PlanNotAllowed) says nothing about it;
//   2. the executor check, the read, the action's plan and the server-side dry run, as for Apply;
//   3. the broker's plan call (no token: a Plan task's spec.poaToken is never sent): the tier and
//      the approvals the policy would need;
//   4. Planned with status.plan: the change digest a PoA must carry (con.change_sha256), the
//      tier, the approvals and a unified YAML diff of before/after (Secret values redacted).
// Nothing is written to the target, ever: the only request with a body is the dry run.
import type { AgentTask, TaskPlan } from "../../../crds/agenttask";
import { brokerAction, isUnchanged, type KubeObject, type Planned as ActionPlan } from "../action";
import { getTarget } from "../action/target";
import type { PlanAnswer } from "../broker/client";
import { changeDigest } from "../change-digest";
import type { Requester } from "../requester";
import type { Transition } from "../status/conditions";
import { objectView } from "./object-view";
import { asBrokerError } from "./outcome";
import { planDiff } from "./plan-diff";
import type { StepResult, StepScope } from "./scope";
import { failed, Reason } from "./transitions";

/** The sentence status.plan.approvalsRequired carries (also in the Planned message). */
export function approvalsSentence(a: PlanAnswer["approvalsRequired"], tier: string): string {
  if (a.count === 0) return `no approval is needed for a ${tier} change`;
  const who = a.count === 1 ? "1 approval" : `${a.count} approvals from distinct approvers`;
  const roles = a.roles?.length ? `, each approver with the role ${a.roles.join(" and ")}` : "";
  return `${who} other than the agent${roles} (${tier})`;
}

/** The terminal transition of a Plan task that was planned. */
export function planned(plan: TaskPlan, answer: PlanAnswer): Transition {
  const change = plan.diff ? "the diff is in status.plan.diff" : "the target would not change";
  const message = `Planned, nothing applied: a PoA for this change must carry con.change_sha256 ${plan.changeSha256}; ${plan.approvalsRequired.sentence}; ${change}`;
  return {
    phase: "Planned",
    reason: Reason.Planned,
    message,
    plan,
    atbResult: {
      allowed: false,
      riskTier: plan.riskTier,
      reason: answer.reason || "plan_only",
      requestId: answer.requestId,
    },
    conditions: [
      {
        type: "Authorized",
        status: "False",
        reason: Reason.Planned,
        message: "a Plan task is never authorized to change anything; it shows what a PoA must carry",
      },
      { type: "Succeeded", status: "True", reason: Reason.Planned, message },
    ],
  };
}

/** Failed PlanNotAllowed: the requester may not get the target, so no plan of it is shown. */
export function planNotAllowed(task: AgentTask, requester: Requester): Transition {
  const t = task.spec!.target;
  const message =
    `${requester.username} (the task's creator) may not get ${t.kind} ${t.namespace}/${t.name} ` +
    `(SubjectAccessReview), and a plan shows the target: nothing was read; ask for get on it, or plan as someone who may read it`;
  return failed(task, Reason.PlanNotAllowed, message);
}

/** Who asks what about which target (authorize.ts verifyRequest's fields, without the token). */
function planQuestion(task: AgentTask, requester: Requester) {
  const spec = task.spec!;
  const m = task.metadata!;
  const reason = typeof spec.payload?.reason === "string" ? { reason: spec.payload.reason } : {};
  return {
    action: brokerAction(spec),
    agentId: spec.agentId,
    requester,
    target: spec.target,
    context: { task: { uid: m.uid, name: m.name, namespace: m.namespace, ...reason } },
  };
}

/** The broker's time window for a plan: the task's deadline (there is no PoA). */
function deadlineOf(s: StepScope): Date {
  const created = Date.parse(String(s.task.metadata!.creationTimestamp));
  return new Date(created + s.config.taskDeadlineMs);
}

/** What the action would do, and the object the server-side dry run says would be stored. */
async function dryRun(
  s: StepScope,
): Promise<{ plan: ActionPlan; before: KubeObject | undefined; after: KubeObject | undefined }> {
  await s.executor.require(s.task.metadata!.namespace!);
  const before = await getTarget(s.ctx);
  const plan = await s.module.plan(s.ctx, before);
  const after = isUnchanged(plan) ? before : await s.ctx.kube.request<KubeObject>(plan.write, true);
  return { plan, before, after };
}

export async function planTask(s: StepScope, requester: Requester): Promise<StepResult> {
  const target = s.ctx.spec.target;
  // 1. May the requester see the target? Asked before anything about it is read.
  try {
    const access = await s.access.mayGet(requester, target);
    if (!access.allowed) return { transition: planNotAllowed(s.task, requester) };
  } catch (err) {
    return { error: err, stage: "authorize" };
  }
  // 2. Read, plan and dry run as the executor.
  let found: Awaited<ReturnType<typeof dryRun>>;
  let changeSha256: string;
  try {
    found = await dryRun(s);
    changeSha256 = changeDigest(found.plan.params);
  } catch (err) {
    return { error: err, stage: "authorize" };
  }
  const { plan, before, after } = found;
  const kind = target.kind;
  // 3. What the policy would ask of this change (no token).
  const m = s.task.metadata!;
  const deadline = deadlineOf(s);
  // The preflight's question without a token: a Plan task's token is never sent anywhere.
  const question = planQuestion(s.task, requester);
  const end = s.metrics.brokerSeconds.startTimer();
  let answer: PlanAnswer;
  try {
    answer = await s.broker.plan(
      {
        ...question,
        params: plan.params,
        context: {
          ...plan.context,
          before: objectView(before, kind),
          after: objectView(after, kind),
          ...question.context,
        },
      },
      { deadline, requestIdBase: `${m.uid}.${s.task.status?.attempts ?? 0}.plan` },
    );
    end({ outcome: "plan" });
  } catch (err) {
    end({ outcome: "error" });
    s.metrics.brokerErrors.inc({ code: asBrokerError(err).code });
    return { error: err, stage: "decide", window: { deadline, now: s.clock() } };
  }
  // 4. Planned, with the diff of what would change.
  const diff = planDiff(before, after, kind);
  const approvalsRequired = {
    count: answer.approvalsRequired.count,
    ...(answer.approvalsRequired.roles ? { roles: answer.approvalsRequired.roles } : {}),
    sentence: approvalsSentence(answer.approvalsRequired, answer.riskTier),
  };
  const taskPlan: TaskPlan = {
    changeSha256,
    riskTier: answer.riskTier,
    approvalsRequired,
    diff: diff.diff,
    diffTruncated: diff.truncated,
  };
  return { transition: planned(taskPlan, answer) };
}
