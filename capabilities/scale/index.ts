// The scale action: set spec.replicas of a Deployment, StatefulSet or ReplicaSet, as
// `kubectl scale` does, and count the task Completed when the workload reports exactly the
// requested number of ready replicas.
import type { AgentTaskSpec } from "../../crds/agenttask";
import type { ActionModule, KubeObject, Plan, TaskContext, VerifyResult } from "../lib/action";
import type { OperatorConfig } from "../lib/config";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { markerAnnotations } from "../lib/action/marker";
import { num, rolloutStatus, specReplicas } from "../lib/kube/rollout";
import { getTarget, targetGone } from "../lib/action/target";
import { actionCapability } from "../lib/action/capability";

const ALLOWED = ["replicas"];

export function validateScale(spec: AgentTaskSpec | undefined, config: Readonly<OperatorConfig>): string[] {
  const payload: unknown = spec?.payload;
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    return ["spec.payload: must be an object with field replicas"];
  }
  const errors = Object.keys(payload)
    .filter(k => !ALLOWED.includes(k))
    .map(k => `spec.payload.${k}: not a field of action scale (allowed: ${ALLOWED.join(", ")})`);
  const r = (payload as Record<string, unknown>).replicas;
  if (!Number.isSafeInteger(r) || (r as number) < 0 || (r as number) > config.maxReplicas) {
    errors.push(`spec.payload.replicas: must be an integer between 0 and ${config.maxReplicas} (ATB_MAX_REPLICAS)`);
  }
  return errors;
}

function requested(spec: AgentTaskSpec): number {
  return spec.payload?.replicas as number;
}

async function plan(ctx: TaskContext, target: KubeObject | undefined): Promise<Plan> {
  const { kind, name, namespace } = ctx.spec.target;
  if (!target) throw new AtbError("TARGET_NOT_FOUND", `${kind} ${namespace}/${name} does not exist`);
  const replicas = requested(ctx.spec);
  return {
    params: { replicas },
    // The policy rates a scale by the change: input.context.current.replicas vs params.replicas.
    context: {
      current: { replicas: specReplicas(target), readyReplicas: num(target.status?.readyReplicas) },
      requested: { replicas },
    },
    // A merge patch on the object rather than the scale subresource: the marker annotations must
    // land in the same write as the new replica count (at most once), and /scale accepts only
    // spec.replicas. The resourceVersion makes the write conditional on the object we observed.
    write: {
      method: "PATCH",
      path: resourcePath(kind, namespace, name),
      patchType: "merge",
      body: {
        metadata: { resourceVersion: target.metadata.resourceVersion, annotations: markerAnnotations(target, ctx.uid) },
        spec: { replicas },
      },
    },
    // The broker judged the replica count, not the object version: re-planning on a conflict
    // writes the same count.
    retryOnConflict: true,
  };
}

/** Done when the controller observed the new spec, the rollout rules hold and exactly the
 * requested replicas exist and are ready (scaling down waits for the extra pods to go). */
export function scaleStatus(kind: string, obj: KubeObject, want: number): VerifyResult {
  const name = obj.metadata.name;
  if (specReplicas(obj) !== want) {
    return {
      state: "failed",
      reason: "TargetChanged",
      message: `${kind} ${name} now asks for ${specReplicas(obj)} replicas, not the requested ${want}: changed by someone else`,
    };
  }
  const rollout = rolloutStatus(kind, obj);
  if (rollout.state !== "done") return rollout;
  const s = obj.status ?? {};
  if (num(s.replicas) !== want || num(s.readyReplicas) !== want) {
    return {
      state: "waiting",
      message: `${kind} ${name}: ${num(s.readyReplicas)} of ${want} replicas ready (${num(s.replicas)} exist)`,
    };
  }
  return { state: "done", message: `${kind} ${name} has ${want} ready replicas` };
}

async function verify(ctx: TaskContext): Promise<VerifyResult> {
  const obj = await getTarget(ctx);
  return obj ? scaleStatus(ctx.spec.target.kind, obj, requested(ctx.spec)) : targetGone(ctx);
}

const capability = actionCapability(
  "scale",
  "Admission of scale AgentTasks: replicas within the configured bound",
  validateScale,
);

export const ScaleAction: ActionModule = {
  action: "scale",
  kinds: ["Deployment", "StatefulSet", "ReplicaSet"],
  capability,
  validate: validateScale,
  plan,
  verify,
};
