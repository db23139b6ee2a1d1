// Whom the reference broker trusts, and for what (docs/authorization.md, "Issuer profiles" and
// "Approver attestations"). A trust configuration lists
//   - issuer profiles: the keys a PoA may be signed with (PEM keys, a JWKS file, a JWKS URL), the
//     `iss`, `aud` and `typ` a token of that issuer must carry, and which `leg` approval blocks
//     the issuer vouches for (an unvouched block is ignored, never counted);
//   - approvers: each with an id, roles and the keys its attestations are signed with.
// It comes from a JSON or YAML file (--trust-file) and/or the simple flags (--poa-key,
// --poa-jwks, --poa-jwks-url), which make one profile named "default". This file parses and
// validates (pure but for reading the file); keys.ts turns the keys into verifiers.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { load } from "js-yaml";
import { approverKey } from "./approver-id";

/** The `leg` blocks an issuer can vouch for. dual_control counts only with `required: true`. */
export const LEG_BLOCKS = ["approval", "dual_control", "executive_control"] as const;
export type LegBlock = (typeof LEG_BLOCKS)[number];

export const PRESETS = {
  /** An issuer the broker knows nothing about: its `leg` blocks are the agent's own words. */
  default: { vouches: [] as LegBlock[] },
  /**
   * The project's own minter (broker/poa.ts, `npm run poa -- mint`): whoever holds its key decides
   * every block it writes. Development and tests only.
   */
  dev: { vouches: [...LEG_BLOCKS] },
  /**
   * The upstream ATB AgentAuth: copies the agent's `leg` unchanged and writes only
   * `dual_control {required: true, approvers}` itself, when it enforced dual control.
   */
  agentauth: { iss: "atb-agentauth", typ: "JWT", vouches: ["dual_control"] as LegBlock[] },
} as const;
export type PresetName = keyof typeof PRESETS;

/** One issuer profile, as written in a trust file (snake_case, like the file). */
export interface IssuerProfileConfig {
  name: string;
  preset?: PresetName;
  iss?: string;
  aud?: string;
  typ?: string;
  vouches?: LegBlock[];
  /** PEM public keys: file paths or PEM text. Matched by algorithm, whatever the token's kid. */
  keys?: string[];
  jwks_file?: string;
  /** An inline JWKS (tests). */
  jwks?: { keys: unknown[] };
  jwks_url?: string;
  /** CA bundle for an https jwks_url (default: the system's CAs). */
  jwks_ca_file?: string;
  /** Plain http for a jwks_url that is not loopback (keys in clear text can be replaced). */
  jwks_allow_http?: boolean;
  /** How long fetched keys are used before they are fetched again (default 300 s). */
  jwks_cache_s?: number;
  /** Least time between two fetches caused by unknown kids (default 30 s). */
  jwks_cooldown_s?: number;
}

export interface ApproverConfig {
  id: string;
  roles?: string[];
  /** PEM public keys: file paths or PEM text. */
  keys?: string[];
  jwks_file?: string;
  jwks?: { keys: unknown[] };
}

export interface TrustConfig {
  profiles?: IssuerProfileConfig[];
  approvers?: ApproverConfig[];
  /** Longest accepted exp - iat of an attestation (default 3600 s, at most 86400). */
  attestation_max_lifetime_s?: number;
}

/** A profile with its preset applied and its paths resolved. */
export interface IssuerProfile extends Omit<IssuerProfileConfig, "preset" | "vouches"> {
  vouches: readonly LegBlock[];
}

export interface Approver extends ApproverConfig {
  /** approverKey(id). */
  key: string;
  roles: string[];
}

export interface Trust {
  profiles: IssuerProfile[];
  approvers: Approver[];
  /** Undefined: the default (3600 s). */
  attestationMaxLifetimeS?: number;
}

export const DEFAULT_ATTESTATION_MAX_LIFETIME_S = 3600;

const PROFILE_FIELDS = new Set([
  "name",
  "preset",
  "iss",
  "aud",
  "typ",
  "vouches",
  "keys",
  "jwks_file",
  "jwks",
  "jwks_url",
  "jwks_ca_file",
  "jwks_allow_http",
  "jwks_cache_s",
  "jwks_cooldown_s",
]);
const APPROVER_FIELDS = new Set(["id", "roles", "keys", "jwks_file", "jwks"]);
const TRUST_FIELDS = new Set(["profiles", "approvers", "attestation_max_lifetime_s"]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`trust: ${message}`);
}

function unknownFields(o: Record<string, unknown>, known: Set<string>, where: string): void {
  const extra = Object.keys(o).filter(k => !known.has(k));
  check(extra.length === 0, `${where}: unknown field(s) ${extra.join(", ")}`);
}

function optionalString(o: Record<string, unknown>, field: string, where: string): void {
  check(
    o[field] === undefined || (typeof o[field] === "string" && o[field] !== ""),
    `${where}.${field} must be a string`,
  );
}

function stringList(v: unknown, where: string): void {
  check(
    v === undefined || (Array.isArray(v) && v.every(x => typeof x === "string" && x !== "")),
    `${where} must be a list of strings`,
  );
}

function seconds(v: unknown, where: string, max: number): void {
  check(
    v === undefined || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max),
    `${where} must be 0..${max} s`,
  );
}

/** A key entry is PEM text or a path (relative to the trust file's folder). */
function resolveKey(entry: string, base: string): string {
  return entry.includes("-----BEGIN") || isAbsolute(entry) ? entry : resolve(base, entry);
}

function resolvePath(p: string | undefined, base: string): string | undefined {
  return p === undefined ? undefined : resolve(base, p);
}

function checkJwksUrl(p: IssuerProfileConfig, where: string): void {
  if (p.jwks_url === undefined) return;
  let url: URL;
  try {
    url = new URL(p.jwks_url);
  } catch {
    throw new Error(`trust: ${where}.jwks_url is not a URL`);
  }
  check(url.protocol === "https:" || url.protocol === "http:", `${where}.jwks_url must be https (or http)`);
  const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
  check(
    url.protocol === "https:" || loopback || p.jwks_allow_http === true,
    `${where}.jwks_url is plain http on a non-loopback host: use https, or set jwks_allow_http`,
  );
}

function checkProfile(p: IssuerProfileConfig, where: string): void {
  check(
    typeof p.name === "string" && /^[A-Za-z0-9._-]{1,64}$/.test(p.name),
    `${where}.name must be 1..64 of [A-Za-z0-9._-]`,
  );
  check(
    p.preset === undefined || Object.hasOwn(PRESETS, p.preset),
    `${where}.preset must be one of ${Object.keys(PRESETS).join(", ")}`,
  );
  stringList(p.keys, `${where}.keys`);
  stringList(p.vouches, `${where}.vouches`);
  check(
    (p.vouches ?? []).every(v => (LEG_BLOCKS as readonly string[]).includes(v)),
    `${where}.vouches: one of ${LEG_BLOCKS.join(", ")}`,
  );
  check(p.jwks === undefined || (isRecord(p.jwks) && Array.isArray(p.jwks.keys)), `${where}.jwks must be a JWKS`);
  seconds(p.jwks_cache_s, `${where}.jwks_cache_s`, 86_400);
  seconds(p.jwks_cooldown_s, `${where}.jwks_cooldown_s`, 3_600);
  checkJwksUrl(p, where);
  check(
    p.keys?.length || p.jwks_file || p.jwks || p.jwks_url,
    `${where} (${p.name}) has no keys, jwks_file or jwks_url`,
  );
}

function parseProfile(raw: unknown, i: number, base: string): IssuerProfile {
  const where = `profiles[${i}]`;
  check(isRecord(raw), `${where} must be an object`);
  unknownFields(raw, PROFILE_FIELDS, where);
  for (const f of ["iss", "aud", "typ", "jwks_file", "jwks_url", "jwks_ca_file"]) optionalString(raw, f, where);
  const { preset: presetName, ...p } = raw as unknown as IssuerProfileConfig;
  checkProfile({ ...p, preset: presetName }, where);
  const preset: { iss?: string; typ?: string; vouches: readonly LegBlock[] } = PRESETS[presetName ?? "default"];
  return {
    ...p,
    iss: p.iss ?? preset.iss,
    typ: p.typ ?? preset.typ,
    vouches: [...new Set(p.vouches ?? preset.vouches)],
    keys: p.keys?.map(k => resolveKey(k, base)),
    jwks_file: resolvePath(p.jwks_file, base),
    jwks_ca_file: resolvePath(p.jwks_ca_file, base),
  };
}

function parseApprover(raw: unknown, i: number, base: string): Approver {
  const where = `approvers[${i}]`;
  check(isRecord(raw), `${where} must be an object`);
  unknownFields(raw, APPROVER_FIELDS, where);
  const a = raw as unknown as ApproverConfig;
  const key = approverKey(a.id);
  check(key !== null, `${where}.id must be 1..256 printable ASCII characters`);
  stringList(a.roles, `${where}.roles`);
  stringList(a.keys, `${where}.keys`);
  optionalString(raw, "jwks_file", where);
  check(a.jwks === undefined || (isRecord(a.jwks) && Array.isArray(a.jwks.keys)), `${where}.jwks must be a JWKS`);
  check(a.keys?.length || a.jwks_file || a.jwks, `${where} (${a.id}) has no keys or jwks_file`);
  return {
    ...a,
    key,
    roles: [...new Set((a.roles ?? []).map(r => r.toLowerCase()))],
    keys: a.keys?.map(k => resolveKey(k, base)),
    jwks_file: resolvePath(a.jwks_file, base),
  };
}

/**
 * Validates a trust configuration (from a file or given in code). Relative paths are resolved
 * against `base` (the trust file's folder). Throws with a message naming the field.
 */
export function parseTrust(raw: unknown, base = process.cwd()): Trust {
  check(isRecord(raw), "the configuration must be an object");
  unknownFields(raw, TRUST_FIELDS, "trust");
  check(raw.profiles === undefined || Array.isArray(raw.profiles), "profiles must be a list");
  check(raw.approvers === undefined || Array.isArray(raw.approvers), "approvers must be a list");
  seconds(raw.attestation_max_lifetime_s, "attestation_max_lifetime_s", 86_400);
  const profiles = ((raw.profiles as unknown[]) ?? []).map((p, i) => parseProfile(p, i, base));
  const approvers = ((raw.approvers as unknown[]) ?? []).map((a, i) => parseApprover(a, i, base));
  const lifetime = raw.attestation_max_lifetime_s as number | undefined;
  check(lifetime !== 0, "attestation_max_lifetime_s must be at least 1");
  return { profiles, approvers, ...(lifetime === undefined ? {} : { attestationMaxLifetimeS: lifetime }) };
}

/** Reads a JSON or YAML trust file. */
export function loadTrustFile(file: string): Trust {
  let raw: unknown;
  try {
    raw = load(readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`trust file ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseTrust(raw, dirname(resolve(file)));
}

/** Several configurations as one; profile names and approver ids must stay unique. */
export function mergeTrust(parts: Trust[]): Trust {
  const merged: Trust = {
    profiles: parts.flatMap(p => p.profiles),
    approvers: parts.flatMap(p => p.approvers),
  };
  const lifetimes = parts.flatMap(p => (p.attestationMaxLifetimeS === undefined ? [] : [p.attestationMaxLifetimeS]));
  if (lifetimes.length) merged.attestationMaxLifetimeS = Math.min(...lifetimes);
  const names = merged.profiles.map(p => p.name);
  const dupName = names.find((n, i) => names.indexOf(n) !== i);
  check(dupName === undefined, `two issuer profiles are named "${dupName}"`);
  const keys = merged.approvers.map(a => a.key);
  const dupKey = keys.find((k, i) => keys.indexOf(k) !== i);
  check(dupKey === undefined, `two approvers have the same id (after normalization): "${dupKey}"`);
  return merged;
}

/** The simple flags (--poa-key, --poa-jwks, --poa-jwks-url, ...) and the trust file/object. */
export interface TrustSettings {
  /** PEM public key files of the "default" profile. */
  publicKeyFiles?: string[];
  /** PEM public keys as text (tests). */
  publicKeys?: string[];
  jwksFile?: string;
  jwksUrl?: string;
  jwksCaFile?: string;
  jwksAllowHttp?: boolean;
  /** What the "default" profile checks and vouches for (default: "default", vouching for nothing). */
  preset?: PresetName;
  /** `iss` / `aud` the "default" profile requires (override the preset's). */
  issuer?: string;
  audience?: string;
  /** A JSON or YAML trust file. */
  trustFile?: string;
  /** A trust configuration given in code (the file's format). */
  trust?: TrustConfig;
}

/** The profile the simple flags describe, or undefined when they name no key. */
function defaultProfile(s: TrustSettings): IssuerProfileConfig | undefined {
  const keys = [...(s.publicKeyFiles ?? []), ...(s.publicKeys ?? [])];
  if (!keys.length && !s.jwksFile && !s.jwksUrl) {
    const stray = s.preset ?? s.issuer ?? s.audience ?? s.jwksCaFile;
    check(
      stray === undefined,
      "--poa-profile, --poa-issuer, --poa-audience and --poa-jwks-ca apply to the keys of --poa-key, --poa-jwks or --poa-jwks-url, and none is given",
    );
    return undefined;
  }
  const fields: Partial<IssuerProfileConfig> = {
    keys: keys.length ? keys : undefined,
    jwks_file: s.jwksFile,
    jwks_url: s.jwksUrl,
    jwks_ca_file: s.jwksCaFile,
    jwks_allow_http: s.jwksAllowHttp || undefined,
    iss: s.issuer,
    aud: s.audience,
  };
  const set = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== ""));
  return { name: "default", preset: s.preset ?? "default", ...set };
}

/** Everything the broker trusts: the "default" profile of the simple flags, the file, the object. */
export function resolveTrust(s: TrustSettings): Trust {
  const simple = defaultProfile(s);
  const parts = [
    ...(simple ? [parseTrust({ profiles: [simple] })] : []),
    ...(s.trustFile ? [loadTrustFile(s.trustFile)] : []),
    ...(s.trust ? [parseTrust(s.trust)] : []),
  ];
  const trust = mergeTrust(parts);
  check(
    trust.profiles.length > 0,
    "no PoA verification keys configured (--poa-key, --poa-jwks, --poa-jwks-url or a trust file with profiles)",
  );
  return trust;
}
