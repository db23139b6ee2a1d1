// Approver attestations: a compact JWS signed with an approver's own key (configured at the
// broker with the approver's id and roles), header typ `atb-attestation+jwt`, claims
//   {approver, roles?, change_sha256, poa_jti? , task_uid?, iat, exp, nbf?}
// carried in the PoA's leg.attestations or in the decide body's `attestations`. One counts as an
// approval by that approver only when its signature verifies with that approver's key, it is
// within its lifetime (clock skew allowed, exp - iat at most the configured maximum), its
// change_sha256 is the digest of the change being decided, and its binding matches: poa_jti the
// token's jti and/or task_uid the task's uid (context.task.uid), at least one of them. Its roles
// are those it claims that the approver's configuration grants. Anything else is listed as
// ignored with why.
import { decodeJwt, decodeProtectedHeader, type JWSHeaderParameters } from "jose";
import { approverKey, displayId } from "./approver-id";
import type { Approval, Collected, IgnoredApproval } from "./approvals";
import type { KeySet } from "./keys";
import { POA_ALGS, type PoaAlg } from "./poa";
import type { Approver } from "./trust";

export const ATTESTATION_TYP = "atb-attestation+jwt";
/** Attestations judged per request (PoA and body together); the rest is listed as too_many. */
export const MAX_ATTESTATIONS = 16;
const MAX_ATTESTATION_CHARS = 8 * 1024;

export interface AttestationContext {
  /** The digest of the change being decided; null when it has none. */
  changeSha256: string | null;
  poaJti: string;
  taskUid?: string;
  nowS: number;
  clockSkewS: number;
  maxLifetimeS: number;
}

export interface ApproverKeys {
  approver: Approver;
  keys: KeySet;
}

type Judged = { ok: true; approval: Approval; note?: IgnoredApproval } | { ok: false; ignored: IgnoredApproval };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const ignore = (id: string | null, why: string): Judged => ({ ok: false, ignored: { source: "attestation", id, why } });

/** Header and claimed approver, unverified: only to pick the keys to verify with. */
function peek(item: unknown): { header: JWSHeaderParameters; approver: unknown } | null {
  if (typeof item !== "string" || item.length > MAX_ATTESTATION_CHARS || item.split(".").length !== 3) return null;
  try {
    return { header: decodeProtectedHeader(item), approver: decodeJwt(item).approver };
  } catch {
    return null;
  }
}

function lifetimeProblem(c: Record<string, unknown>, ctx: AttestationContext): string | null {
  const { iat, exp, nbf } = c;
  if (typeof iat !== "number" || typeof exp !== "number") return "lifetime_invalid";
  if (exp <= iat || exp - iat > ctx.maxLifetimeS) return "lifetime_invalid";
  if (exp <= ctx.nowS - ctx.clockSkewS) return "expired";
  if (iat > ctx.nowS + ctx.clockSkewS) return "not_yet_valid";
  if (typeof nbf === "number" && nbf > ctx.nowS + ctx.clockSkewS) return "not_yet_valid";
  return null;
}

function bindingProblem(c: Record<string, unknown>, ctx: AttestationContext): string | null {
  const jti = c.poa_jti;
  const task = c.task_uid;
  if (jti === undefined && task === undefined) return "binding_missing";
  if (jti !== undefined && jti !== ctx.poaJti) return "binding_mismatch";
  if (task !== undefined && (ctx.taskUid === undefined || task !== ctx.taskUid)) return "binding_mismatch";
  return null;
}

function claimedRoles(c: Record<string, unknown>): string[] {
  return Array.isArray(c.roles)
    ? c.roles.filter((r): r is string => typeof r === "string").map(r => r.toLowerCase())
    : [];
}

function accepted(claims: Record<string, unknown>, a: Approver): Judged {
  const claimed = claimedRoles(claims);
  const roles = [...new Set(claimed.filter(r => a.roles.includes(r)))];
  const refused = [...new Set(claimed.filter(r => !a.roles.includes(r)))];
  const approval: Approval = {
    id: a.key,
    raw_id: displayId(a.id)!,
    source: "attestation",
    roles,
    exp: claims.exp as number,
    vouched_by: `approver:${displayId(a.id)}`,
  };
  if (refused.length === 0) return { ok: true, approval };
  return { ok: true, approval, note: { source: "attestation", id: a.key, why: "role_not_granted", roles: refused } };
}

/** The verified claims of an attestation by this approver, or why there are none. */
async function verifiedClaims(
  item: string,
  header: JWSHeaderParameters,
  found: ApproverKeys,
): Promise<{ claims: Record<string, unknown> } | { why: string }> {
  if (typeof header.typ !== "string" || header.typ.toLowerCase() !== ATTESTATION_TYP)
    return { why: "attestation_type_invalid" };
  if (!(POA_ALGS as readonly unknown[]).includes(header.alg)) return { why: "signature_invalid" };
  let claims: unknown;
  try {
    const match = await found.keys.verify(item, { ...header, alg: header.alg as PoaAlg });
    if (match.status !== "verified") return { why: "signature_invalid" };
    claims = JSON.parse(new TextDecoder().decode(match.payload));
  } catch {
    return { why: "attestation_malformed" };
  }
  // The approver the signature vouches for must be the one whose key verified it.
  if (!isRecord(claims) || approverKey(claims.approver) !== found.approver.key) return { why: "attestation_malformed" };
  return { claims };
}

function changeProblem(c: Record<string, unknown>, ctx: AttestationContext): string | null {
  return ctx.changeSha256 !== null && c.change_sha256 === ctx.changeSha256 ? null : "change_digest_mismatch";
}

async function judge(item: unknown, approvers: Map<string, ApproverKeys>, ctx: AttestationContext): Promise<Judged> {
  const peeked = peek(item);
  if (!peeked) return ignore(null, "attestation_malformed");
  const key = approverKey(peeked.approver);
  const found = key === null ? undefined : approvers.get(key);
  if (!found) return ignore(displayId(peeked.approver), "approver_unknown");
  const verified = await verifiedClaims(item as string, peeked.header, found);
  if ("why" in verified) return ignore(found.approver.key, verified.why);
  const { claims } = verified;
  const problem = lifetimeProblem(claims, ctx) ?? changeProblem(claims, ctx) ?? bindingProblem(claims, ctx);
  return problem ? ignore(found.approver.key, problem) : accepted(claims, found.approver);
}

/** Judges every attestation; the approvals that count and the rest with why. */
export async function attestationApprovals(
  items: unknown[],
  approvers: Map<string, ApproverKeys>,
  ctx: AttestationContext,
): Promise<Collected> {
  const out: Collected = { approvals: [], ignored: [] };
  const judged = await Promise.all(items.slice(0, MAX_ATTESTATIONS).map(i => judge(i, approvers, ctx)));
  for (const j of judged) {
    if (!j.ok) out.ignored.push(j.ignored);
    else {
      out.approvals.push(j.approval);
      if (j.note) out.ignored.push(j.note);
    }
  }
  if (items.length > MAX_ATTESTATIONS) out.ignored.push({ source: "attestation", id: null, why: "too_many" });
  return out;
}
