// The patch arithmetic of the in-memory API server (fake-kube.ts), one function per content type,
// pure: document in, document out, or a KubeError shaped as the API server answers.
//
//   merge      RFC 7386 JSON merge patch, exactly (null deletes; lists replace whole).
//   json       RFC 6902 JSON patch through fast-json-patch. Any operation that does not apply (a
//              failed `test`, a path that does not exist) answers 422 Invalid with the API server's
//              bare message: it wraps JSON patch errors in a generic 422 whose text says only that.
//   strategic  An approximation of strategic merge patch: merge semantics, except that lists whose
//              elements are all objects with a `name` are merged element by element by name (as
//              containers, env and volumes are), `$patch: replace` in a map replaces the map and an
//              element `{$patch: replace}` in a list replaces the list, and `{name, $patch: delete}`
//              removes that element. Other directives (retainKeys, setElementOrder, other merge keys
//              such as `containerPort`) are not modelled.
//   apply      Server-side apply approximated as a merge of the applied configuration onto the live
//              object. Field ownership is not tracked, so fields a previous apply set and this one
//              omits are kept (the real server would remove them), and conflicts never occur.
import { applyPatch } from "fast-json-patch";
import { KubeError } from "../../capabilities/lib/kube";

export type PatchType = "merge" | "json" | "strategic" | "apply";
type Doc = Record<string, unknown>;

/** The API server's whole message for a JSON patch that does not apply to the object. */
export const BARE_422 = "the server rejected our request due to an error in our request";

export function isRecord(v: unknown): v is Doc {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A JSON round trip: what a value looks like after the wire (undefined keys dropped). */
export function wire<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** Applies a patch body of the given content type to a copy of `current`. */
export function patchDocument(current: Doc, body: unknown, type: PatchType): Doc {
  if (type === "json") return jsonPatch(current, body);
  if (!isRecord(body)) throw new KubeError(400, "BadRequest", `a ${type} patch body must be a JSON object`);
  const out = type === "strategic" ? strategicMerge(current, body) : mergePatch(current, body);
  return isRecord(out) ? out : {};
}

/** RFC 7386. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return wire(patch);
  const out: Doc = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function jsonPatch(current: Doc, body: unknown): Doc {
  if (!Array.isArray(body)) throw new KubeError(400, "BadRequest", "a json patch body must be a JSON array");
  try {
    return applyPatch(wire(current), body, true, true).newDocument as Doc;
  } catch {
    throw new KubeError(422, "Invalid", BARE_422);
  }
}

/** The approximation of strategic merge patch described in the header. */
export function strategicMerge(target: unknown, patch: unknown): unknown {
  if (Array.isArray(patch)) return mergeList(target, patch);
  if (!isRecord(patch)) return wire(patch);
  const { $patch: directive, ...rest } = patch;
  if (directive === "replace") return wire(rest);
  const out: Doc = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(rest)) {
    if (v === null) delete out[k];
    else out[k] = strategicMerge(out[k], v);
  }
  return out;
}

const named = (v: unknown): v is Doc & { name: string } => isRecord(v) && typeof v.name === "string";

function mergeList(target: unknown, patch: unknown[]): unknown[] {
  const replace = patch.some(e => isRecord(e) && e.$patch === "replace");
  if (replace) return wire(patch.filter(e => !(isRecord(e) && e.$patch === "replace")));
  const live = Array.isArray(target) ? target : [];
  if (!patch.every(named) || !live.every(named)) return wire(patch);
  const out = live.map(e => ({ ...e }));
  for (const e of patch) {
    const i = out.findIndex(x => x.name === e.name);
    if (e.$patch === "delete") {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) out[i] = strategicMerge(out[i], e) as Doc & { name: string };
    else out.push(strategicMerge({}, e) as Doc & { name: string });
  }
  return out;
}
