// StatefulSet and DaemonSet rollback as kubectl's StatefulSetRollbacker / DaemonSetRollbacker:
// a ControllerRevision's `data` is a strategic merge patch of the workload
// ({"spec":{"template":{..., "$patch":"replace"}}}), and restoring the revision is applying that
// patch to the object. Our marker and the observed resourceVersion ride in the same patch.
import type { KubeObject, Planned, TaskContext, VerifyResult } from "../lib/action";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { isApplied, markerMetadata } from "../lib/action/define";
import { rolloutStatus } from "../lib/kube/rollout";
import { history, revisionOf, rollbackContext, sameTemplate } from "./history";
import { resolveRollback } from "./resolve";

type Kind = "StatefulSet" | "DaemonSet";

function revisionTemplate(cr: KubeObject | undefined): unknown {
  const data = cr?.data as unknown as { spec?: { template?: unknown } } | undefined;
  return data?.spec?.template;
}

export async function planRevisionRollback(ctx: TaskContext, target: KubeObject, kind: Kind): Promise<Planned> {
  const name = target.metadata.name;
  const what = `${kind === "StatefulSet" ? "statefulset" : "daemon set"} ${name}`;
  const { entries, current, from, change } = await resolveRollback(ctx, target);
  const wanted = ctx.spec.payload?.revision as number | undefined;
  const revision = change.revision;
  const template = revisionTemplate(from);
  if (!template) throw new AtbError("TASK_INVALID", `revision ${revision} of ${what} holds no pod template`);
  // The canonical change (./change.ts): the revision and the template hash it restores.
  const params = change;
  const context = rollbackContext(ctx, target, { entries: entries, current, revision, template });

  if (sameTemplate(template, target.spec?.template)) {
    const noChange = `skipped rollback: the current template of ${what} already matches revision ${revision}; nothing was written`;
    return { params, context: { ...context, noChange: true }, noChange };
  }
  const body = structuredClone(from.data as unknown as Record<string, unknown>);
  body.metadata = markerMetadata(target, ctx.uid);
  return {
    params,
    context,
    write: { method: "PATCH", path: resourcePath(kind, target.metadata.namespace, name), patchType: "strategic", body },
    retryOnConflict: wanted !== undefined,
  };
}

/** Done when the rollout is complete and the newest ControllerRevision (the controller re-uses
 * and renumbers the restored one) holds the workload's current template. */
export async function verifyRevisionRollback(ctx: TaskContext, obj: KubeObject, kind: Kind): Promise<VerifyResult> {
  const name = obj.metadata.name;
  if (!isApplied(obj, ctx.uid)) {
    return { state: "failed", reason: "TargetChanged", message: `${kind} ${name} does not carry this task's marker` };
  }
  const rollout = rolloutStatus(kind, obj);
  if (rollout.state !== "done") return rollout;
  const newest = (await history(ctx, "ControllerRevision", obj)).pop();
  if (!newest || !sameTemplate(revisionTemplate(newest), obj.spec?.template)) {
    return {
      state: "waiting",
      message: `waiting for ${kind} ${name} to record the restored template as its newest revision`,
    };
  }
  return {
    state: "done",
    message: `${kind} ${name} rolled back: revision ${revisionOf(newest)} is running (${rollout.message})`,
  };
}
