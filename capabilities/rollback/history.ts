// A workload's rollout history as the controllers keep it: ReplicaSets (Deployment) or
// ControllerRevisions (StatefulSet, DaemonSet) selected by the workload's selector and owned by
// it (ownerReferences uid), each with a revision number. Mirrors kubectl's controlledHistory and
// deploymentutil.GetAllReplicaSets, so `rollback` picks the same revision `kubectl rollout undo` would.
import { isDeepStrictEqual } from "node:util";
import type { KubeObject, TaskContext } from "../lib/action";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { containerImages } from "../lib/kube/workload";

export const REVISION_ANNOTATION = "deployment.kubernetes.io/revision";
export const POD_TEMPLATE_HASH = "pod-template-hash";

interface Requirement {
  key: string;
  operator: string;
  values?: string[];
}

/** metav1.LabelSelector → the labelSelector query string. */
export function selectorString(selector: unknown): string {
  const s = (selector ?? {}) as { matchLabels?: Record<string, string>; matchExpressions?: Requirement[] };
  const parts = Object.entries(s.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const r of s.matchExpressions ?? []) {
    const values = `(${(r.values ?? []).join(",")})`;
    if (r.operator === "In") parts.push(`${r.key} in ${values}`);
    else if (r.operator === "NotIn") parts.push(`${r.key} notin ${values}`);
    else if (r.operator === "Exists") parts.push(r.key);
    else if (r.operator === "DoesNotExist") parts.push(`!${r.key}`);
  }
  return parts.join(",");
}

/** The revision number of a ReplicaSet (annotation) or ControllerRevision (.revision); 0 if none. */
export function revisionOf(obj: KubeObject): number {
  if (typeof obj.revision === "number") return obj.revision;
  const n = Number(obj.metadata.annotations?.[REVISION_ANNOTATION]);
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

function ownedBy(obj: KubeObject, owner: KubeObject): boolean {
  const refs = obj.metadata.ownerReferences;
  return (
    Array.isArray(refs) && refs.some(r => (r as { uid?: string; controller?: boolean }).uid === owner.metadata.uid)
  );
}

/** ReplicaSets or ControllerRevisions owned by `owner`, oldest revision first. */
export async function history(
  ctx: Pick<TaskContext, "kube" | "spec">,
  kind: "ReplicaSet" | "ControllerRevision",
  owner: KubeObject,
): Promise<KubeObject[]> {
  const selector = selectorString(owner.spec?.selector);
  const query = selector ? { labelSelector: selector } : undefined;
  const list = await ctx.kube.request<{ items?: KubeObject[] }>({
    method: "GET",
    path: resourcePath(kind, owner.metadata.namespace ?? ctx.spec.target.namespace),
    query,
  });
  return (list.items ?? []).filter(i => ownedBy(i, owner)).sort((a, b) => revisionOf(a) - revisionOf(b));
}

/** The history entry to restore: `wanted`, or the highest revision below `current`. */
export function pickRevision(
  entries: KubeObject[],
  current: number,
  wanted: number | undefined,
  what: string,
): KubeObject {
  const revisions = entries.map(revisionOf).filter(r => r > 0);
  const known = revisions.length ? revisions.join(", ") : "none";
  if (wanted !== undefined) {
    const hit = entries.find(e => revisionOf(e) === wanted);
    if (!hit) throw new AtbError("TASK_INVALID", `revision ${wanted} of ${what} does not exist (revisions: ${known})`);
    return hit;
  }
  const previous = entries.filter(e => revisionOf(e) > 0 && revisionOf(e) < current).pop();
  if (!previous)
    throw new AtbError(
      "TASK_INVALID",
      `${what} has no revision before ${current} to roll back to (revisions: ${known})`,
    );
  return previous;
}

/** Pod templates compared as the API returns them, minus the labels controllers add. */
export function sameTemplate(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(withoutHash(a), withoutHash(b));
}

export function withoutHash(template: unknown): Record<string, unknown> {
  const t = structuredClone((template ?? {}) as Record<string, unknown>);
  delete t.$patch;
  const meta = t.metadata as { labels?: Record<string, string> } | undefined;
  if (meta?.labels) {
    delete meta.labels[POD_TEMPLATE_HASH];
    if (Object.keys(meta.labels).length === 0) delete meta.labels;
  }
  return t;
}

/** What the broker is told about a rollback besides its change: the history, the images before and after. */
export function rollbackContext(
  ctx: TaskContext,
  target: KubeObject,
  h: { entries: KubeObject[]; current: number; revision: number; template: unknown },
): Record<string, unknown> {
  return {
    requestedRevision: (ctx.spec.payload?.revision as number | undefined) ?? "previous",
    currentRevision: h.current,
    targetRevision: h.revision,
    revisions: h.entries.map(revisionOf),
    currentImages: containerImages(target),
    targetImages: containerImages({ metadata: { name: target.metadata.name }, spec: { template: h.template } }),
  };
}
