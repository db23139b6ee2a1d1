// The change digest a PoA binds (docs/authorization.md, "The change digest"): the SHA-256 of the
// RFC 8785 (JCS) canonical JSON of the action's canonical change, written `sha256:<64 hex>`. The
// operator sends the canonical change as the decide request's params; the broker computes this
// digest from them and the policy compares it with the token's `con.change_sha256`. Agents compute
// the same digest before they ask for a token (clients/, `npm run poa -- digest`), so the token
// names exactly one change. Secret values never enter a change: only their own digest does
// (valueDigest), so the change can be shown to approvers and the broker.
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";

export const DIGEST_PREFIX = "sha256:";
export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

/**
 * RFC 8785 canonical JSON. Refuses what has no JSON form (undefined, functions, symbols, NaN,
 * Infinity, BigInt) instead of silently dropping or nulling it: two different changes must never
 * share a digest because one of them did not serialise.
 */
export function canonicalJson(value: unknown): string {
  assertJson(value, "change");
  const text = canonicalize(value);
  if (text === undefined) throw new Error("change: has no JSON form");
  return text;
}

/** `sha256:<hex>` of the canonical JSON of a change. */
export function changeDigest(change: unknown): string {
  return DIGEST_PREFIX + createHash("sha256").update(canonicalJson(change), "utf8").digest("hex");
}

/** `sha256:<hex>` of one value's UTF-8 bytes: how a Secret or ConfigMap value enters a change. */
export function valueDigest(value: string): string {
  return DIGEST_PREFIX + createHash("sha256").update(value, "utf8").digest("hex");
}

/** `sha256:<hex>` of a value's bytes: a Secret's value read by reference (valueDigest of its text when it is UTF-8). */
export function bytesDigest(bytes: Uint8Array): string {
  return DIGEST_PREFIX + createHash("sha256").update(bytes).digest("hex");
}

function assertJson(v: unknown, path: string, depth = 0): void {
  if (depth > 64) throw new Error(`${path}: nested deeper than 64 levels`);
  if (v === null || typeof v === "string" || typeof v === "boolean") return;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`${path}: ${v} has no JSON form`);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((x, i) => assertJson(x, `${path}[${i}]`, depth + 1));
    return;
  }
  if (typeof v === "object" && isPlainObject(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) assertJson(x, `${path}.${k}`, depth + 1);
    return;
  }
  throw new Error(`${path}: a ${typeof v} has no JSON form`);
}

/**
 * A plain object of any realm: its prototype is null or an Object.prototype (whose own prototype
 * is null). Objects made in another realm (a vm context, jest's test sandbox) are plain too; a
 * Date, Map, class instance or boxed primitive is not.
 */
function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as object | null;
  return proto === null || Object.getPrototypeOf(proto) === null;
}
