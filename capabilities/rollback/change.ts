// The canonical change of a rollback (docs/authorization.md, "The change digest"): which revision
// is restored and the hash of the pod template it holds, so a token names one template even if
// revision numbers move on. The operator first resolves "previous" to a number, as
// `kubectl rollout undo` does; an agent reads both values from the history:
// - Deployment: the ReplicaSet's `deployment.kubernetes.io/revision` annotation and its
//   `pod-template-hash` label;
// - StatefulSet / DaemonSet: the ControllerRevision's `.revision` and its hash label
//   (`controller.kubernetes.io/hash`, which the StatefulSet controller writes, or
//   `controller-revision-hash`, which the DaemonSet controller writes).

export const TEMPLATE_HASH_LABELS = ["pod-template-hash", "controller.kubernetes.io/hash", "controller-revision-hash"];

export interface RollbackResolution {
  revision: number;
  /** null when the history entry carries none of the hash labels (then only the number binds). */
  templateHash: string | null;
}

/** The template hash of a history entry (ReplicaSet or ControllerRevision); null if it has none. */
export function templateHashOf(entry: { metadata?: { labels?: Record<string, string> } }): string | null {
  const labels = entry.metadata?.labels ?? {};
  for (const l of TEMPLATE_HASH_LABELS) if (typeof labels[l] === "string" && labels[l] !== "") return labels[l];
  return null;
}

export function changeOf(r: RollbackResolution): { revision: number; template_hash: string | null } {
  return { revision: r.revision, template_hash: r.templateHash };
}
