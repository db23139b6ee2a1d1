// The canonical change of an update-config (docs/authorization.md, "The change digest"): the keys
// to set, each with the SHA-256 of its value's bytes (never the value), and the keys to remove in
// the payload's order. The same for a ConfigMap and a Secret: the digest is of the value the agent
// wrote, before the operator base64-encodes it for a Secret. A value given by reference (a Secret's,
// ./ref.ts) enters as the digest of the source Secret's value, which the payload does not hold: the
// operator reads it, an agent passes the digest of the value it put there (`valueDigests`), and a
// referenced value digests to the same change as the same value given inline.
import { DIGEST_PATTERN, valueDigest } from "../lib/change-digest";
import { secretKeyRef } from "./ref";

export type ConfigChangeDigest = {
  data: Record<string, string>;
  remove: unknown[];
};

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** The digest of a referenced value: given, and well-formed. */
function referencedDigest(key: string, value: unknown, valueDigests: Readonly<Record<string, string>>): string {
  const ref = secretKeyRef(value);
  if (!ref)
    throw new Error(`update-config: the value of ${JSON.stringify(key)} is neither a string nor a secretKeyRef`);
  const digest = Object.hasOwn(valueDigests, key) ? valueDigests[key] : undefined;
  if (digest === undefined)
    throw new Error(
      `update-config: the value of ${JSON.stringify(key)} is key ${JSON.stringify(ref.key)} of Secret ${JSON.stringify(ref.name)}; ` +
        "its change needs that value's digest, sha256:<hex of its bytes> (a value digest for the key)",
    );
  if (typeof digest !== "string" || !DIGEST_PATTERN.test(digest))
    throw new Error(
      `update-config: the value digest of ${JSON.stringify(key)} must be sha256:<64 lowercase hex digits>`,
    );
  return digest;
}

/**
 * `{data: {key: "sha256:<hex of the value>"}, remove: [keys]}`; both always present.
 * `valueDigests`: the digest of each referenced value by data key (a digest for a key that is not
 * a reference is refused: it would not enter the change).
 */
export function changeOf(
  payload: Record<string, unknown> | undefined,
  valueDigests: Readonly<Record<string, string>> = {},
): ConfigChangeDigest {
  const data = isMap(payload?.data) ? payload.data : {};
  const stray = Object.keys(valueDigests).filter(k => !Object.hasOwn(data, k) || typeof data[k] === "string");
  if (stray.length)
    throw new Error(
      `update-config: value digests are for references only; the payload's data has no reference named ${stray.map(k => JSON.stringify(k)).join(", ")}`,
    );
  // fromEntries defines each key as an own property, "__proto__" included (a valid key).
  const digests = Object.fromEntries(
    Object.entries(data).map(([key, value]) => [
      key,
      typeof value === "string" ? valueDigest(value) : referencedDigest(key, value, valueDigests),
    ]),
  );
  return { data: digests, remove: Array.isArray(payload?.remove) ? [...(payload.remove as unknown[])] : [] };
}
