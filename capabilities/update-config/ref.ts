// A Secret's values by reference (issue 14): an update-config of a Secret names, for each key, a
// key of another Secret (the source) in the target's namespace, in the shape a container's
// env[].valueFrom has: `{"valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}`.
// The value itself never enters the AgentTask (which is not encrypted at rest, is readable by
// whoever reads tasks and outlives the change), its status, Events, logs or the broker's request;
// the operator reads it when it plans the change (./resolve.ts), and the canonical change carries
// its SHA-256 exactly as it carries an inline value's (./change.ts). A ConfigMap takes inline
// strings only: a reference would copy a Secret's value into an object that is not secret.
// Pure shape rules here, shared by admission, the canonical change and the clients' tools.
import { isRecord, shown } from "../lib/action/payload";

export interface SecretKeyRef {
  /** The source Secret, in the target's namespace. */
  name: string;
  /** The key of the source Secret whose value is written. */
  key: string;
}

/** The reference form, as admission messages show it. */
export const REFERENCE_FORM =
  '{"valueFrom": {"secretKeyRef": {"name": "<a Secret in the target\'s namespace>", "key": "<its key>"}}}';

const KEY = /^[-._a-zA-Z0-9]+$/;
const DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS_SUBDOMAIN = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);

/** Why `key` is not a valid ConfigMap/Secret key (Kubernetes' IsConfigMapKey), or undefined. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0 || key.length > 253) return "must be 1 to 253 characters";
  if (!KEY.test(key)) return "must consist of alphanumeric characters, '-', '_' or '.'";
  if (key === "." || key === ".." || key.startsWith("..")) return "must not be '.' or '..' or start with '..'";
  return undefined;
}

/** Why `name` is not a valid Secret name (a DNS-1123 subdomain, as Kubernetes validates it), or undefined. */
export function secretNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.length > 253) return "must be 1 to 253 characters";
  if (!DNS_SUBDOMAIN.test(name))
    return "must be a lowercase RFC 1123 subdomain (lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character)";
  return undefined;
}

/** The reference a data value holds, when it has the reference's shape (strings inside); else undefined. */
export function secretKeyRef(value: unknown): SecretKeyRef | undefined {
  if (!isRecord(value) || !isRecord(value.valueFrom)) return undefined;
  const ref = value.valueFrom.secretKeyRef;
  if (!isRecord(ref) || typeof ref.name !== "string" || typeof ref.key !== "string") return undefined;
  return { name: ref.name, key: ref.key };
}

/** Whether a data value is meant as a reference (an object), whatever is wrong with it. */
export const isReference = (value: unknown): boolean => isRecord(value);

/** Members of `obj` other than `allowed`, as messages for the field at `path`. */
function unknownMembers(obj: Record<string, unknown>, allowed: string[], path: string): string[] {
  return Object.keys(obj)
    .filter(k => !allowed.includes(k))
    .map(k => `${path}.${shown(k).slice(1, -1)}: not a field of a Secret reference (allowed: ${allowed.join(", ")})`);
}

/**
 * The problems of a reference at `path` (`spec.payload.data["password"]`): exactly
 * `{valueFrom: {secretKeyRef: {name, key}}}`, a valid Secret name and key. Never echoes a value.
 */
export function referenceProblems(value: Record<string, unknown>, path: string): string[] {
  const form = `must be ${REFERENCE_FORM}`;
  const errors = unknownMembers(value, ["valueFrom"], path);
  const from = value.valueFrom;
  if (!isRecord(from)) return [...errors, `${path}.valueFrom: ${form}`];
  errors.push(...unknownMembers(from, ["secretKeyRef"], `${path}.valueFrom`));
  const ref = from.secretKeyRef;
  const refPath = `${path}.valueFrom.secretKeyRef`;
  if (!isRecord(ref)) return [...errors, `${refPath}: ${form}`];
  errors.push(...unknownMembers(ref, ["name", "key"], refPath));
  const name =
    typeof ref.name === "string" ? secretNameProblem(ref.name) : "is required (a string: the source Secret's name)";
  if (name) errors.push(`${refPath}.name: ${name}`);
  const key = typeof ref.key === "string" ? keyProblem(ref.key) : "is required (a string: the source Secret's key)";
  if (key) errors.push(`${refPath}.key: ${key}`);
  return errors;
}

/** The data keys whose values are references (in the payload's order). */
export function referencedKeys(data: unknown): string[] {
  return isRecord(data) ? Object.keys(data).filter(k => isReference(data[k])) : [];
}
