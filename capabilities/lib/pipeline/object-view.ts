// What the broker's policy sees of the target before the change and of the object the server-side
// dry run says would be stored (`context.before` / `context.after`): the policy judges the result,
// not the agent's summary of it (docs/authorization.md, "What the policy judges"). Identity,
// labels, annotations, owners, finalizers and the spec go as they are; values of ConfigMaps and
// Secrets never do (each becomes the SHA-256 of its bytes), nor do status, managedFields or
// kubectl's last-applied copy (which can hold a whole Secret).
import { createHash } from "node:crypto";
import type { KubeObject } from "../action";
import { isRecord } from "../action/payload";

/** Annotations that repeat an object's content; they could carry Secret values. */
const DROPPED_ANNOTATIONS = ["kubectl.kubernetes.io/last-applied-configuration"];
const VALUE_FIELDS = ["data", "stringData", "binaryData"] as const;

export type ObjectView = Record<string, unknown>;

const sha256 = (bytes: Buffer): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** Each value as the digest of its bytes (Secret data and binaryData are base64 on the wire). */
function digests(kind: string | undefined, field: string, values: unknown): Record<string, string> | undefined {
  if (!isRecord(values)) return undefined;
  const base64 = field === "binaryData" || (kind === "Secret" && field === "data");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    const text = typeof v === "string" ? v : (JSON.stringify(v) ?? "");
    out[k] = sha256(base64 ? Buffer.from(text, "base64") : Buffer.from(text, "utf8"));
  }
  return out;
}

function metadataView(m: KubeObject["metadata"]): Record<string, unknown> {
  const annotations = Object.fromEntries(
    Object.entries(m.annotations ?? {}).filter(([k]) => !DROPPED_ANNOTATIONS.includes(k)),
  );
  const out: Record<string, unknown> = { name: m.name, namespace: m.namespace ?? null };
  out.labels = m.labels ?? {};
  out.annotations = annotations;
  if (m.ownerReferences !== undefined) out.ownerReferences = m.ownerReferences;
  if (m.finalizers !== undefined) out.finalizers = m.finalizers;
  return out;
}

/** The parts of an object the policy judges; null for an object that does not exist. */
export function objectView(obj: KubeObject | undefined | null, kind?: string): ObjectView | null {
  if (!obj || !isRecord(obj) || !isRecord(obj.metadata)) return null;
  const k = obj.kind ?? kind;
  const view: ObjectView = { kind: k ?? null, metadata: metadataView(obj.metadata) };
  if (obj.spec !== undefined) view.spec = obj.spec;
  for (const f of VALUE_FIELDS) {
    const d = digests(k, f, obj[f]);
    if (d) view[f] = d;
  }
  if (typeof obj.type === "string") view.type = obj.type;
  if (typeof obj.immutable === "boolean") view.immutable = obj.immutable;
  return view;
}
