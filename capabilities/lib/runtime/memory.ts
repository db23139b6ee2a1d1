// What the watcher keeps of a watched object. kubernetes-fluent-client 3.11.6 caches every object
// its watch delivers, whole, until the object leaves the watch (kfc's Watcher #process caches
// the very object it then hands to Pepr's callback, and ours), and uses only its uid and
// resourceVersion. The pipeline re-reads each task before every step, so nothing reads the
// bookkeeping the API server and kubectl add: metadata.managedFields (one entry per field
// manager, often larger than the spec) and kubectl's last-applied-configuration annotation (a
// second copy of the whole object as applied, token included). They are dropped in place, from
// the object the cache holds.

/** The annotation `kubectl apply` (client-side) keeps a copy of the applied object in. */
export const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

interface Meta {
  metadata?: { managedFields?: unknown; annotations?: Record<string, string> };
}

/** Drops managedFields and the last-applied copy from the object, in place; returns it. */
export function lighten<T extends object>(obj: T): T {
  const m = (obj as Meta).metadata;
  if (!m || typeof m !== "object") return obj;
  delete m.managedFields;
  if (m.annotations && typeof m.annotations === "object") delete m.annotations[LAST_APPLIED];
  return obj;
}
