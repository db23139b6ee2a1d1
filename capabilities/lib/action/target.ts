// The task's target as the actions read it: one GET (undefined when it does not exist), the
// failure a vanished target means, and the verify every rolling action shares.
import type { KubeObject, TaskContext, VerifyResult } from ".";
import { resourcePath } from "../kube";
import { rolloutStatus } from "../kube/rollout";

/** GET the task's target (undefined when it does not exist). */
export function getTarget(ctx: TaskContext): Promise<KubeObject | undefined> {
  const t = ctx.spec.target;
  return ctx.kube.get<KubeObject>(resourcePath(t.kind, t.namespace, t.name));
}

export function targetGone(ctx: TaskContext): VerifyResult {
  const t = ctx.spec.target;
  return { state: "failed", reason: "TargetNotFound", message: `${t.kind} ${t.namespace}/${t.name} no longer exists` };
}

/** The shared verify of restart, deploy and patch: re-read the target, apply its kind's rules. */
export async function verifyRollout(ctx: TaskContext): Promise<VerifyResult> {
  const obj = await getTarget(ctx);
  return obj ? rolloutStatus(ctx.spec.target.kind, obj) : targetGone(ctx);
}
