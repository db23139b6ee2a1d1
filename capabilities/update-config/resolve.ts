// The values a Secret's update-config names by reference (./ref.ts), read when the change is
// planned (and again when it is verified): one GET per distinct source Secret, in the target's
// namespace, through the same client as the target (ctx.kube). The bytes go into the write and,
// as their SHA-256, into the canonical change; nothing else sees them. A missing source Secret or
// key fails the task with SecretRefNotFound, naming the field, the Secret and the key, never a value.
import type { KubeObject } from "../lib/action";
import { shown } from "../lib/action/payload";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { secretKeyRef, type SecretKeyRef } from "./ref";

/** GET of an object by path; undefined when it does not exist. */
export type ObjectReader = (path: string) => Promise<KubeObject | undefined>;

/** Where readReferences may look, and what it does when a source is missing. */
export interface ReadOptions {
  /**
   * An object already read (the target: a key of the target copied to another of its keys costs
   * no second GET and sees the same version).
   */
  known?: KubeObject;
  /** "skip": leave out keys whose source Secret or key does not exist (verify) instead of throwing. */
  missing?: "throw" | "skip";
}

/** Each referenced value's bytes, by data key. */
export async function readReferences(
  get: ObjectReader,
  namespace: string,
  data: Record<string, unknown>,
  { known, missing = "throw" }: ReadOptions = {},
): Promise<Map<string, Buffer>> {
  const refs = Object.entries(data).flatMap(([k, v]): [string, SecretKeyRef][] => {
    const ref = secretKeyRef(v);
    return ref ? [[k, ref]] : [];
  });
  const names = [...new Set(refs.map(([, r]) => r.name))];
  const read = await Promise.all(
    names.map(name => (known?.metadata.name === name ? known : get(resourcePath("Secret", namespace, name)))),
  );
  const sources = new Map(names.map((name, i) => [name, read[i]]));
  const values = new Map<string, Buffer>();
  const absent: string[] = [];
  for (const [key, ref] of refs) {
    const field = `spec.payload.data[${shown(key)}].valueFrom.secretKeyRef`;
    const source = sources.get(ref.name);
    const stored = (source?.data ?? {}) as Record<string, unknown>;
    const value = Object.hasOwn(stored, ref.key) ? stored[ref.key] : undefined;
    if (!source) absent.push(`${field}: Secret ${namespace}/${ref.name} does not exist`);
    else if (typeof value !== "string")
      absent.push(`${field}: Secret ${namespace}/${ref.name} has no key ${shown(ref.key)}`);
    else values.set(key, Buffer.from(value, "base64"));
  }
  if (absent.length && missing === "throw") throw new AtbError("SECRET_REF_NOT_FOUND", absent.join("; "));
  return values;
}
