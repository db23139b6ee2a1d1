// Which revision a rollback restores, resolved from the history the controllers keep exactly as
// `kubectl rollout undo [--to-revision=N]` does: the payload's revision, or the highest one below
// the revision that runs. The plan uses it, and so does every minter that binds a rollback's
// canonical change ({revision, template_hash}, ./change.ts) without being the operator
// (tools/stack.ts), so both name the same revision.
import type { KubeObject, TaskContext } from "../lib/action";
import { changeOf, templateHashOf } from "./change";
import { history, pickRevision, revisionOf } from "./history";

export interface ResolvedRollback {
  /** The history, oldest revision first. */
  entries: KubeObject[];
  /** The revision that runs now. */
  current: number;
  /** The history entry to restore (ReplicaSet or ControllerRevision). */
  from: KubeObject;
  /** The canonical change: {revision, template_hash}. */
  change: { revision: number; template_hash: string | null };
}

/** The current revision of a StatefulSet or DaemonSet: its updateRevision, else the newest entry. */
function revisionRunning(target: KubeObject, entries: KubeObject[]): number {
  const updateRevision = target.status?.updateRevision;
  const named = entries.find(e => e.metadata.name === updateRevision);
  return named ? revisionOf(named) : revisionOf(entries[entries.length - 1] ?? { metadata: { name: "" } });
}

function describe(kind: string, name: string): string {
  if (kind === "Deployment") return `deployment ${name}`;
  return `${kind === "StatefulSet" ? "statefulset" : "daemon set"} ${name}`;
}

/** Resolves the revision a rollback of `target` (a Deployment, StatefulSet or DaemonSet) restores. */
export async function resolveRollback(
  ctx: Pick<TaskContext, "kube" | "spec">,
  target: KubeObject,
): Promise<ResolvedRollback> {
  const kind = ctx.spec.target.kind;
  const deployment = kind === "Deployment";
  const entries = await history(ctx, deployment ? "ReplicaSet" : "ControllerRevision", target);
  const current = deployment ? revisionOf(target) : revisionRunning(target, entries);
  const wanted = ctx.spec.payload?.revision as number | undefined;
  const from = pickRevision(entries, current, wanted, describe(kind, target.metadata.name));
  return {
    entries,
    current,
    from,
    change: changeOf({ revision: revisionOf(from), templateHash: templateHashOf(from) }),
  };
}
