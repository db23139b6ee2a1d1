// PoA verification for the reference broker, done with jose before OPA runs: allowed algorithms
// only (ES256, EdDSA, RS256; none and HMAC never), signature against the configured PEM keys
// and/or JWKS file, required claims, lifetime cap, expiry with clock skew, sub == agent_id.
// Each failure maps to a stable reason code. The jti single-use check lives in jti-cache.ts.
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, exportJWK, jwtVerify, type JWK } from "jose";
import { POA_ALGS, algOf, type PoaAlg } from "./poa";

/** Reason codes for tokens that fail verification (documented in docs/authorization.md). */
export const POA_FAILURES = [
  "poa_malformed",
  "poa_alg_not_allowed",
  "poa_signature_invalid",
  "poa_expired",
  "poa_not_yet_valid",
  "poa_claims_missing",
  "poa_lifetime_invalid",
  "sub_mismatch",
] as const;
export type PoaFailure = (typeof POA_FAILURES)[number];

export interface Approval {
  id: string;
  source: "approval" | "dual_control" | "executive_control";
  exp?: number;
}

export interface VerifiedPoa {
  sub: string;
  act: string;
  con: Record<string, unknown>;
  leg: Record<string, unknown>;
  iat: number;
  exp: number;
  jti: string;
  risk_tier?: unknown;
  approvals: Approval[];
}

export type VerifyResult = { ok: true; poa: VerifiedPoa } | { ok: false; reason: PoaFailure; message: string };

export interface VerifierOptions {
  publicKeyFiles?: string[];
  /** PEM public keys as text (tests). */
  publicKeys?: string[];
  jwksFile?: string;
  maxLifetimeS: number;
  clockSkewS: number;
}

export interface PoaVerifier {
  readonly keyCount: number;
  verify(token: unknown, agentId: string, nowMs: number): Promise<VerifyResult>;
}

const MAX_TOKEN_CHARS = 16 * 1024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function jwkFromPem(pem: string): Promise<JWK> {
  const key = createPublicKey(pem);
  const jwk = await exportJWK(key);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: algOf(key), use: "sig" };
}

/** Keys from a JWKS file, keeping only those usable with an allowed algorithm. */
function jwksKeys(file: string): JWK[] {
  const parsed = JSON.parse(readFileSync(file, "utf8")) as { keys?: unknown };
  if (!Array.isArray(parsed.keys)) throw new Error(`${file} is not a JWKS (no "keys" array)`);
  return (parsed.keys as JWK[]).filter(
    k => k.kty !== "oct" && (k.alg === undefined || (POA_ALGS as readonly string[]).includes(k.alg)),
  );
}

function optionalExp(entry: Record<string, unknown>): { exp?: number } {
  return typeof entry.exp === "number" ? { exp: entry.exp } : {};
}

function approversOf(block: unknown, source: Approval["source"]): Approval[] {
  if (!isRecord(block) || !Array.isArray(block.approvers)) return [];
  return block.approvers
    .filter(isRecord)
    .filter(a => typeof a.id === "string" && a.id !== "")
    .map(a => ({ id: a.id as string, source, ...optionalExp(a) }));
}

/** Flattens leg.approval, leg.dual_control and leg.executive_control into one list for the policy. */
export function normaliseApprovals(leg: unknown): Approval[] {
  if (!isRecord(leg)) return [];
  const out: Approval[] = [];
  const single = leg.approval;
  if (isRecord(single) && typeof single.approver_id === "string" && single.approver_id !== "") {
    out.push({ id: single.approver_id, source: "approval", ...optionalExp(single) });
  }
  return [
    ...out,
    ...approversOf(leg.dual_control, "dual_control"),
    ...approversOf(leg.executive_control, "executive_control"),
  ];
}

function fail(reason: PoaFailure, message: string): VerifyResult {
  return { ok: false, reason, message };
}

function joseFailure(err: unknown): VerifyResult {
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return fail("poa_expired", "the PoA has expired");
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return fail("poa_signature_invalid", "the PoA signature does not verify with any configured key");
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return fail("poa_alg_not_allowed", "the PoA algorithm is not allowed");
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      return fail("poa_not_yet_valid", "the PoA is not valid yet (nbf)");
    default:
      return fail("poa_malformed", `the PoA is not a valid JWT (${typeof code === "string" ? code : "parse error"})`);
  }
}

type Required = { sub: string; act: string; iat: number; exp: number; jti: string };

function hasRequiredClaims(p: Record<string, unknown>): p is Record<string, unknown> & Required {
  const strings = [p.sub, p.act, p.jti].every(v => typeof v === "string" && v !== "");
  return strings && typeof p.iat === "number" && typeof p.exp === "number";
}

function checkClaims(p: Record<string, unknown>, o: VerifierOptions, agentId: string, nowS: number): VerifyResult {
  if (!hasRequiredClaims(p)) return fail("poa_claims_missing", "the PoA lacks one of sub, act, iat, exp, jti");
  const { sub, act, iat, exp, jti } = p;
  if (exp <= iat || exp - iat > o.maxLifetimeS) {
    return fail("poa_lifetime_invalid", `the PoA lifetime exp-iat is ${exp - iat} s; allowed 1..${o.maxLifetimeS} s`);
  }
  if (iat > nowS + o.clockSkewS) return fail("poa_not_yet_valid", "the PoA is issued in the future");
  if (sub !== agentId) return fail("sub_mismatch", "the PoA subject is not the task's agent_id");
  const poa: VerifiedPoa = {
    sub,
    act,
    iat,
    exp,
    jti,
    con: isRecord(p.con) ? p.con : {},
    leg: isRecord(p.leg) ? p.leg : {},
    approvals: normaliseApprovals(p.leg),
  };
  if (p.risk_tier !== undefined)
    poa.risk_tier = typeof p.risk_tier === "string" ? p.risk_tier.toUpperCase() : p.risk_tier;
  return { ok: true, poa };
}

/** Loads the keys once; verify() never throws (every failure is a reason code). */
export async function createPoaVerifier(o: VerifierOptions): Promise<PoaVerifier> {
  const pems = [...(o.publicKeyFiles ?? []).map(f => readFileSync(f, "utf8")), ...(o.publicKeys ?? [])];
  const keys = [...(await Promise.all(pems.map(jwkFromPem))), ...(o.jwksFile ? jwksKeys(o.jwksFile) : [])];
  if (keys.length === 0) throw new Error("no PoA verification keys configured (--poa-key or --poa-jwks)");
  const jwks = createLocalJWKSet({ keys });
  async function verify(token: unknown, agentId: string, nowMs: number): Promise<VerifyResult> {
    if (typeof token !== "string" || token.length > MAX_TOKEN_CHARS || token.split(".").length !== 3) {
      return fail("poa_malformed", "the PoA is not a compact JWS");
    }
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      return fail("poa_malformed", "the PoA header is not decodable");
    }
    if (!(POA_ALGS as readonly unknown[]).includes(alg))
      return fail("poa_alg_not_allowed", `PoA algorithm ${String(alg).slice(0, 16)} is not allowed`);
    try {
      const { payload } = await jwtVerify(token, jwks, {
        algorithms: [...POA_ALGS] as PoaAlg[],
        clockTolerance: o.clockSkewS,
        currentDate: new Date(nowMs),
      });
      return checkClaims(payload, o, agentId, Math.floor(nowMs / 1000));
    } catch (err) {
      return joseFailure(err);
    }
  }
  return { keyCount: keys.length, verify };
}
