// The scale action: set spec.replicas of a Deployment, StatefulSet or ReplicaSet, as
// `kubectl scale` does, and count the task Completed when the workload reports exactly the
// requested number of ready replicas.
import type { AgentTaskSpec } from "../../crds/agenttask";
import type { KubeObject, Plan, TaskContext, VerifyResult } from "../lib/action";
import { defineAction, markerMetadata } from "../lib/action/define";
import { resourcePath } from "../lib/kube";
import { num, rolloutStatus, specReplicas } from "../lib/kube/rollout";
import { changeOf } from "./change";

function requested(spec: AgentTaskSpec): number {
  return spec.payload?.replicas as number;
}

function plan(ctx: TaskContext, target: KubeObject): Plan {
  const { kind, name, namespace } = ctx.spec.target;
  const replicas = requested(ctx.spec);
  return {
    // The canonical change (./change.ts): what a PoA's con.change_sha256 binds.
    params: changeOf(ctx.spec.payload),
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
      body: { metadata: markerMetadata(target, ctx.uid), spec: { replicas } },
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

export const ScaleAction = defineAction({
  action: "scale",
  kinds: ["Deployment", "StatefulSet", "ReplicaSet"],
  tier: "LOW",
  payload: {
    // The CRD's bound is a sanity cap; ATB_MAX_REPLICAS, checked below, is the operator's own.
    fields: { replicas: { type: "integer", minimum: 0, maximum: 100000, description: "desired replicas" } },
    required: { all: ["replicas"] },
  },
  docs: {
    summary: "sets `spec.replicas`; done when the replicas are ready",
    payload: "`replicas` (0…`ATB_MAX_REPLICAS`)",
    tierNote: "MEDIUM to 0, beyond 2× or ½, or by more than 10",
  },
  admission: "replicas within the configured bound",
  validate(payload, _spec, config) {
    const r = payload.replicas;
    if (Number.isSafeInteger(r) && (r as number) >= 0 && (r as number) <= config.maxReplicas) return [];
    return [`spec.payload.replicas: must be an integer between 0 and ${config.maxReplicas} (ATB_MAX_REPLICAS)`];
  },
  plan,
  verify: (ctx, target) => scaleStatus(ctx.spec.target.kind, target, requested(ctx.spec)),
});
