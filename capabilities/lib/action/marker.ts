// The at-most-once marker on changed targets (the at-most-once invariant, docs/invariants.md). The
// write that applies a change also records the task's UID in two annotations: `applied-by-task`
// (the latest task, for people) and `applied-tasks` (the most recent MARKER_HISTORY task UIDs, for
// the operator). A task found in Executing after a restart looks itself up in the list: present
// means its change is already applied and must not be applied again. The list is read-modify-
// written under the observed resourceVersion, so two tasks on one target cannot erase each other's
// entry.
import { ANNOTATION_APPLIED_BY, GROUP } from "../../../crds/agenttask";
import type { KubeObject } from ".";

export const ANNOTATION_APPLIED_TASKS = `${GROUP}/applied-tasks`;
/** How many task UIDs a target remembers. A task stuck in Executing while more than this many
 * later tasks changed the same target would be re-authorized; the task deadline bounds that case. */
export const MARKER_HISTORY = 32;

export function appliedTasks(target: KubeObject | undefined): string[] {
  const raw = target?.metadata.annotations?.[ANNOTATION_APPLIED_TASKS];
  return raw ? raw.split(/\s+/).filter(Boolean) : [];
}

export function isApplied(target: KubeObject | undefined, uid: string): boolean {
  return appliedTasks(target).includes(uid);
}

/** The marker annotations to include in the write that applies task `uid` to `target`. */
export function markerAnnotations(target: KubeObject | undefined, uid: string): Record<string, string> {
  const list = appliedTasks(target).filter(u => u !== uid);
  list.push(uid);
  return {
    [ANNOTATION_APPLIED_BY]: uid,
    [ANNOTATION_APPLIED_TASKS]: list.slice(-MARKER_HISTORY).join(" "),
  };
}

/**
 * The metadata block of a merge or strategic-merge patch that applies task `uid`: the observed
 * resourceVersion (so the write fails with 409 if the target moved on since the plan) and the
 * marker annotations (so the change and its marker land in one write).
 */
export function markerMetadata(
  target: KubeObject,
  uid: string,
): { resourceVersion: string | undefined; annotations: Record<string, string> } {
  return { resourceVersion: target.metadata.resourceVersion, annotations: markerAnnotations(target, uid) };
}

/** JSON Pointer escaping for annotation keys (RFC 6901: ~ → ~0, / → ~1). */
function pointerEscape(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** RFC 6902 operations that stamp the marker (for JSON Patch writes). */
export function markerPatchOps(target: KubeObject, uid: string): { op: "add"; path: string; value: unknown }[] {
  const marker = markerAnnotations(target, uid);
  if (!target.metadata.annotations) return [{ op: "add", path: "/metadata/annotations", value: marker }];
  return Object.entries(marker).map(([k, v]) => ({
    op: "add" as const,
    path: `/metadata/annotations/${pointerEscape(k)}`,
    value: v,
  }));
}
