// The watch of open tasks. Pepr's fluent binding has no field filter (WithLabel, WithName,
// InNamespace...), but it hands the binding's `filters` object to kubernetes-fluent-client's
// K8s(model, filters).Watch(), whose Filters type has `fields` (kfc's own WithField): each entry
// becomes a term of the watch's fieldSelector, on its LIST and its WATCH alike. The Reconcile
// binding of the open tasks gets `fields: { "status.finishedAt": "" }` here, so the API server
// sends the watcher open tasks only, and a task's terminal status write (which sets finishedAt)
// takes it out of the watch (a DELETED event; kfc drops it from its cache). Pinned pepr 1.1.4 and
// kubernetes-fluent-client 3.11.6 are what this relies on; tests/unit/open-watch.test.ts checks
// both the binding and the URL kfc builds from it, so an upgrade that breaks it fails there.
import type { Capability } from "pepr";
import { OPEN_FIELD } from "../../crds/agenttask";

interface FieldFilters {
  fields?: Record<string, string>;
}

/** kfc's filter for the open tasks (status.finishedAt absent: the selector `status.finishedAt=`). */
export const OPEN_FIELDS: Readonly<Record<string, string>> = Object.freeze({ [OPEN_FIELD]: "" });

/**
 * Adds the open tasks' field filter to the watch bindings `register` adds to the capability (none
 * in an admission-only process, where Pepr registers no watch). Returns how many it changed.
 */
export function selectOpenTasks(cap: Capability, register: () => void): number {
  const before = cap.bindings.length;
  register();
  let changed = 0;
  for (const b of cap.bindings.slice(before)) {
    if (!b.isWatch) continue;
    const filters = b.filters as typeof b.filters & FieldFilters;
    filters.fields = { ...filters.fields, ...OPEN_FIELDS };
    changed++;
  }
  return changed;
}
