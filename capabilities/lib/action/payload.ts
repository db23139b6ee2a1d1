// The payload checks every action shares, driven by its schema: the payload is an object (or
// absent when nothing is required) and names no field the action does not know. Messages name
// the field and the rule, and show keys from the agent escaped and shortened, never raw.
import type { PayloadSchema, RequiredFields } from ".";

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Text from an untrusted agent as a short JSON string (quotes included): printable, bounded. */
export function shown(text: string, max = 64): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}

function list(names: readonly string[], last: string): string {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} ${last} ${names[names.length - 1]}`;
}

function requiredPhrase(r: RequiredFields): string {
  if ("all" in r) return `with field${r.all.length > 1 ? "s" : ""} ${list(r.all, "and")}`;
  if ("any" in r) return `with field ${list(r.any, "and/or")}`;
  return `with field ${list(r.one, "or")}`;
}

/** What a payload that is not an object is told it should be. */
function expected(action: string, schema: PayloadSchema): string {
  if (schema.required) return requiredPhrase(schema.required);
  const fields = Object.keys(schema.fields);
  if (fields.length === 0) return `(action ${action} takes no fields)`;
  return `(optional field${fields.length > 1 ? "s" : ""} ${fields.join(", ")})`;
}

/**
 * The shared checks: undefined when the payload may be left out and is; otherwise the payload as
 * an object plus the messages for its shape and unknown keys (an action's own rules run on it).
 */
export function checkPayload(
  action: string,
  schema: PayloadSchema,
  payload: unknown,
): { payload: Record<string, unknown>; errors: string[] } | { errors: string[] } | undefined {
  if (payload === undefined && !schema.required) return undefined;
  if (!isRecord(payload)) return { errors: [`spec.payload: must be an object ${expected(action, schema)}`] };
  const allowed = Object.keys(schema.fields);
  const errors = Object.keys(payload)
    .filter(k => !allowed.includes(k))
    .map(
      k =>
        `spec.payload.${shown(k).slice(1, -1)}: not a field of action ${action} (allowed: ${allowed.join(", ") || "none"})`,
    );
  return { payload, errors };
}
