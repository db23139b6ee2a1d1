// The canonical change of an update-config (docs/authorization.md, "The change digest"): the keys
// to set, each with the SHA-256 of its value's UTF-8 bytes (never the value), and the keys to
// remove in the payload's order. The same for a ConfigMap and a Secret: the digest is of the value
// the agent wrote, before the operator base64-encodes it for a Secret.
import { valueDigest } from "../lib/change-digest";

export type ConfigChangeDigest = {
  data: Record<string, string>;
  remove: unknown[];
};

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** `{data: {key: "sha256:<hex of the value>"}, remove: [keys]}`; both always present. */
export function changeOf(payload: Record<string, unknown> | undefined): ConfigChangeDigest {
  const data = isMap(payload?.data) ? payload.data : {};
  // fromEntries defines each key as an own property, "__proto__" included (a valid key).
  const digests = Object.fromEntries(
    Object.entries(data).map(([key, value]) => {
      if (typeof value !== "string")
        throw new Error(`update-config: the value of ${JSON.stringify(key)} is not a string`);
      return [key, valueDigest(value)];
    }),
  );
  return { data: digests, remove: Array.isArray(payload?.remove) ? [...(payload.remove as unknown[])] : [] };
}
