// The update-config action: merge payload.data into a ConfigMap or Secret and remove the keys in
// payload.remove, in one merge patch. Every value is treated as sensitive (a ConfigMap often holds
// a password someone put there by mistake): the broker, logs and messages see keys and sizes only.
import type { AgentTaskSpec } from "../../crds/agenttask";
import type { KubeObject, Plan, TaskContext, VerifyResult } from "../lib/action";
import { defineAction, isRecord, markerMetadata, shown } from "../lib/action/define";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { changeOf } from "./change";

const KEY = /^[-._a-zA-Z0-9]+$/;
/** Bound on keys plus values of one task: the API server's own limit for an object is 1 MiB. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Why `key` is not a valid ConfigMap/Secret key (IsConfigMapKey), or undefined. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0 || key.length > 253) return "must be 1 to 253 characters";
  if (!KEY.test(key)) return "must consist of alphanumeric characters, '-', '_' or '.'";
  if (key === "." || key === ".." || key.startsWith("..")) return "must not be '.' or '..' or start with '..'";
  return undefined;
}

function checkData(data: unknown, errors: string[]): number {
  if (data === undefined) return 0;
  if (!isRecord(data)) {
    errors.push("spec.payload.data: must be a map of string keys to string values");
    return 0;
  }
  let bytes = 0;
  for (const [key, value] of Object.entries(data)) {
    const problem = keyProblem(key);
    if (problem) errors.push(`spec.payload.data[${shown(key)}]: key ${problem}`);
    if (typeof value !== "string") errors.push(`spec.payload.data[${shown(key)}]: value must be a string`);
    else bytes += Buffer.byteLength(value, "utf8");
    bytes += Buffer.byteLength(key, "utf8");
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

function validate(payload: Record<string, unknown>): string[] {
  const errors: string[] = [];
  const bytes = checkData(payload.data, errors);
  checkRemove(payload.remove, isRecord(payload.data) ? payload.data : {}, errors);
  const setCount = isRecord(payload.data) ? Object.keys(payload.data).length : 0;
  const removeCount = Array.isArray(payload.remove) ? payload.remove.length : 0;
  if (setCount + removeCount === 0) errors.push("spec.payload: data or remove must name at least one key");
  if (bytes > MAX_CONFIG_BYTES)
    errors.push(`spec.payload.data: keys and values must total at most ${MAX_CONFIG_BYTES} bytes (got ${bytes})`);
  return errors;
}

interface ConfigChange {
  data: Record<string, string>;
  remove: string[];
}

function change(spec: AgentTaskSpec): ConfigChange {
  const p = spec.payload ?? {};
  return {
    data: (isRecord(p.data) ? p.data : {}) as Record<string, string>,
    remove: Array.isArray(p.remove) ? (p.remove as string[]) : [],
  };
}

/** The value as the API stores it: Secrets hold base64 in `data` (the upstream bug wrote it raw). */
function stored(kind: string, value: string): string {
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

function plan(ctx: TaskContext, target: KubeObject): Plan {
  const { kind, name, namespace } = ctx.spec.target;
  if (target.immutable === true) {
    throw new AtbError(
      "TASK_INVALID",
      `${kind} ${name} is immutable; its data cannot be changed (replace the object instead)`,
    );
  }
  const c = change(ctx.spec);
  const existing = new Set([...Object.keys(target.data ?? {}), ...Object.keys((target.binaryData ?? {}) as object)]);
  const sizes = Object.fromEntries(Object.entries(c.data).map(([k, v]) => [k, Buffer.byteLength(v, "utf8")]));
  return {
    // Keys with the digests of their values (./change.ts), never the values.
    params: changeOf(ctx.spec.payload),
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

/** Keys (never values) that differ from what the task asked for. */
export function mismatchedKeys(kind: string, obj: KubeObject, c: ConfigChange): string[] {
  const data = obj.data ?? {};
  const binary = (obj.binaryData ?? {}) as Record<string, unknown>;
  const wrong = Object.entries(c.data)
    .filter(([k, v]) => data[k] !== stored(kind, v))
    .map(([k]) => k);
  return wrong.concat(c.remove.filter(k => Object.hasOwn(data, k) || Object.hasOwn(binary, k)));
}

function verify(ctx: TaskContext, obj: KubeObject): VerifyResult {
  const { kind, name } = ctx.spec.target;
  const wrong = mismatchedKeys(kind, obj, change(ctx.spec));
  if (wrong.length) {
    return {
      state: "failed",
      reason: "TargetChanged",
      message: `${kind} ${name}: keys ${wrong.slice(0, 10).join(", ")} are not as requested (changed by someone else after the write)`,
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
      data: { type: "object", description: "keys to set (string values)", additionalProperties: { type: "string" } },
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
      "merges `data` (strings) and removes `remove` keys; Secret values are stored base64-encoded; values never reach logs, events, status or the broker (keys, sizes and SHA-256 digests only)",
  },
  admission: "valid keys, bounded size, no key both set and removed",
  validate,
  plan,
  verify,
});
