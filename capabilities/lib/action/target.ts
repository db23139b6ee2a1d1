// The task's target as the actions read it: one GET (undefined when it does not exist), the
// failures a missing or vanished target means, kubectl's refusal of a paused Deployment, and the
// verify every rolling action shares.
import type { KubeObject, TaskContext, VerifyResult } from ".";
import { AtbError } from "../errors";
import { resourcePath } from "../kube";
import { rolloutStatus } from "../kube/rollout";

/** GET the task's target (undefined when it does not exist). */
export function getTarget(ctx: TaskContext): Promise<KubeObject | undefined> {
  const t = ctx.spec.target;
  return ctx.kube.get<KubeObject>(resourcePath(t.kind, t.namespace, t.name));
}

/** The target, or TARGET_NOT_FOUND when it does not exist (nothing can be planned against it). */
export function requireTarget(ctx: TaskContext, target: KubeObject | undefined): KubeObject {
  if (target) return target;
  const { kind, name, namespace } = ctx.spec.target;
  throw new AtbError("TARGET_NOT_FOUND", `${kind} ${namespace}/${name} does not exist`);
}

/** The verify outcome when the target disappeared after the write. */
export function targetGone(ctx: TaskContext): VerifyResult {
  const t = ctx.spec.target;
  return { state: "failed", reason: "TargetNotFound", message: `${t.kind} ${t.namespace}/${t.name} no longer exists` };
}

/** kubectl refuses too: a paused Deployment would take a new template but never roll it out. */
export function refusePaused(kind: string, target: KubeObject): void {
  if (kind === "Deployment" && target.spec?.paused === true) {
    throw new AtbError(
      "TASK_INVALID",
      `deployment ${target.metadata.name} is paused; resume it first (kubectl rollout resume)`,
    );
  }
}

/** The verify of restart, deploy and a patch of the pod template: the kind's rollout rules. */
export function rolloutDone(ctx: TaskContext, target: KubeObject): VerifyResult {
  return rolloutStatus(ctx.spec.target.kind, target);
}
