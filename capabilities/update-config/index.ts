// The update-config action: merge payload.data into a ConfigMap or Secret and remove the keys in
// payload.remove, in one merge patch. Every value is treated as sensitive (a ConfigMap often holds
// a password someone put there by mistake): the broker, logs and messages see keys and sizes only.
// A Secret's values are never in the task at all: each is a reference to a key of a source Secret
// in the target's namespace (./ref.ts), read when the change is planned (./resolve.ts).
import type { AgentTaskSpec } from "../../crds/agenttask";
import type { KubeObject, Plan, TaskContext, VerifyResult } from "../lib/action";
import { defineAction, isRecord, markerMetadata, shown } from "../lib/action/define";
import { bytesDigest } from "../lib/change-digest";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { changeOf } from "./change";
import { isReference, keyProblem, REFERENCE_FORM, referenceProblems, secretKeyRef } from "./ref";
import { readReferences } from "./resolve";

export { keyProblem } from "./ref";

/** Bound on keys plus values of one task: the API server's own limit for an object is 1 MiB. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Why an inline value is refused for a Secret: the message shows the reference form. */
const INLINE_SECRET_VALUE =
  "a Secret's values are given by reference, never inline (an inline value would be stored in the AgentTask, " +
  `which is not a Secret): use ${REFERENCE_FORM}`;
const REFERENCE_IN_CONFIGMAP =
  "must be a string: a ConfigMap's values are given inline, a reference to a Secret is refused " +
  "(it would copy the Secret's value into a ConfigMap, which is not secret)";

/** The problems of one data value for the target's kind; returns its size as admission can know it. */
function checkValue(kind: string | undefined, key: string, value: unknown, errors: string[]): number {
  const field = `spec.payload.data[${shown(key)}]`;
  if (kind === "Secret") {
    if (isRecord(value)) {
      errors.push(...referenceProblems(value, field));
      return Buffer.byteLength(JSON.stringify(value), "utf8");
    }
    errors.push(`${field}: ${INLINE_SECRET_VALUE}`);
    return 0;
  }
  if (typeof value === "string") return Buffer.byteLength(value, "utf8");
  errors.push(`${field}: ${isReference(value) ? REFERENCE_IN_CONFIGMAP : "value must be a string"}`);
  return 0;
}

function checkData(data: unknown, kind: string | undefined, errors: string[]): number {
  if (data === undefined) return 0;
  if (!isRecord(data)) {
    errors.push(
      kind === "Secret"
        ? "spec.payload.data: must be a map of keys to references to a Secret's keys"
        : "spec.payload.data: must be a map of string keys to string values",
    );
    return 0;
  }
  let bytes = 0;
  for (const [key, value] of Object.entries(data)) {
    const problem = keyProblem(key);
    if (problem) errors.push(`spec.payload.data[${shown(key)}]: key ${problem}`);
    bytes += checkValue(kind, key, value, errors) + Buffer.byteLength(key, "utf8");
  }
  return bytes;
}

function checkRemove(remove: unknown, data: Record<string, unknown>, errors: string[]): void {
  if (remove === undefined) return;
  if (!Array.isArray(remove)) {
    errors.push("spec.payload.remove: must be a list of keys");
    return;
  }
  remove.forEach((key: unknown, i) => {
    const problem = typeof key === "string" ? keyProblem(key) : "must be a string";
    if (problem) errors.push(`spec.payload.remove[${i}]: key ${problem}`);
    if (typeof key === "string" && Object.hasOwn(data, key)) {
      errors.push(`spec.payload.remove[${i}]: key ${shown(key)} is also set in spec.payload.data`);
    }
  });
}

function validate(payload: Record<string, unknown>, spec: AgentTaskSpec): string[] {
  const errors: string[] = [];
  const kind = (spec as Partial<AgentTaskSpec> | null | undefined)?.target?.kind;
  const bytes = checkData(payload.data, kind, errors);
  checkRemove(payload.remove, isRecord(payload.data) ? payload.data : {}, errors);
  const setCount = isRecord(payload.data) ? Object.keys(payload.data).length : 0;
  const removeCount = Array.isArray(payload.remove) ? payload.remove.length : 0;
  if (setCount + removeCount === 0) errors.push("spec.payload: data or remove must name at least one key");
  if (bytes > MAX_CONFIG_BYTES)
    errors.push(`spec.payload.data: keys and values must total at most ${MAX_CONFIG_BYTES} bytes (got ${bytes})`);
  return errors;
}

/** A value to write: an inline string as the agent wrote it, or a referenced Secret value's bytes. */
type Value = string | Buffer;

interface ConfigChange {
  data: Record<string, Value>;
  remove: string[];
  /** Verify only: referenced keys whose source Secret or key is gone, checked for presence only. */
  sourceGone?: string[];
}

/**
 * The change with every value in hand: inline strings as given, references read from their
 * source Secrets (one GET each, in the target's namespace; `target` itself when it is the source).
 * A missing source fails the plan (SecretRefNotFound); for verify (`missing: "skip"`) its key is
 * listed in `sourceGone` instead: the source may be deleted once its value is written, or be a key
 * of the target that the same task removes (a rename).
 */
async function resolved(
  ctx: TaskContext,
  target: KubeObject,
  missing: "throw" | "skip" = "throw",
): Promise<ConfigChange> {
  const p = ctx.spec.payload ?? {};
  const given = isRecord(p.data) ? p.data : {};
  const { kind, namespace } = ctx.spec.target;
  // Admission refuses these; should one get here anyway, nothing is read or written for it (and
  // no Secret is ever read for a ConfigMap).
  const bad = Object.keys(given).find(
    k => typeof given[k] !== "string" && (kind !== "Secret" || !secretKeyRef(given[k])),
  );
  if (bad !== undefined) {
    const rule = kind === "Secret" ? `must be ${REFERENCE_FORM}` : REFERENCE_IN_CONFIGMAP;
    throw new AtbError("TASK_INVALID", `spec.payload.data[${shown(bad)}]: ${rule}`);
  }
  const refs = await readReferences(path => ctx.kube.get<KubeObject>(path), namespace, given, {
    known: target,
    missing,
  });
  const gone = Object.keys(given).filter(k => typeof given[k] !== "string" && !refs.has(k));
  // fromEntries keeps a "__proto__" key as an own property.
  const data = Object.fromEntries(
    Object.entries(given)
      .filter(([k]) => !gone.includes(k))
      .map(([k, v]): [string, Value] => [k, refs.get(k) ?? (v as string)]),
  );
  return { data, remove: Array.isArray(p.remove) ? (p.remove as string[]) : [], sourceGone: gone };
}

const sizeOf = (v: Value): number => (typeof v === "string" ? Buffer.byteLength(v, "utf8") : v.length);

/**
 * The value as the API stores it: Secrets hold base64 in `data` (the upstream bug wrote it raw); a
 * referenced value's bytes are copied as they are.
 */
function stored(kind: string, value: Value): string {
  if (typeof value !== "string") return value.toString("base64");
  return kind === "Secret" ? Buffer.from(value, "utf8").toString("base64") : value;
}

function patchBody(kind: string, target: KubeObject, c: ConfigChange, uid: string): Record<string, unknown> {
  const data: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(c.data)) data[k] = stored(kind, v);
  // Merge patch semantics: null deletes a key. Only keys that exist are named, so a removal of an
  // absent key is a no-op instead of creating an empty map.
  const binary: Record<string, null> = {};
  const binaryData = (target.binaryData ?? {}) as Record<string, unknown>;
  for (const k of c.remove) {
    if (target.data && Object.hasOwn(target.data, k)) data[k] = null;
    if (Object.hasOwn(binaryData, k)) binary[k] = null;
  }
  const body: Record<string, unknown> = { metadata: markerMetadata(target, uid) };
  if (Object.keys(data).length) body.data = data;
  if (Object.keys(binary).length) body.binaryData = binary;
  return body;
}

/** The digests of the referenced values, by key: what the canonical change carries for them. */
function referencedDigests(c: ConfigChange): Record<string, string> {
  return Object.fromEntries(
    Object.entries(c.data).flatMap(([k, v]) => (typeof v === "string" ? [] : [[k, bytesDigest(v)]])),
  );
}

async function plan(ctx: TaskContext, target: KubeObject): Promise<Plan> {
  const { kind, name, namespace } = ctx.spec.target;
  if (target.immutable === true) {
    throw new AtbError(
      "TASK_INVALID",
      `${kind} ${name} is immutable; its data cannot be changed (replace the object instead)`,
    );
  }
  // The values written are the ones read here: the judged plan's write carries them, and a re-plan
  // (after a conflict) reads them again, so a source that changed since changes the params below.
  const c = await resolved(ctx, target);
  const existing = new Set([...Object.keys(target.data ?? {}), ...Object.keys((target.binaryData ?? {}) as object)]);
  const sizes = Object.fromEntries(Object.entries(c.data).map(([k, v]) => [k, sizeOf(v)]));
  const total = Object.entries(sizes).reduce((n, [k, size]) => n + size + Buffer.byteLength(k, "utf8"), 0);
  if (total > MAX_CONFIG_BYTES)
    throw new AtbError(
      "TASK_INVALID",
      `spec.payload.data: keys and values must total at most ${MAX_CONFIG_BYTES} bytes (got ${total} with the referenced values)`,
    );
  return {
    // Keys with the digests of their values (./change.ts), never the values; a referenced value's
    // digest is that of the bytes just read, as an inline value's is of its text.
    params: changeOf(ctx.spec.payload, referencedDigests(c)),
    context: {
      kind,
      valueSizes: sizes,
      secretType: kind === "Secret" ? (target.type ?? "Opaque") : undefined,
      existingKeyCount: existing.size,
      keysAdded: Object.keys(c.data).filter(k => !existing.has(k)),
      keysOverwritten: Object.keys(c.data).filter(k => existing.has(k)),
      keysRemovedExisting: c.remove.filter(k => existing.has(k)),
    },
    write: {
      method: "PATCH",
      path: resourcePath(kind, namespace, name),
      patchType: "merge",
      body: patchBody(kind, target, c, ctx.uid),
    },
    retryOnConflict: true,
  };
}

/**
 * Keys (never values) that differ from what the task asked for: referenced values as their sources
 * hold them now; a key whose source is gone only has to be there.
 */
export function mismatchedKeys(kind: string, obj: KubeObject, c: ConfigChange): string[] {
  const data = obj.data ?? {};
  const binary = (obj.binaryData ?? {}) as Record<string, unknown>;
  const wrong = Object.entries(c.data)
    .filter(([k, v]) => data[k] !== stored(kind, v))
    .map(([k]) => k);
  // A key whose source is gone (deleted after the write, or renamed by this task) only has to be there.
  const absent = (c.sourceGone ?? []).filter(k => !Object.hasOwn(data, k));
  return wrong.concat(
    absent,
    c.remove.filter(k => Object.hasOwn(data, k) || Object.hasOwn(binary, k)),
  );
}

async function verify(ctx: TaskContext, obj: KubeObject): Promise<VerifyResult> {
  const { kind, name } = ctx.spec.target;
  const wrong = mismatchedKeys(kind, obj, await resolved(ctx, obj, "skip"));
  if (wrong.length) {
    const sources = Object.values(ctx.spec.payload?.data ?? {}).some(isReference) ? ", or their source Secret" : "";
    return {
      state: "failed",
      reason: "TargetChanged",
      message: `${kind} ${name}: keys ${wrong.slice(0, 10).join(", ")} are not as requested (changed by someone else after the write${sources})`,
    };
  }
  return { state: "done", message: `${kind} ${name} updated` };
}

export const UpdateConfigAction = defineAction({
  action: "update-config",
  kinds: ["ConfigMap", "Secret"],
  tier: "MEDIUM",
  payload: {
    fields: {
      // A string (ConfigMap) or a reference object (Secret): no single type, so the API server
      // keeps the values as given and the action's validate() checks them at admission.
      data: {
        type: "object",
        description:
          "keys to set: a ConfigMap's as strings, a Secret's only by reference, {valueFrom: {secretKeyRef: {name, key}}} to a Secret in the target's namespace",
        "x-kubernetes-preserve-unknown-fields": true,
      },
      remove: {
        type: "array",
        description: "keys to remove",
        items: { type: "string", maxLength: 253 },
        maxItems: 1000,
      },
    },
    required: { any: ["data", "remove"] },
  },
  docs: {
    summary:
      "merges `data` and removes `remove` keys; a ConfigMap's values are strings, a Secret's only references to a key of another Secret in its namespace (`valueFrom.secretKeyRef`, read when the change is planned; inline values refused), so no Secret value is ever in a task; values never reach logs, events, status or the broker (keys, sizes and SHA-256 digests only)",
  },
  admission: "valid keys, bounded size, no key both set and removed, Secret values by reference only",
  validate,
  plan,
  verify,
});
