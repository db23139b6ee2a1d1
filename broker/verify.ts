// PoA verification for the reference broker, done before OPA runs: allowed algorithms only
// (ES256, EdDSA, RS256; none and HMAC never), a signature by a key of one of the trusted issuer
// profiles (trust.ts, keys.ts), that profile's typ/iss/aud, required claims, lifetime cap, expiry
// with clock skew, sub == agent_id. Each failure maps to a stable reason code. Then the approvals
// the policy may count: the leg blocks the profile vouches for (approvals.ts) and the approvers'
// own attestations (attestations.ts); everything else is listed as ignored. The jti single-use
// check lives in jti-cache.ts.
import { decodeJwt, decodeProtectedHeader, type JWSHeaderParameters } from "jose";
import type { Logger } from "../capabilities/lib/logger";
import { legApprovals, type Approval, type Collected, type IgnoredApproval } from "./approvals";
import { ATTESTATION_TYP, attestationApprovals, type ApproverKeys } from "./attestations";
import { createKeySet, type KeySet } from "./keys";
import { POA_ALGS, type PoaAlg } from "./poa";
import { DEFAULT_ATTESTATION_MAX_LIFETIME_S, type IssuerProfile, type Trust } from "./trust";

export type { Approval, IgnoredApproval } from "./approvals";

/** Reason codes for tokens that fail verification (documented in docs/authorization.md). */
export const POA_FAILURES = [
  "poa_malformed",
  "poa_alg_not_allowed",
  "poa_signature_invalid",
  "poa_type_invalid",
  "poa_issuer_untrusted",
  "poa_audience_invalid",
  "poa_expired",
  "poa_not_yet_valid",
  "poa_claims_missing",
  "poa_lifetime_invalid",
  "sub_mismatch",
] as const;
export type PoaFailure = (typeof POA_FAILURES)[number];
/** No decision: the keys of a JWKS URL could not be fetched (answered 503, retried). */
export const KEYS_UNAVAILABLE = "poa_keys_unavailable";

export interface VerifiedPoa {
  sub: string;
  act: string;
  con: Record<string, unknown>;
  leg: Record<string, unknown>;
  iat: number;
  exp: number;
  jti: string;
  iss?: string;
  /** The name of the issuer profile whose key verified the token. */
  issuer_profile: string;
  risk_tier?: unknown;
  approvals: Approval[];
  ignored_approvals: IgnoredApproval[];
}

export type VerifyResult =
  | { ok: true; poa: VerifiedPoa }
  | { ok: false; reason: PoaFailure | typeof KEYS_UNAVAILABLE; message: string };

/** What the request adds for the approvals: the change digest, the task, attestations sent along. */
export interface ApprovalContext {
  changeSha256?: string | null;
  taskUid?: string;
  attestations?: unknown[];
}

export interface VerifierOptions {
  trust: Trust;
  maxLifetimeS: number;
  clockSkewS: number;
  logger?: Logger;
}

export interface PoaVerifier {
  readonly keyCount: number;
  /** Each issuer profile and what it vouches for, for the start-up log line. */
  readonly profiles: readonly string[];
  verify(token: unknown, agentId: string, nowMs: number, ctx?: ApprovalContext): Promise<VerifyResult>;
  close(): Promise<void>;
}

const MAX_TOKEN_CHARS = 16 * 1024;

interface Issuer {
  profile: IssuerProfile;
  keys: KeySet;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fail(reason: PoaFailure | typeof KEYS_UNAVAILABLE, message: string): VerifyResult & { ok: false } {
  return { ok: false, reason, message };
}

/** RFC 7515 typ comparison: case-insensitive, `application/` implied. */
function normalTyp(typ: string): string {
  const lower = typ.toLowerCase();
  return lower.includes("/") ? lower : `application/${lower}`;
}

/** The profile's typ/iss/aud rules, checked once its key verified the token. */
function profileFailure(
  p: IssuerProfile,
  header: JWSHeaderParameters,
  claims: Record<string, unknown>,
): VerifyResult | null {
  const typ = typeof header.typ === "string" ? normalTyp(header.typ) : undefined;
  if (typ === normalTyp(ATTESTATION_TYP)) return fail("poa_type_invalid", "the PoA is an approver attestation");
  if (p.typ !== undefined && typ !== normalTyp(p.typ))
    return fail("poa_type_invalid", `the PoA's typ is not ${p.typ} (issuer profile ${p.name})`);
  if (p.iss !== undefined && claims.iss !== p.iss)
    return fail("poa_issuer_untrusted", `the PoA's iss is not ${p.iss} (issuer profile ${p.name})`);
  const aud = claims.aud;
  if (p.aud !== undefined && !(aud === p.aud || (Array.isArray(aud) && aud.includes(p.aud))))
    return fail("poa_audience_invalid", `the PoA's aud does not name ${p.aud} (issuer profile ${p.name})`);
  return null;
}

type Required = { sub: string; act: string; iat: number; exp: number; jti: string };

function hasRequiredClaims(p: Record<string, unknown>): p is Record<string, unknown> & Required {
  const strings = [p.sub, p.act, p.jti].every(v => typeof v === "string" && v !== "");
  return strings && typeof p.iat === "number" && typeof p.exp === "number";
}

function claimsFailure(
  p: Record<string, unknown>,
  o: VerifierOptions,
  agentId: string,
  nowS: number,
): VerifyResult | null {
  if (!hasRequiredClaims(p)) return fail("poa_claims_missing", "the PoA lacks one of sub, act, iat, exp, jti");
  const { sub, iat, exp, nbf } = p;
  if (exp <= nowS - o.clockSkewS) return fail("poa_expired", "the PoA has expired");
  if (typeof nbf === "number" && nbf > nowS + o.clockSkewS)
    return fail("poa_not_yet_valid", "the PoA is not valid yet (nbf)");
  if (exp <= iat || exp - iat > o.maxLifetimeS) {
    return fail("poa_lifetime_invalid", `the PoA lifetime exp-iat is ${exp - iat} s; allowed 1..${o.maxLifetimeS} s`);
  }
  if (iat > nowS + o.clockSkewS) return fail("poa_not_yet_valid", "the PoA is issued in the future");
  if (sub !== agentId) return fail("sub_mismatch", "the PoA subject is not the task's agent_id");
  return null;
}

/** Issuers whose iss the token names first (a key must not be shared, but if it is, iss decides). */
function ordered(issuers: Issuer[], token: string): Issuer[] {
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return issuers;
  }
  return [...issuers.filter(i => i.profile.iss === iss), ...issuers.filter(i => i.profile.iss !== iss)];
}

type Found = { ok: true; issuer: Issuer; claims: Record<string, unknown> } | (VerifyResult & { ok: false });

async function findIssuer(issuers: Issuer[], token: string, header: Header): Promise<Found> {
  const unavailable: string[] = [];
  for (const issuer of ordered(issuers, token)) {
    let match;
    try {
      match = await issuer.keys.verify(token, header);
    } catch {
      return fail("poa_malformed", "the PoA is not a valid JWS");
    }
    if (match.status === "unavailable") unavailable.push(match.message);
    if (match.status !== "verified") continue;
    let claims: unknown;
    try {
      claims = JSON.parse(new TextDecoder().decode(match.payload));
    } catch {
      return fail("poa_malformed", "the PoA payload is not JSON");
    }
    if (!isRecord(claims)) return fail("poa_malformed", "the PoA payload is not a JSON object");
    return { ok: true, issuer, claims };
  }
  if (unavailable.length)
    return fail(KEYS_UNAVAILABLE, `no configured key verifies the PoA and ${unavailable.join("; ")}`);
  return fail("poa_signature_invalid", "the PoA signature does not verify with any configured key");
}

type Header = JWSHeaderParameters & { alg: PoaAlg };

function headerOf(token: unknown): { header: Header } | { failure: VerifyResult } {
  if (typeof token !== "string" || token.length > MAX_TOKEN_CHARS || token.split(".").length !== 3) {
    return { failure: fail("poa_malformed", "the PoA is not a compact JWS") };
  }
  let header: JWSHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return { failure: fail("poa_malformed", "the PoA header is not decodable") };
  }
  if (!(POA_ALGS as readonly unknown[]).includes(header.alg))
    return { failure: fail("poa_alg_not_allowed", `PoA algorithm ${String(header.alg).slice(0, 16)} is not allowed`) };
  return { header: header as Header };
}

function poaOf(c: Record<string, unknown> & Required, profile: string, approvals: Collected): VerifiedPoa {
  const poa: VerifiedPoa = {
    sub: c.sub,
    act: c.act,
    iat: c.iat,
    exp: c.exp,
    jti: c.jti,
    con: isRecord(c.con) ? c.con : {},
    leg: isRecord(c.leg) ? c.leg : {},
    issuer_profile: profile,
    approvals: approvals.approvals,
    ignored_approvals: approvals.ignored,
  };
  if (typeof c.iss === "string") poa.iss = c.iss;
  if (c.risk_tier !== undefined)
    poa.risk_tier = typeof c.risk_tier === "string" ? c.risk_tier.toUpperCase() : c.risk_tier;
  return poa;
}

async function approvalsOf(
  claims: Record<string, unknown> & Required,
  profile: IssuerProfile,
  approvers: Map<string, ApproverKeys>,
  ctx: ApprovalContext & { nowS: number; clockSkewS: number; maxLifetimeS: number },
): Promise<Collected> {
  const fromLeg = legApprovals(claims.leg, profile.vouches, profile.name);
  const legAttestations = isRecord(claims.leg) && Array.isArray(claims.leg.attestations) ? claims.leg.attestations : [];
  const items = [...legAttestations, ...(ctx.attestations ?? [])];
  if (items.length === 0) return fromLeg;
  const attested = await attestationApprovals(items, approvers, {
    changeSha256: ctx.changeSha256 ?? null,
    poaJti: claims.jti,
    taskUid: ctx.taskUid,
    nowS: ctx.nowS,
    clockSkewS: ctx.clockSkewS,
    maxLifetimeS: ctx.maxLifetimeS,
  });
  return {
    approvals: [...fromLeg.approvals, ...attested.approvals],
    ignored: [...fromLeg.ignored, ...attested.ignored],
  };
}

/** A key listed under two profiles would make the profile depend on the order of the list. */
function assertDistinctKeys(issuers: Issuer[]): void {
  const owner = new Map<string, string>();
  for (const { profile, keys } of issuers) {
    for (const t of keys.thumbprints) {
      const other = owner.get(t);
      if (other !== undefined && other !== profile.name)
        throw new Error(`trust: one key belongs to two issuer profiles (${other} and ${profile.name})`);
      owner.set(t, profile.name);
    }
  }
}

/** Loads the keys once (and fetches JWKS URLs once); verify() never throws. */
export async function createPoaVerifier(o: VerifierOptions): Promise<PoaVerifier> {
  const issuers: Issuer[] = await Promise.all(
    o.trust.profiles.map(async p => ({ profile: p, keys: await createKeySet(p) })),
  );
  if (issuers.length === 0)
    throw new Error("no PoA verification keys configured (--poa-key, --poa-jwks, --poa-jwks-url or a trust file)");
  assertDistinctKeys(issuers);
  const approvers = new Map<string, ApproverKeys>(
    await Promise.all(o.trust.approvers.map(async a => [a.key, { approver: a, keys: await createKeySet(a) }] as const)),
  );
  for (const { profile, keys } of issuers) {
    const problem = await keys.warm();
    if (problem)
      o.logger?.warn("JWKS not fetched at start; fetched again on demand", { profile: profile.name, error: problem });
  }
  const maxLifetimeS = o.trust.attestationMaxLifetimeS ?? DEFAULT_ATTESTATION_MAX_LIFETIME_S;
  async function verify(
    token: unknown,
    agentId: string,
    nowMs: number,
    ctx: ApprovalContext = {},
  ): Promise<VerifyResult> {
    const parsed = headerOf(token);
    if ("failure" in parsed) return parsed.failure;
    const { header } = parsed;
    const found = await findIssuer(issuers, token as string, header);
    if (!found.ok) return found;
    const { issuer, claims } = found;
    const nowS = Math.floor(nowMs / 1000);
    const problem = profileFailure(issuer.profile, header, claims) ?? claimsFailure(claims, o, agentId, nowS);
    if (problem) return problem;
    const c = claims as Record<string, unknown> & Required;
    const approvals = await approvalsOf(c, issuer.profile, approvers, {
      ...ctx,
      nowS,
      clockSkewS: o.clockSkewS,
      maxLifetimeS,
    });
    return { ok: true, poa: poaOf(c, issuer.profile.name, approvals) };
  }
  return {
    keyCount: issuers.reduce((n, i) => n + i.keys.localCount, 0),
    profiles: issuers.map(i => `${i.profile.name} (vouches for: ${i.profile.vouches.join(", ") || "no leg block"})`),
    verify,
    close: async () => {
      await Promise.all([...issuers.map(i => i.keys.close()), ...[...approvers.values()].map(a => a.keys.close())]);
    },
  };
}
