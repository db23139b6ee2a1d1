// The verification keys of one issuer profile or one approver: PEM public keys (matched by the
// token's algorithm whatever its kid, since issuers derive kids by their own rules: AgentAuth's
// is base64url(sha256(raw Ed25519 key)), the dev minter's an RFC 7638 thumbprint), a JWKS file or
// inline JWKS, and a JWKS URL (jose's remote set: cached, fetched again on an unknown kid at most
// once per cooldown; https with an optional CA bundle). verify() tries each candidate key and says
// whether one verified the signature, none did, or the remote keys could not be fetched.
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  calculateJwkThumbprint,
  compactVerify,
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  exportJWK,
  importSPKI,
  type CryptoKey,
  type FetchImplementation,
  type JWK,
  type JWSHeaderParameters,
} from "jose";
import { Agent, fetch as undiciFetch } from "undici";
import { POA_ALGS, algOf, type PoaAlg } from "./poa";

export type KeyMatch =
  | { status: "verified"; payload: Uint8Array }
  | { status: "no_key" }
  | { status: "unavailable"; message: string };

export interface KeySources {
  keys?: string[];
  jwks_file?: string;
  jwks?: { keys: unknown[] };
  jwks_url?: string;
  jwks_ca_file?: string;
  jwks_cache_s?: number;
  jwks_cooldown_s?: number;
}

export interface KeySet {
  /** Local keys (PEM and JWKS); a JWKS URL adds none. */
  readonly localCount: number;
  /** RFC 7638 thumbprints of the local keys (a key must not belong to two profiles). */
  readonly thumbprints: readonly string[];
  readonly remote: boolean;
  verify(token: string, header: JWSHeaderParameters & { alg: PoaAlg }): Promise<KeyMatch>;
  /** Fetches the remote keys now (start-up); resolves to an error message or null. */
  warm(): Promise<string | null>;
  close(): Promise<void>;
}

export const DEFAULT_JWKS_CACHE_S = 300;
export const DEFAULT_JWKS_COOLDOWN_S = 10;

type GetKey = (header: JWSHeaderParameters) => Promise<CryptoKey>;

interface PemKey {
  alg: PoaAlg;
  key: CryptoKey;
}

async function pemKey(entry: string): Promise<{ pem: PemKey; thumbprint: string }> {
  const text = entry.includes("-----BEGIN") ? entry : readFileSync(entry, "utf8");
  const object = createPublicKey(text);
  const alg = algOf(object);
  const spki = object.export({ type: "spki", format: "pem" }).toString();
  return {
    pem: { alg, key: await importSPKI(spki, alg) },
    thumbprint: await calculateJwkThumbprint(await exportJWK(object)),
  };
}

/** JWKS members usable with an allowed algorithm (no symmetric keys, no foreign algs). */
function usableJwks(jwks: { keys: unknown[] }, where: string): JWK[] {
  if (!Array.isArray(jwks.keys)) throw new Error(`${where} is not a JWKS (no "keys" array)`);
  return (jwks.keys as JWK[]).filter(
    k => k.kty !== "oct" && (k.alg === undefined || (POA_ALGS as readonly string[]).includes(k.alg)),
  );
}

function jwksOf(s: KeySources): JWK[] {
  const fromFile = s.jwks_file
    ? usableJwks(JSON.parse(readFileSync(s.jwks_file, "utf8")) as { keys: unknown[] }, s.jwks_file)
    : [];
  return [...fromFile, ...(s.jwks ? usableJwks(s.jwks, "inline jwks") : [])];
}

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

/** The keys a JWKS offers for this header: none, one, or several to try in turn. */
async function candidates(getKey: GetKey, header: JWSHeaderParameters): Promise<CryptoKey[]> {
  try {
    return [await getKey(header)];
  } catch (err) {
    if (codeOf(err) === "ERR_JWKS_NO_MATCHING_KEY") return [];
    if (codeOf(err) !== "ERR_JWKS_MULTIPLE_MATCHING_KEYS") throw err;
    const keys: CryptoKey[] = [];
    for await (const k of err as AsyncIterable<CryptoKey>) keys.push(k);
    return keys;
  }
}

/** First key that verifies the signature; other jose errors (malformed JWS) propagate. */
async function firstVerifying(token: string, alg: PoaAlg, keys: CryptoKey[]): Promise<KeyMatch> {
  for (const key of keys) {
    try {
      const { payload } = await compactVerify(token, key, { algorithms: [alg] });
      return { status: "verified", payload };
    } catch (err) {
      if (codeOf(err) !== "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") throw err;
    }
  }
  return { status: "no_key" };
}

function remoteSet(s: KeySources): { getKey: GetKey; reload(): Promise<void>; close(): Promise<void> } {
  const dispatcher = new Agent({ connect: s.jwks_ca_file ? { ca: readFileSync(s.jwks_ca_file) } : {} });
  const fetchImpl = ((url: string, init: Parameters<FetchImplementation>[1]) =>
    undiciFetch(url, { ...init, dispatcher })) as unknown as FetchImplementation;
  const set = createRemoteJWKSet(new URL(s.jwks_url!), {
    cacheMaxAge: (s.jwks_cache_s ?? DEFAULT_JWKS_CACHE_S) * 1000,
    cooldownDuration: (s.jwks_cooldown_s ?? DEFAULT_JWKS_COOLDOWN_S) * 1000,
    timeoutDuration: 5000,
    [customFetch]: fetchImpl,
  });
  return { getKey: h => set(h), reload: () => set.reload(), close: () => dispatcher.close() };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Loads local keys now (throws on unreadable files); the JWKS URL is fetched on demand. */
export async function createKeySet(s: KeySources): Promise<KeySet> {
  const pems = await Promise.all((s.keys ?? []).map(pemKey));
  const jwks = jwksOf(s);
  const local = jwks.length ? createLocalJWKSet({ keys: jwks }) : undefined;
  const remote = s.jwks_url ? remoteSet(s) : undefined;
  const thumbprints = [
    ...pems.map(p => p.thumbprint),
    ...(await Promise.all(jwks.map(k => calculateJwkThumbprint(k)))),
  ];
  async function verify(token: string, header: JWSHeaderParameters & { alg: PoaAlg }): Promise<KeyMatch> {
    const fromPem = pems.filter(p => p.pem.alg === header.alg).map(p => p.pem.key);
    const fromLocal = local ? await candidates(local, header).catch(() => []) : [];
    const found = await firstVerifying(token, header.alg, [...fromPem, ...fromLocal]);
    if (found.status === "verified" || !remote) return found;
    let fromRemote: CryptoKey[];
    try {
      fromRemote = await candidates(remote.getKey, header);
    } catch (err) {
      return { status: "unavailable", message: `JWKS ${s.jwks_url}: ${messageOf(err)}` };
    }
    return firstVerifying(token, header.alg, fromRemote);
  }
  return {
    localCount: pems.length + jwks.length,
    thumbprints,
    remote: remote !== undefined,
    verify,
    warm: async () =>
      remote
        ? remote.reload().then(
            () => null,
            (err: unknown) => messageOf(err),
          )
        : null,
    close: async () => remote?.close(),
  };
}
