// RFC 6902 operations from an untrusted agent: parsing (an array, or a JSON string of one as the
// upstream example sends it), shape checks (fast-json-patch's validator), the size bound, and the
// paths no agent may touch: identity, ownership, server-managed fields, status and our marker.
import { validate as validateOps, type Operation } from "fast-json-patch";
import { ANNOTATION_APPLIED_BY } from "../../crds/agenttask";
import { ANNOTATION_APPLIED_TASKS } from "../lib/action/marker";

export type Op = Operation & { from?: string; value?: unknown };

/** Protected JSON pointers, as decoded segments. */
const PROTECTED: readonly string[][] = [
  ["apiVersion"],
  ["kind"],
  ["metadata", "name"],
  ["metadata", "namespace"],
  ["metadata", "uid"],
  ["metadata", "ownerReferences"],
  ["metadata", "managedFields"],
  ["metadata", "resourceVersion"],
  ["metadata", "annotations", ANNOTATION_APPLIED_BY],
  ["metadata", "annotations", ANNOTATION_APPLIED_TASKS],
  ["status"],
];

/** RFC 6901 pointer → segments; undefined for a malformed pointer. */
export function pointerSegments(pointer: string): string[] | undefined {
  if (pointer === "") return [];
  if (!pointer.startsWith("/") || /~(?![01])/.test(pointer)) return undefined;
  return pointer
    .slice(1)
    .split("/")
    .map(s => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/** One path lies inside the other (or they are equal): changing either affects both. */
export function overlaps(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function show(pointer: string): string {
  return JSON.stringify(pointer.length > 120 ? `${pointer.slice(0, 120)}...` : pointer);
}

function protectedProblem(pointer: unknown, field: string, where: string): string | undefined {
  if (typeof pointer !== "string") return undefined;
  const segs = pointerSegments(pointer);
  if (!segs) return `${where}.${field}: ${show(pointer)} is not a valid JSON pointer (RFC 6901)`;
  const hit = PROTECTED.find(p => overlaps(p, segs));
  if (!hit) return undefined;
  return `${where}.${field}: ${show(pointer)} touches /${hit.join("/")}, which a patch may not change`;
}

/** Checks one operation; messages never include the operation's value. */
function checkOp(op: unknown, i: number): string[] {
  const where = `spec.payload.patch[${i}]`;
  let shape: Error | undefined;
  try {
    shape = validateOps([op as Operation]);
  } catch {
    shape = new Error("operation cannot be checked");
  }
  // The first line only: fast-json-patch appends the whole operation (and its value) below it.
  if (shape) return [`${where}: ${shape.message.split("\n")[0]}`];
  const o = op as Op;
  return [protectedProblem(o.path, "path", where), protectedProblem(o.from, "from", where)].filter(
    (m): m is string => !!m,
  );
}

export interface ParsedPatch {
  ops: Op[];
  errors: string[];
  bytes: number;
}

function byteSize(v: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(v) ?? "", "utf8");
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}

/** Parses and checks payload.patch; `errors` empty means every operation may be sent. */
export function parsePatch(raw: unknown, maxBytes: number): ParsedPatch {
  const bytes = typeof raw === "string" ? Buffer.byteLength(raw, "utf8") : byteSize(raw);
  const fail = (msg: string): ParsedPatch => ({ ops: [], errors: [msg], bytes });
  if (raw === undefined)
    return fail("spec.payload.patch: is required (an array of RFC 6902 operations, or a JSON string of one)");
  if (bytes > maxBytes)
    return fail(`spec.payload.patch: must be at most ${maxBytes} bytes (ATB_MAX_PATCH_BYTES; got ${bytes})`);
  let value: unknown = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch {
      return fail("spec.payload.patch: the string is not valid JSON (expected a JSON array of RFC 6902 operations)");
    }
  }
  if (!Array.isArray(value))
    return fail("spec.payload.patch: must be an array of RFC 6902 operations, or a JSON string of one");
  if (value.length === 0) return fail("spec.payload.patch: must contain at least one operation");
  const errors = value.flatMap((op: unknown, i) => checkOp(op, i));
  return { ops: errors.length ? [] : (value as Op[]), errors, bytes };
}

/** Whether any operation changes the pod template (so the change needs a rollout). */
export function touchesPodTemplate(ops: readonly Op[]): boolean {
  const template = ["spec", "template"];
  return ops.some(o => {
    if (o.op === "test") return false;
    const paths = o.op === "move" ? [o.path, o.from] : [o.path];
    return paths.some(p => {
      const segs = typeof p === "string" ? pointerSegments(p) : undefined;
      return segs !== undefined && overlaps(segs, template);
    });
  });
}
