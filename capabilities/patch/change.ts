// The canonical change of a patch (docs/authorization.md, "The change digest"): the RFC 6902
// operations as an array (parsed when the payload carries them as a JSON string), each operation
// with all its members as given. One exception keeps ConfigMap values away from the broker, as
// update-config does: on a ConfigMap, the `value` of an operation whose path is the whole object
// or lies under /data or /binaryData is replaced by its digest (a string by the SHA-256 of its
// UTF-8 bytes, anything else by the change digest of the value).
import { changeDigest, valueDigest } from "../lib/change-digest";

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Whether an operation's value is ConfigMap content (the path's first reference token). */
export function holdsConfigValue(kind: string, path: unknown): boolean {
  if (kind !== "ConfigMap") return false;
  if (typeof path !== "string" || path === "" || !path.startsWith("/")) return true;
  const first = path.slice(1).split("/")[0];
  return first === "data" || first === "binaryData";
}

function digestOf(value: unknown): string {
  return typeof value === "string" ? valueDigest(value) : changeDigest(value);
}

/** `{patch: [ops]}` for a target of `kind`; throws when the payload is not an array of objects. */
export function changeOf(kind: string, payload: Record<string, unknown> | undefined): { patch: unknown[] } {
  const raw = payload?.patch;
  const ops: unknown = typeof raw === "string" ? JSON.parse(raw) : raw;
  if (!Array.isArray(ops)) throw new Error("patch: the payload's patch is not an array of operations");
  return {
    patch: ops.map(op => {
      if (!isMap(op)) throw new Error("patch: an operation is not an object");
      if (!("value" in op) || !holdsConfigValue(kind, op.path)) return op;
      return { ...op, value: digestOf(op.value) };
    }),
  };
}
