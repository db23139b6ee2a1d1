// When a manifest deploy is done: the kind's rollout rules (as `kubectl rollout status`), and then
// the template the controller rolled out, the newest ReplicaSet's (Deployment) or the newest
// ControllerRevision's (StatefulSet, DaemonSet), is the manifest's template. Anything else running
// (a sidecar an admission policy injected, a template another writer changed) is TemplateMismatch.
import type { KubeObject, TaskContext, VerifyResult } from "../lib/action";
import { rolloutDone } from "../lib/action/define";
import { describeDiff, templateDiff } from "../lib/kube/template";
import { history, revisionOf, sameTemplate } from "../rollback/history";

function mismatch(what: string, diff: string[]): VerifyResult {
  return {
    state: "failed",
    reason: "TemplateMismatch",
    message: `${what} is not the manifest's pod template: ${describeDiff(diff)}`,
  };
}

/** The pod template a ControllerRevision records (its data is a patch of the workload's spec). */
function revisionTemplate(cr: KubeObject): unknown {
  return (cr.data as unknown as { spec?: { template?: unknown } } | undefined)?.spec?.template;
}

/** The newest ReplicaSet or ControllerRevision the workload's controller made, and its template. */
async function newest(ctx: TaskContext, target: KubeObject): Promise<{ what: string; template: unknown } | undefined> {
  const deployment = ctx.spec.target.kind === "Deployment";
  const entry = (await history(ctx, deployment ? "ReplicaSet" : "ControllerRevision", target)).pop();
  if (!entry) return undefined;
  const what = `${deployment ? "replica set" : "controller revision"} ${entry.metadata.name} (revision ${revisionOf(entry)})`;
  return { what, template: deployment ? entry.spec?.template : revisionTemplate(entry) };
}

export async function verifyManifest(ctx: TaskContext, target: KubeObject): Promise<VerifyResult> {
  const { kind, name } = ctx.spec.target;
  const wanted = (ctx.spec.payload?.manifest as KubeObject).spec?.template;
  // The workload itself first: a template changed on its way in (a mutating admission policy or
  // webhook) or since (another writer) will not become the manifest's by waiting.
  const own = templateDiff(wanted, target.spec?.template);
  if (own.length) return mismatch(`the template of ${kind} ${name}`, own);
  const rollout = rolloutDone(ctx, target);
  if (rollout.state !== "done") return rollout;
  // One LIST, once the rollout is complete: the history the controller keeps.
  const latest = await newest(ctx, target);
  if (!latest || !sameTemplate(latest.template, target.spec?.template)) {
    return { state: "waiting", message: `waiting for ${kind} ${name}'s controller to record its new template` };
  }
  const rolled = templateDiff(wanted, latest.template);
  if (rolled.length) return mismatch(`the template of ${latest.what}`, rolled);
  return { state: "done", message: `${rollout.message}; ${latest.what} runs the manifest's pod template` };
}
