// Executing, not yet applied: the one write that applies the change and stamps the at-most-once
// marker. The plan the broker judged is written as it was judged; only on a 409 (the target
// changed since) and only for actions that allow it is the change planned again, and if the new
// plan's params (the canonical change) or what it resolved from the target differ from the judged
// ones the task is authorized again instead of written.
import { isDeepStrictEqual } from "node:util";
import { isUnchanged, type KubeObject, type Plan, type Planned } from "../action";
import { isApplied } from "../action/marker";
import { getTarget } from "../action/target";
import { poaExpiry } from "../broker/client";
import { AtbError, messageOf } from "../errors";
import { judge } from "./outcome";
import type { StepResult, StepScope } from "./scope";
import { MAX_WRITE_ATTEMPTS } from "./timing";
import { applied, failed, reauthorizing, Reason, unchanged } from "./transitions";

export async function execute(s: StepScope): Promise<StepResult> {
  let plan = s.judged;
  let conflict: string | undefined;
  for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
    let target: KubeObject | undefined;
    try {
      // The pass that judged the plan holds the target it was planned on: the write is conditioned
      // on that copy's resourceVersion, so it needs no second read (a conflict re-reads below).
      target =
        attempt === 0 && plan && s.judgedFrom !== undefined ? (s.judgedFrom ?? undefined) : await getTarget(s.ctx);
    } catch (err) {
      return { error: err, stage: "execute" };
    }
    if (isApplied(target, s.ctx.uid))
      return { transition: applied("the change was already applied (marker found on the target)", s.executedAs) };
    if (!plan) return reauthorize(s, "the operator restarted after authorization and before applying the change");
    if (conflict !== undefined) {
      const next = await replan(s, plan, target, conflict);
      if (!("plan" in next)) return next;
      plan = next.plan;
    }
    if (isUnchanged(plan)) return { transition: unchanged(plan.noChange, s.executedAs) };
    const result = await write(s, plan, target);
    if (!("conflict" in result)) return result;
    conflict = result.conflict;
  }
  return {
    error: new AtbError("KUBE_TRANSIENT", "the target kept changing while the change was being applied"),
    stage: "execute",
  };
}

/**
 * After a conflict (the target was re-read and carries no marker of ours): the same change planned
 * on the new state, re-authorization if it differs, or Failed for an action that may not re-plan
 * (patch applies to exactly the version the broker judged).
 */
async function replan(
  s: StepScope,
  judged: Planned,
  target: KubeObject | undefined,
  conflict: string,
): Promise<{ plan: Planned } | StepResult> {
  if (!("retryOnConflict" in judged) || !judged.retryOnConflict) {
    const message = `the target changed after the broker's decision, so the change was not applied: ${conflict}`;
    return { transition: failed(s.task, Reason.TargetChanged, message) };
  }
  try {
    const again = await s.module.plan(s.ctx, target);
    if (isDeepStrictEqual(again.params, judged.params) && isDeepStrictEqual(resolvedOf(again), resolvedOf(judged)))
      return { plan: again };
  } catch (err) {
    return { error: err, stage: "execute" };
  }
  return reauthorize(
    s,
    "the target changed after the decision and the change would now differ from what was authorized",
  );
}

const resolvedOf = (p: Planned): unknown => ("resolved" in p ? p.resolved : undefined);

/**
 * The one write; its answer is the target as the write left it (verify starts from it).
 * `conflict`: the target changed since it was read (409); the caller re-reads it, so a write of
 * ours whose answer was lost is recognised by its marker instead of being called a conflict.
 */
async function write(
  s: StepScope,
  plan: Plan,
  target: KubeObject | undefined,
): Promise<StepResult | { conflict: string }> {
  try {
    const written = await s.ctx.kube.request<KubeObject>(plan.write);
    const observed = written && typeof written === "object" && written.metadata ? written : undefined;
    const since = target?.metadata?.resourceVersion;
    return {
      transition: applied("change applied; waiting for it to take effect", s.executedAs),
      ...(observed ? { observed } : {}),
      ...(observed && since ? { since } : {}),
    };
  } catch (err) {
    if (judge(err, "write").kind !== "stale") return { error: err, stage: "write" };
    return { conflict: messageOf(err) };
  }
}

/** Executing without the marker and without a judged plan in hand: the change was never applied. */
function reauthorize(s: StepScope, why: string): StepResult {
  let exp: Date | undefined;
  try {
    exp = poaExpiry(s.ctx.spec.poaToken);
  } catch {
    exp = undefined;
  }
  if (!exp || exp <= s.clock()) {
    const message = `${why}, and the PoA token has expired since, so the change was not applied`;
    return { transition: failed(s.task, Reason.PoAExpired, message) };
  }
  return { transition: reauthorizing(why) };
}
