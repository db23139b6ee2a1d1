// The restart action, as `kubectl rollout restart`: stamp
// spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] so the controller rolls
// every pod, and count the task Completed when the rollout finishes.
import type { KubeObject, Plan, TaskContext } from "../lib/action";
import { defineAction, markerMetadata, refusePaused, rolloutDone } from "../lib/action/define";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { podTemplate } from "../lib/kube/workload";
import { changeOf } from "./change";

export const RESTARTED_AT = "kubectl.kubernetes.io/restartedAt";

/** The restart stamp: the task's creation time (RFC 3339), so every retry of this task writes
 * the same value and a repeated write does not roll the pods a second time. */
export function restartStamp(ctx: TaskContext): string {
  const created = ctx.task.metadata?.creationTimestamp;
  const date = created ? new Date(created as Date | string) : undefined;
  if (!date || Number.isNaN(date.getTime())) {
    throw new AtbError("TASK_INVALID", "the task has no creationTimestamp to derive the restart time from");
  }
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function plan(ctx: TaskContext, target: KubeObject): Plan {
  const { kind, name, namespace } = ctx.spec.target;
  refusePaused(kind, target);
  const restartedAt = restartStamp(ctx);
  return {
    // The intent only (./change.ts): the stamp is the operator's, so it is context, not change.
    params: changeOf(),
    context: {
      restartedAt,
      previousRestartedAt: podTemplate(target).metadata?.annotations?.[RESTARTED_AT] ?? null,
      replicas: typeof target.spec?.replicas === "number" ? target.spec.replicas : null,
    },
    // A merge patch touches only the one template annotation; every other annotation stays.
    write: {
      method: "PATCH",
      path: resourcePath(kind, namespace, name),
      patchType: "merge",
      body: {
        metadata: markerMetadata(target, ctx.uid),
        spec: { template: { metadata: { annotations: { [RESTARTED_AT]: restartedAt } } } },
      },
    },
    retryOnConflict: true,
  };
}

export const RestartAction = defineAction({
  action: "restart",
  kinds: ["Deployment", "StatefulSet", "DaemonSet"],
  tier: "MEDIUM",
  payload: { fields: {} },
  docs: {
    summary:
      "`kubectl rollout restart`: sets only the template's `kubectl.kubernetes.io/restartedAt` (fixed per task); refuses a paused Deployment; done when the rollout finishes",
  },
  admission: "no payload fields (kubectl rollout restart semantics)",
  plan,
  verify: rolloutDone,
});
