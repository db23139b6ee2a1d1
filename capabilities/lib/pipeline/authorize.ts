// Processing → Executing | Denied: the checks admission already made (a task may predate the
// webhook), the token's lifetime, the plan and its server-side dry run, then the broker's decision.
import { ANNOTATION_REQUESTER, type AgentTask, type TaskPlan } from "../../../crds/agenttask";
import { brokerAction, isUnchanged, type KubeObject, type Planned } from "../action";
import { getTarget } from "../action/target";
import { poaExpiry, type DecideRequest, type VerifyRequest } from "../broker/client";
import { changeDigest } from "../change-digest";
import { messageOf } from "../errors";
import { parseRequester, type Requester } from "../requester";
import { targetRefusal } from "../scope";
import type { Transition } from "../status/conditions";
import { afterDecision } from "./approvals";
import { objectView } from "./object-view";
import { asBrokerError } from "./outcome";
import type { StepResult, StepScope } from "./scope";
import { approvalsSentence, planTask } from "./plan";
import { planDiff } from "./plan-diff";
import { decisionTransition, failed, Reason, requesterNotRecorded } from "./transitions";

/** Checks the pipeline repeats from admission (defence in depth). */
function precheck(s: StepScope): string[] {
  const { spec } = s.ctx;
  const errors = s.module.validate(spec, s.config);
  if (!s.module.kinds.includes(spec.target.kind))
    errors.push(`spec.target.kind: ${spec.target.kind} is not supported by action ${spec.action}`);
  if (spec.target.namespace !== s.task.metadata?.namespace && !s.config.allowCrossNamespace) {
    errors.push(
      `spec.target.namespace: must equal the task's namespace ${s.task.metadata?.namespace} (cross-namespace targets are disabled)`,
    );
  }
  // The operator's own refusal, whatever the policy's data says (a task in a protected namespace
  // never gets here: it is OutOfScope).
  const refusal = targetRefusal(spec.target.namespace, s.config);
  if (refusal) errors.push(refusal);
  return errors;
}

export async function authorize(s: StepScope): Promise<StepResult> {
  const errors = precheck(s);
  if (errors.length) return { transition: failed(s.task, Reason.InvalidTask, errors.join("; ")) };
  // Who created the task is part of every question to the broker (may they act as spec.agentId?);
  // a task the webhook recorded no creator for is denied here, without a broker call (fail closed).
  const requester = parseRequester(s.task.metadata?.annotations?.[ANNOTATION_REQUESTER]);
  if (!requester) return { transition: requesterNotRecorded() };
  // A Plan task is shown, never applied: its own flow (plan.ts), without a token.
  if (s.ctx.spec.mode === "Plan") return planTask(s, requester);
  let exp: Date;
  try {
    exp = poaExpiry(s.ctx.spec.poaToken);
  } catch (err) {
    return { transition: failed(s.task, Reason.InvalidToken, messageOf(err)) };
  }
  if (exp <= s.now) {
    const message = `the PoA token expired at ${exp.toISOString()}, before the broker decided`;
    return { transition: failed(s.task, Reason.PoAExpired, message) };
  }
  // Nothing about the target is read before the broker has checked the token (signature,
  // lifetime, sub, act, target binding, jti): a task whose token fails gets the same answer
  // whatever the target holds, so task creation is no read oracle (a JSON Patch `test` op, a
  // missing target, a dry-run error would otherwise tell a caller with no valid PoA about it).
  const pre = await preflight(s, exp, requester);
  if (pre) return pre;
  let plan: Planned;
  let seen: { before: KubeObject | undefined; after: KubeObject | undefined };
  try {
    // The executor is what reads the target: a namespace without one is refused before any read.
    await s.executor.require(s.task.metadata!.namespace!);
    const target = await getTarget(s.ctx);
    plan = await s.module.plan(s.ctx, target);
    // Nothing to write (a rollback to the running revision) has nothing to dry-run either.
    const after = isUnchanged(plan) ? target : await s.ctx.kube.request<KubeObject>(plan.write, true);
    // The policy judges the object as the API server would store it, next to what is there now.
    const kind = s.ctx.spec.target.kind;
    plan = { ...plan, context: { ...plan.context, before: objectView(target, kind), after: objectView(after, kind) } };
    seen = { before: target, after };
  } catch (err) {
    return { error: err, stage: "authorize" };
  }
  const result = await decide(s, plan, exp, requester);
  // The write that follows in this pass starts from the copy the plan was made on (execute.ts).
  if ("judged" in result && result.judged) result.judgedFrom = seen.before ?? null;
  // A task that waits for approvals shows the approvers the change they are asked to approve: the
  // digest their attestations must bind and the diff of the dry run the broker judged.
  if ("transition" in result && result.transition.phase === "AwaitingApproval")
    result.transition.plan = changeView(plan, seen, s.ctx.spec.target.kind, result.transition);
  return result;
}

/** status.plan of an Apply task waiting for approvals (the same fields as a Plan task's). */
function changeView(
  plan: Planned,
  seen: { before: KubeObject | undefined; after: KubeObject | undefined },
  kind: string,
  t: Transition,
): TaskPlan {
  const diff = planDiff(seen.before, seen.after, kind);
  const required = t.approvals?.required ?? { count: 0 };
  const tier = (t.atbResult?.riskTier ?? "HIGH") as TaskPlan["riskTier"];
  return {
    changeSha256: changeDigest(plan.params),
    riskTier: tier,
    approvalsRequired: {
      count: required.count,
      ...(required.roles ? { roles: required.roles } : {}),
      sentence: approvalsSentence(
        { count: required.count, ...(required.roles ? { roles: required.roles } : {}) },
        tier,
      ),
    },
    diff: diff.diff,
    diffTruncated: diff.truncated,
  };
}

/** The broker's time window for a task: until the PoA's exp or the task's deadline. */
function deadlineOf(s: StepScope, exp: Date): Date {
  const created = Date.parse(String(s.task.metadata!.creationTimestamp));
  return new Date(Math.min(exp.getTime(), created + s.config.taskDeadlineMs));
}

/** The token check; undefined when the token is good for this action on this target. */
async function preflight(s: StepScope, exp: Date, requester: Requester): Promise<StepResult | undefined> {
  const m = s.task.metadata!;
  const deadline = deadlineOf(s, exp);
  const request = verifyRequest(s.task, requester);
  const end = s.metrics.brokerSeconds.startTimer();
  try {
    const answer = await s.broker.verify(request, {
      deadline,
      requestIdBase: `${m.uid}.${s.task.status?.attempts ?? 0}.pre`,
    });
    end({ outcome: answer.allowed ? "allow" : "deny" });
    return answer.allowed ? undefined : { transition: decisionTransition(answer) };
  } catch (err) {
    end({ outcome: "error" });
    s.metrics.brokerErrors.inc({ code: asBrokerError(err).code });
    return { error: err, stage: "decide", window: { deadline, now: s.clock() } };
  }
}

async function decide(s: StepScope, plan: Planned, exp: Date, requester: Requester): Promise<StepResult> {
  const m = s.task.metadata!;
  const deadline = deadlineOf(s, exp);
  const end = s.metrics.brokerSeconds.startTimer();
  try {
    const decision = await s.broker.decide(decideRequest(s.task, plan, requester, s.approvals?.attestations), {
      deadline,
      requestIdBase: `${m.uid}.${s.task.status?.attempts ?? 0}${s.approvals ? `.ap${s.approvals.seen.length}` : ""}`,
    });
    end({ outcome: decision.allowed ? "allow" : "deny" });
    // Only approval codes: the task waits for approvals (approvals.ts) instead of ending Denied.
    return { transition: afterDecision(s.task, decision, s.approvals), judged: decision.allowed ? plan : undefined };
  } catch (err) {
    end({ outcome: "error" });
    s.metrics.brokerErrors.inc({ code: asBrokerError(err).code });
    return { error: err, stage: "decide", window: { deadline, now: s.clock() } };
  }
}

/**
 * What the broker is asked for a task: its spec, the planned change and what was observed; a
 * waiting task's approval objects add their attestations to the task's own.
 */
export function decideRequest(task: AgentTask, plan: Planned, requester: Requester, more?: string[]): DecideRequest {
  const base = verifyRequest(task, requester);
  const own = task.spec?.attestations;
  const attestations = [...(Array.isArray(own) ? own : []), ...(more ?? [])];
  return {
    ...base,
    params: plan.params,
    context: { ...plan.context, ...base.context },
    ...(attestations.length ? { attestations } : {}),
  };
}

/**
 * The preflight's question: the token, the agent it is presented for, the Kubernetes identity
 * that created the task (recorded at admission), for which action on which target.
 */
export function verifyRequest(task: AgentTask, requester: Requester): VerifyRequest {
  const spec = task.spec!;
  const m = task.metadata!;
  // The agent's free-text reason is context for the approvers and the audit, never a param: the
  // reference policy does not read it, and a re-plan compares params only.
  const reason = typeof spec.payload?.reason === "string" ? { reason: spec.payload.reason } : {};
  return {
    action: brokerAction(spec),
    token: spec.poaToken,
    agentId: spec.agentId,
    requester,
    target: spec.target,
    context: { task: { uid: m.uid, name: m.name, namespace: m.namespace, ...reason } },
  };
}
