// Deployment rollback as `kubectl rollout undo` (DeploymentRollbacker): the ReplicaSet of the
// wanted revision gives the pod template, which replaces spec.template (without the
// pod-template-hash label) in one JSON patch. The controller then re-uses that ReplicaSet and
// gives it the next revision number.
import type { KubeObject, Planned, TaskContext, VerifyResult } from "../lib/action";
import { resourcePath } from "../lib/kube";
import { isApplied, markerPatchOps, refusePaused } from "../lib/action/define";
import { deploymentStatus } from "../lib/kube/rollout";
import { history, revisionOf, rollbackContext, sameTemplate, withoutHash } from "./history";
import { resolveRollback } from "./resolve";

export async function planDeploymentRollback(ctx: TaskContext, target: KubeObject): Promise<Planned> {
  const name = target.metadata.name;
  refusePaused("Deployment", target);
  const { entries: replicaSets, current, from, change } = await resolveRollback(ctx, target);
  const wanted = ctx.spec.payload?.revision as number | undefined;
  const revision = change.revision;
  const template = withoutHash(from.spec?.template);
  // The canonical change (./change.ts): the revision and the template hash it restores.
  const params = change;
  const context = rollbackContext(ctx, target, { entries: replicaSets, current, revision, template });

  // As `kubectl rollout undo`: "skipped rollback (current template already matches revision N)".
  if (sameTemplate(from.spec?.template, target.spec?.template)) {
    const noChange = `skipped rollback: the current template of deployment ${name} already matches revision ${revision}; nothing was written`;
    return { params, context: { ...context, noChange: true }, noChange };
  }
  return {
    params,
    context,
    // JSON patch `replace` swaps the whole template (a merge patch would keep keys the old
    // template lacks, such as a later restartedAt). Replacing resourceVersion with the observed one
    // makes the write conditional: the API server answers 409 Conflict if the Deployment moved on.
    write: {
      method: "PATCH",
      path: resourcePath("Deployment", target.metadata.namespace, name),
      patchType: "json",
      body: [
        { op: "replace", path: "/metadata/resourceVersion", value: target.metadata.resourceVersion },
        { op: "replace", path: "/spec/template", value: template },
        ...markerPatchOps(target, ctx.uid),
      ],
    },
    // An explicit revision names the same template after any conflict; "previous" may not.
    retryOnConflict: wanted !== undefined,
  };
}

/** Done when the rollout is complete and the newest ReplicaSet runs the Deployment's template
 * (the one this task restored, as long as the marker says this task wrote it). */
export async function verifyDeploymentRollback(ctx: TaskContext, d: KubeObject): Promise<VerifyResult> {
  const name = d.metadata.name;
  if (!isApplied(d, ctx.uid)) {
    return {
      state: "failed",
      reason: "TargetChanged",
      message: `deployment ${name} does not carry this task's marker`,
    };
  }
  const rollout = deploymentStatus(d);
  if (rollout.state !== "done") return rollout;
  const newest = (await history(ctx, "ReplicaSet", d)).pop();
  if (!newest || !sameTemplate(newest.spec?.template, d.spec?.template)) {
    return {
      state: "waiting",
      message: `waiting for deployment ${name} to create the ReplicaSet of the restored template`,
    };
  }
  return {
    state: "done",
    message: `deployment ${name} rolled back: revision ${revisionOf(newest)} is running (${rollout.message})`,
  };
}
