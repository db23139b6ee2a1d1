// The restart action, as `kubectl rollout restart`: stamp
// spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] so the controller rolls
// every pod, and count the task Completed when the rollout finishes.
import type { AgentTaskSpec } from "../../crds/agenttask";
import type { ActionModule, KubeObject, Plan, TaskContext } from "../lib/action";
import type { OperatorConfig } from "../lib/config";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { markerAnnotations } from "../lib/action/marker";
import { podTemplate } from "../lib/kube/workload";
import { verifyRollout } from "../lib/action/target";
import { actionCapability } from "../lib/action/capability";

export const RESTARTED_AT = "kubectl.kubernetes.io/restartedAt";

export function validateRestart(spec: AgentTaskSpec | undefined, _config?: Readonly<OperatorConfig>): string[] {
  const payload: unknown = spec?.payload;
  if (payload === undefined) return [];
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    return ["spec.payload: must be an object (action restart takes no fields)"];
  }
  return Object.keys(payload).map(k => `spec.payload.${k}: not a field of action restart (allowed: none)`);
}

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

async function plan(ctx: TaskContext, target: KubeObject | undefined): Promise<Plan> {
  const { kind, name, namespace } = ctx.spec.target;
  if (!target) throw new AtbError("TARGET_NOT_FOUND", `${kind} ${namespace}/${name} does not exist`);
  if (kind === "Deployment" && target.spec?.paused === true) {
    throw new AtbError("TASK_INVALID", `deployment ${name} is paused; resume it first (kubectl rollout resume)`);
  }
  const restartedAt = restartStamp(ctx);
  return {
    params: { restartedAt },
    context: {
      previousRestartedAt: podTemplate(target).metadata?.annotations?.[RESTARTED_AT] ?? null,
      replicas: typeof target.spec?.replicas === "number" ? target.spec.replicas : null,
    },
    // A merge patch touches only the one template annotation; every other annotation stays.
    write: {
      method: "PATCH",
      path: resourcePath(kind, namespace, name),
      patchType: "merge",
      body: {
        metadata: { resourceVersion: target.metadata.resourceVersion, annotations: markerAnnotations(target, ctx.uid) },
        spec: { template: { metadata: { annotations: { [RESTARTED_AT]: restartedAt } } } },
      },
    },
    retryOnConflict: true,
  };
}

const capability = actionCapability(
  "restart",
  "Admission of restart AgentTasks (kubectl rollout restart semantics)",
  validateRestart,
);

export const RestartAction: ActionModule = {
  action: "restart",
  kinds: ["Deployment", "StatefulSet", "DaemonSet"],
  capability,
  validate: validateRestart,
  plan,
  verify: verifyRollout,
};
