// PoA tokens for development and tests: a dev signing key pair (PEM + JWKS), minting of tokens
// shaped like the contract's (iss, sub, act, con, leg, iat, exp, jti, optional risk_tier), and
// approver attestations (signAttestation: what an approver signs with its own key). Used by
// `npm run poa`, the integration tests and the sandbox. Not an issuer for production.
import { createPrivateKey, createPublicKey, randomUUID, type KeyObject } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT, calculateJwkThumbprint, exportJWK, exportPKCS8, exportSPKI, generateKeyPair } from "jose";
import { changeDigest, DIGEST_PATTERN } from "../capabilities/lib/change-digest";

/** The `iss` of tokens minted here (an issuer profile may require it). */
export const DEV_ISSUER = "atb-dev-minter";
/** The JOSE typ of approver attestations (never accepted as a PoA). */
export const ATTESTATION_TYP = "atb-attestation+jwt";

export type PoaAlg = "ES256" | "EdDSA" | "RS256";
export const POA_ALGS: readonly PoaAlg[] = ["ES256", "EdDSA", "RS256"];

export interface PoaTarget {
  kind: string;
  namespace: string;
  name: string;
}

export interface MintOptions {
  /** Private key: a KeyObject or PKCS#8 PEM text. */
  key: KeyObject | string;
  /** Inferred from the key when absent (EC P-256 -> ES256, Ed25519 -> EdDSA, RSA -> RS256). */
  alg?: PoaAlg;
  /** Defaults to the RFC 7638 thumbprint of the public key (what keygen puts in the JWKS). */
  kid?: string;
  agent: string;
  /** The CRD action ("scale") or the full action string ("k8s.Deployment.scale"). */
  action: string;
  target: PoaTarget | string;
  /** One approver -> leg.approval; two or more -> leg.dual_control. */
  approvers?: string[];
  /** leg.executive_control approvers (CRITICAL tier). */
  executiveApprovers?: string[];
  ttlSeconds?: number;
  maxReplicas?: number;
  minReplicas?: number;
  /** A risk tier the issuer asserts (can only raise the computed tier). */
  tier?: string;
  jti?: string;
  /** Unix seconds; defaults to now. */
  issuedAt?: number;
  /** Extra constraints merged into con. */
  constraints?: Record<string, unknown>;
  /** Approver attestations (compact JWS, signAttestation) carried in leg.attestations. */
  attestations?: string[];
  /** The iss claim (default DEV_ISSUER; null: none). */
  issuer?: string | null;
  /** con.change_sha256: the digest of the one change the token authorizes (capabilities/change.ts). */
  changeSha256?: string;
}

/** "kind/namespace/name" to a target. */
export function parseTarget(value: string): PoaTarget {
  const parts = value.split("/");
  if (parts.length !== 3 || parts.some(p => p.trim() === "")) {
    throw new Error(`target must be <kind>/<namespace>/<name>, got "${value}"`);
  }
  const [kind, namespace, name] = parts as [string, string, string];
  return { kind, namespace, name };
}

/** The contract's action string: the CRD action mapped with the target's kind, or as given. */
export function toBrokerAction(action: string, kind: string): string {
  return action.startsWith("k8s.") ? action : `k8s.${kind}.${action}`;
}

function privateKeyOf(key: KeyObject | string): KeyObject {
  return typeof key === "string" ? createPrivateKey(key) : key;
}

/** The JWS algorithm a key signs with, per the contract's three allowed algorithms. */
export function algOf(key: KeyObject): PoaAlg {
  switch (key.asymmetricKeyType) {
    case "ec":
      if (key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new Error("EC PoA keys must be P-256 (ES256)");
      return "ES256";
    case "ed25519":
      return "EdDSA";
    case "rsa":
      return "RS256";
    default:
      throw new Error(`unsupported PoA key type ${key.asymmetricKeyType ?? "unknown"}`);
  }
}

/** RFC 7638 thumbprint of the public half: the kid keygen writes into the JWKS. */
export async function keyId(key: KeyObject): Promise<string> {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return calculateJwkThumbprint(await exportJWK(pub));
}

function legOf(approvers: string[], executives: string[], attestations: string[]): Record<string, unknown> {
  const leg: Record<string, unknown> = {
    jurisdiction: "dev",
    accountable_party: { type: approvers.length ? "human" : "system", id: approvers[0] ?? "atb-dev" },
  };
  if (approvers.length === 1) leg.approval = { approver_id: approvers[0] };
  if (approvers.length >= 2) leg.dual_control = { required: true, approvers: approvers.map(id => ({ id })) };
  if (executives.length)
    leg.executive_control = { required: true, approvers: executives.map(id => ({ id, role: "executive" })) };
  if (attestations.length) leg.attestations = attestations;
  return leg;
}

/** The iss claim: DEV_ISSUER unless given; none when null. */
function issuerClaim(issuer: string | null | undefined): { iss?: string } {
  if (issuer === null) return {};
  return { iss: issuer ?? DEV_ISSUER };
}

/** Mints a signed PoA JWT. */
export async function mintPoa(o: MintOptions): Promise<string> {
  const key = privateKeyOf(o.key);
  const alg = o.alg ?? algOf(key);
  const target = typeof o.target === "string" ? parseTarget(o.target) : o.target;
  const iat = o.issuedAt ?? Math.floor(Date.now() / 1000);
  const con: Record<string, unknown> = {
    namespace: target.namespace,
    kind: target.kind,
    name: target.name,
    ...o.constraints,
  };
  if (o.maxReplicas !== undefined) con.max_replicas = o.maxReplicas;
  if (o.minReplicas !== undefined) con.min_replicas = o.minReplicas;
  if (o.changeSha256 !== undefined) con.change_sha256 = o.changeSha256;
  const claims: Record<string, unknown> = {
    act: toBrokerAction(o.action, target.kind),
    con,
    leg: legOf(o.approvers ?? [], o.executiveApprovers ?? [], o.attestations ?? []),
  };
  if (o.tier) claims.risk_tier = o.tier.toUpperCase();
  return new SignJWT({ ...issuerClaim(o.issuer), ...claims })
    .setProtectedHeader({ alg, typ: "JWT", kid: o.kid ?? (await keyId(key)) })
    .setSubject(o.agent)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (o.ttlSeconds ?? 300))
    .setJti(o.jti ?? randomUUID())
    .sign(key);
}

export interface DevKeyFiles {
  privateKeyFile: string;
  publicKeyFile: string;
  jwksFile: string;
  kid: string;
}

export interface AttestOptions {
  /** The approver's private key: a KeyObject or PKCS#8 PEM text. */
  key: KeyObject | string;
  /** The approver id the broker has configured for this key. */
  approver: string;
  /** The change digest `sha256:<hex>`, or `change` to digest here. */
  changeSha256?: string;
  change?: unknown;
  /** Binding: the jti of the PoA it approves, and/or the uid of the AgentTask (at least one). */
  poaJti?: string;
  taskUid?: string;
  /** Roles the approver acts in (e.g. "executive"); count only where the broker grants them. */
  roles?: string[];
  /** Default 900. */
  ttlSeconds?: number;
  /** Unix seconds; defaults to now. */
  issuedAt?: number;
  alg?: PoaAlg;
  kid?: string;
}

function attestationClaims(o: AttestOptions): Record<string, unknown> {
  const digest = o.changeSha256 ?? (o.change === undefined ? undefined : changeDigest(o.change));
  if (digest === undefined || !DIGEST_PATTERN.test(digest))
    throw new Error("an attestation needs the change digest (sha256:<64 hex>) or the change");
  if (!o.poaJti && !o.taskUid) throw new Error("an attestation needs a binding: the PoA's jti or the task's uid");
  const claims: Record<string, unknown> = { approver: o.approver, change_sha256: digest };
  if (o.roles?.length) claims.roles = o.roles;
  if (o.poaJti) claims.poa_jti = o.poaJti;
  if (o.taskUid) claims.task_uid = o.taskUid;
  return claims;
}

/** Signs an approver attestation: `{approver, roles?, change_sha256, poa_jti?, task_uid?, iat, exp}`. */
export async function signAttestation(o: AttestOptions): Promise<string> {
  const key = privateKeyOf(o.key);
  const iat = o.issuedAt ?? Math.floor(Date.now() / 1000);
  return new SignJWT(attestationClaims(o))
    .setProtectedHeader({ alg: o.alg ?? algOf(key), typ: ATTESTATION_TYP, kid: o.kid ?? (await keyId(key)) })
    .setIssuedAt(iat)
    .setExpirationTime(iat + (o.ttlSeconds ?? 900))
    .sign(key);
}

/** Writes a fresh signing key pair (PKCS#8 + SPKI PEM) and a JWKS with its public key. */
export async function generateDevKeys(dir: string, alg: PoaAlg = "EdDSA", name = "poa-signing"): Promise<DevKeyFiles> {
  mkdirSync(dir, { recursive: true });
  const pair = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  const files: DevKeyFiles = {
    privateKeyFile: join(dir, `${name}.key`),
    publicKeyFile: join(dir, `${name}.pub`),
    jwksFile: join(dir, `${name}.jwks.json`),
    kid,
  };
  writeFileSync(files.privateKeyFile, await exportPKCS8(pair.privateKey), { mode: 0o600 });
  writeFileSync(files.publicKeyFile, await exportSPKI(pair.publicKey));
  writeFileSync(files.jwksFile, JSON.stringify({ keys: [{ ...jwk, kid, alg, use: "sig" }] }, null, 2) + "\n");
  return files;
}

/** Reads a PEM private key file for mintPoa. */
export function readPrivateKey(file: string): KeyObject {
  return createPrivateKey(readFileSync(file, "utf8"));
}
