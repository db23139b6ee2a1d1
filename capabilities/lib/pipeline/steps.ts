// The three working steps of the pipeline: authorize (Processing → Executing | Denied), execute
// (the one write, guarded by the at-most-once marker) and verify (rollout → Completed | Failed).
// Each returns the pipeline's next Step; only the pipeline writes status.
import { isDeepStrictEqual } from "node:util";
import type { AgentTask } from "../../../crds/agenttask";
import type { ActionModule, KubeObject, Plan, TaskContext } from "../action";
import { brokerAction } from "../action";
import { poaExpiry, type Decision, type DecideRequest } from "../broker/client";
import { AtbError, messageOf } from "../errors";
import { KubeError, resourcePath } from "../kube";
import { appliedTasks, isApplied } from "../action/marker";
import type { Pipeline, Step } from ".";
import { conditionOf, type Transition } from "../status/conditions";

function getTarget(ctx: TaskContext): Promise<KubeObject | undefined> {
  const t = ctx.spec.target;
  return ctx.kube.get<KubeObject>(resourcePath(t.kind, t.namespace, t.name));
}

/** Turns an error from plan/dry-run/write into a transition: retry, or Failed with its reason. */
function settle(p: Pipeline, task: AgentTask, err: unknown, what: string): Promise<Step> {
  if (err instanceof AtbError && err.retryable) return p.retry(task, err);
  if (err instanceof KubeError) {
    const reason = err.status === 404 ? "TargetNotFound" : what;
    return p.fail(
      task,
      reason,
      `${what === "DryRunRejected" ? "the API server would reject this change" : "the API server rejected the change"}: ${err.message}`,
    );
  }
  if (err instanceof AtbError) return p.fail(task, err.reason, err.message);
  return p.fail(task, "InternalError", `operator error: ${messageOf(err)}`);
}

/** Checks the pipeline repeats from admission (defence in depth: a task may predate the webhook). */
function precheck(p: Pipeline, task: AgentTask, module: ActionModule, ctx: TaskContext): string[] {
  const errors = module.validate(ctx.spec, p.deps.config);
  if (!module.kinds.includes(ctx.spec.target.kind))
    errors.push(`spec.target.kind: ${ctx.spec.target.kind} is not supported by action ${ctx.spec.action}`);
  if (ctx.spec.target.namespace !== task.metadata?.namespace && !p.deps.config.allowCrossNamespace) {
    errors.push(
      `spec.target.namespace: must equal the task's namespace ${task.metadata?.namespace} (cross-namespace targets are disabled)`,
    );
  }
  return errors;
}

export async function authorize(p: Pipeline, task: AgentTask, module: ActionModule, ctx: TaskContext): Promise<Step> {
  const errors = precheck(p, task, module, ctx);
  if (errors.length) return p.fail(task, "InvalidTask", errors.join("; "));
  let exp: Date;
  try {
    exp = poaExpiry(ctx.spec.poaToken);
  } catch (err) {
    return p.fail(task, "InvalidToken", messageOf(err));
  }
  const now = p.now();
  if (exp <= now)
    return p.fail(task, "PoAExpired", `the PoA token expired at ${exp.toISOString()}, before the broker decided`);
  let plan: Plan;
  try {
    plan = await module.plan(ctx, await getTarget(ctx));
    await ctx.kube.request(plan.write, true);
  } catch (err) {
    return settle(p, task, err, "DryRunRejected");
  }
  return decide(p, task, plan, exp);
}

/**
 * The broker client gives up on one decision after its own attempts (BROKER_DEADLINE, with the
 * last error as cause). The task tries again later while that cause was transient and the PoA
 * and the task deadline still leave time; a refusal (4xx, malformed answer) is final.
 */
function worthRetrying(e: AtbError, deadline: Date, now: Date): boolean {
  if (deadline.getTime() <= now.getTime()) return false;
  if (e.retryable) return true;
  const cause = (e as { cause?: unknown }).cause;
  return e.kind === "BROKER_DEADLINE" && cause instanceof AtbError && cause.retryable;
}

async function decide(p: Pipeline, task: AgentTask, plan: Plan, exp: Date): Promise<Step> {
  const created = Date.parse(String(task.metadata!.creationTimestamp));
  const deadline = new Date(Math.min(exp.getTime(), created + p.deps.config.taskDeadlineMs));
  const m = task.metadata!;
  const end = p.deps.metrics.brokerSeconds.startTimer();
  let decision;
  try {
    decision = await p.deps.broker.decide(decideRequest(task, plan), {
      deadline,
      requestIdBase: `${m.uid}.${task.status?.attempts ?? 0}`,
    });
    end({ outcome: decision.allowed ? "allow" : "deny" });
  } catch (err) {
    end({ outcome: "error" });
    const e = err instanceof AtbError ? err : new AtbError("BROKER_UNAVAILABLE", messageOf(err));
    p.deps.metrics.brokerErrors.inc({ code: e.code });
    return worthRetrying(e, deadline, p.now()) ? p.retry(task, e) : p.fail(task, e.reason, e.message);
  }
  if (decision.allowed) p.authorizedHere.set(m.uid!, plan);
  return p.to(task, decisionTransition(decision));
}

/** What the broker is asked for a task: its spec, the planned change and what was observed. */
export function decideRequest(task: AgentTask, plan: Plan): DecideRequest {
  const spec = task.spec!;
  const m = task.metadata!;
  return {
    action: brokerAction(spec),
    token: spec.poaToken,
    agentId: spec.agentId,
    target: spec.target,
    params: plan.params,
    context: { ...plan.context, task: { uid: m.uid, name: m.name, namespace: m.namespace } },
  };
}

/** The transition a decision leads to: Denied, or Executing with the Authorized condition. */
export function decisionTransition(decision: Decision): Transition {
  const atbResult = {
    allowed: decision.allowed,
    riskTier: decision.riskTier,
    reason: decision.reason,
    requestId: decision.requestId,
    evaluateMs: decision.evaluateMs,
    ...(decision.decisionId ? { decisionId: decision.decisionId } : {}),
    ...(decision.policyRevision ? { policyRevision: decision.policyRevision } : {}),
  };
  if (!decision.allowed) {
    const message = `ATB denied the action: ${decision.reason}`;
    return {
      phase: "Denied",
      reason: "PolicyDenied",
      message,
      atbResult,
      conditions: [
        { type: "Authorized", status: "False", reason: "PolicyDenied", message },
        { type: "Succeeded", status: "False", reason: "PolicyDenied", message },
      ],
    };
  }
  return {
    phase: "Executing",
    reason: "Authorized",
    message: `ATB allowed the action (${decision.riskTier}); applying it`,
    atbResult,
    attempts: 0,
    conditions: [{ type: "Authorized", status: "True", reason: "Authorized", message: decision.reason || "allowed" }],
  };
}

/**
 * Writes the plan the broker judged, as it was judged. Only on a 409 (the target changed since)
 * and only for actions that allow it is the change planned again; if the new plan's params
 * differ from the judged ones, the task is authorized again instead of written.
 */
export async function execute(p: Pipeline, task: AgentTask, module: ActionModule, ctx: TaskContext): Promise<Step> {
  let plan = p.authorizedHere.get(ctx.uid);
  for (let attempt = 0; attempt < 4; attempt++) {
    let target: KubeObject | undefined;
    try {
      target = await getTarget(ctx);
    } catch (err) {
      return settle(p, task, err, "ExecutionFailed");
    }
    if (isApplied(target, ctx.uid))
      return applied(p, task, "the change was already applied (marker found on the target)");
    if (!plan)
      return reauthorize(p, task, ctx, "the operator restarted after authorization and before applying the change");
    if (attempt > 0) {
      const next = await replan(p, task, module, ctx, { judged: plan, target });
      if ("step" in next) return next.step;
      plan = next.plan;
    }
    const step = await write(p, task, ctx, plan);
    if (step) return step;
  }
  return p.retry(task, new AtbError("KUBE_TRANSIENT", "the target kept changing while the change was being applied"));
}

/** After a conflict: the same change planned on the new state, or re-authorization if it differs. */
async function replan(
  p: Pipeline,
  task: AgentTask,
  module: ActionModule,
  ctx: TaskContext,
  o: { judged: Plan; target: KubeObject | undefined },
): Promise<{ plan: Plan } | { step: Promise<Step> }> {
  try {
    const again = await module.plan(ctx, o.target);
    if (isDeepStrictEqual(again.params, o.judged.params)) return { plan: again };
    p.authorizedHere.delete(ctx.uid);
    return {
      step: reauthorize(
        p,
        task,
        ctx,
        "the target changed after the decision and the change would now differ from what was authorized",
      ),
    };
  } catch (err) {
    return { step: settle(p, task, err, "ExecutionFailed") };
  }
}

/** The one write. Undefined = the target changed and the change may be planned again. */
async function write(p: Pipeline, task: AgentTask, ctx: TaskContext, plan: Plan): Promise<Step | undefined> {
  try {
    await ctx.kube.request(plan.write);
    p.authorizedHere.delete(ctx.uid);
    return applied(p, task, "change applied; waiting for it to take effect");
  } catch (err) {
    const stale = err instanceof KubeError && (err.status === 409 || (err.status === 422 && !plan.retryOnConflict));
    if (!stale) return settle(p, task, err, "ExecutionFailed");
    if (plan.retryOnConflict) return undefined;
    p.authorizedHere.delete(ctx.uid);
    return p.fail(
      task,
      "TargetChanged",
      `the target changed after the broker's decision, so the change was not applied: ${(err as Error).message}`,
    );
  }
}

function applied(p: Pipeline, task: AgentTask, message: string): Promise<Step> {
  return p.to(task, {
    phase: "Executing",
    reason: "Applied",
    message,
    conditions: [{ type: "Executed", status: "True", reason: "Applied", message }],
  });
}

/** Executing without the marker and without a judged plan in hand: the change was never applied. */
function reauthorize(p: Pipeline, task: AgentTask, ctx: TaskContext, why: string): Promise<Step> {
  let exp: Date | undefined;
  try {
    exp = poaExpiry(ctx.spec.poaToken);
  } catch {
    exp = undefined;
  }
  if (!exp || exp <= p.now()) {
    return p.fail(task, "PoAExpired", `${why}, and the PoA token has expired since, so the change was not applied`);
  }
  return p.to(task, {
    phase: "Processing",
    reason: "Reauthorizing",
    message: `${why}; authorizing again`,
    conditions: [
      {
        type: "Authorized",
        status: "Unknown",
        reason: "Reauthorizing",
        message: "authorization is asked again after a restart",
      },
    ],
  });
}

/** A later task's change replaced ours on the target: ours was applied, and there is nothing left to wait for. */
async function supersededBy(ctx: TaskContext): Promise<string | undefined> {
  const list = appliedTasks(await getTarget(ctx));
  const i = list.indexOf(ctx.uid);
  return i >= 0 && i < list.length - 1 ? list[list.length - 1] : undefined;
}

export async function verify(p: Pipeline, task: AgentTask, module: ActionModule, ctx: TaskContext): Promise<Step> {
  let r;
  try {
    const later = await supersededBy(ctx);
    r = later
      ? { state: "done" as const, message: `change applied; a later task (${later}) has since changed the target` }
      : await module.verify(ctx);
  } catch (err) {
    if (err instanceof AtbError && err.retryable) return { requeueAfterMs: 2_000 };
    return settle(p, task, err, "VerificationFailed");
  }
  if (r.state === "done") {
    return p.to(task, {
      phase: "Completed",
      reason: "Completed",
      message: r.message,
      conditions: [{ type: "Succeeded", status: "True", reason: "Completed", message: r.message }],
    });
  }
  if (r.state === "failed") return p.fail(task, r.reason, r.message);
  const since = Date.parse(conditionOf(task, "Executed")?.lastTransitionTime ?? "") || p.now().getTime();
  const waited = p.now().getTime() - since;
  if (waited > p.deps.config.rolloutTimeoutMs) {
    return p.fail(
      task,
      "RolloutTimeout",
      `${r.message} (not done ${Math.round(waited / 1000)}s after the change was applied)`,
    );
  }
  return { requeueAfterMs: waited < 10_000 ? 500 : waited < 60_000 ? 2_000 : 5_000 };
}
