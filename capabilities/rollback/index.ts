// The rollback action: restore an earlier pod template from the history the controllers keep
// (ReplicaSets for Deployments, ControllerRevisions for StatefulSets and DaemonSets), as
// `kubectl rollout undo [--to-revision=N]`, and count the task Completed when it runs again.
import type { KubeObject, Planned, TaskContext, VerifyResult } from "../lib/action";
import { defineAction } from "../lib/action/define";
import { AtbError } from "../lib/errors";
import { planDeploymentRollback, verifyDeploymentRollback } from "./deployment";
import { planRevisionRollback, verifyRevisionRollback } from "./revisions";

function plan(ctx: TaskContext, target: KubeObject): Promise<Planned> {
  const kind = ctx.spec.target.kind;
  if (kind === "Deployment") return planDeploymentRollback(ctx, target);
  if (kind === "StatefulSet" || kind === "DaemonSet") return planRevisionRollback(ctx, target, kind);
  throw new AtbError("TASK_INVALID", `kind ${kind} is not supported by action rollback`);
}

function verify(ctx: TaskContext, target: KubeObject): Promise<VerifyResult> | VerifyResult {
  const kind = ctx.spec.target.kind;
  if (kind === "Deployment") return verifyDeploymentRollback(ctx, target);
  if (kind === "StatefulSet" || kind === "DaemonSet") return verifyRevisionRollback(ctx, target, kind);
  return { state: "failed", reason: "InvalidTask", message: `kind ${kind} is not supported by action rollback` };
}

export const RollbackAction = defineAction({
  action: "rollback",
  kinds: ["Deployment", "StatefulSet", "DaemonSet"],
  tier: "HIGH",
  payload: {
    fields: { revision: { type: "integer", minimum: 1, description: "revision to restore (default: previous)" } },
  },
  docs: {
    summary:
      "`kubectl rollout undo`: restores the pod template of `revision` (default: the previous one) from the ReplicaSets or ControllerRevisions the controllers kept; the revision that already runs is Completed `NoChange` with nothing written; refuses a missing revision or a paused Deployment",
    payload: "`revision` (optional)",
  },
  admission: "a revision number if any (kubectl rollout undo semantics)",
  // The history: a Deployment's ReplicaSets, a StatefulSet's or DaemonSet's ControllerRevisions.
  grants: [
    { kind: "ReplicaSet", verbs: ["list"] },
    { kind: "ControllerRevision", verbs: ["list"] },
  ],
  validate(payload) {
    const r = payload.revision;
    if (r === undefined || (Number.isSafeInteger(r) && (r as number) >= 1)) return [];
    return ["spec.payload.revision: must be a whole number >= 1 (omit it for the previous revision)"];
  },
  plan,
  verify,
});
