// Command line and environment of `npm run broker`, parsed by one pure function (flags win over
// env). --dev <dir> fills in throwaway TLS material and PoA keys (created by main.ts).
import { parseArgs } from "node:util";
import type { BrokerOptions } from "./server";
import { PRESETS, type PresetName } from "./trust";

export const BROKER_USAGE = `usage: npm run broker -- [flags]   (each flag also reads the env variable shown)
  --host <addr>                 ATB_BROKER_HOST            listen address (default 127.0.0.1)
  --port <n>                    ATB_BROKER_PORT            listen port (default 8443; 0 = any free port)
  --tls-cert <pem>              ATB_BROKER_TLS_CERT        server certificate
  --tls-key <pem>               ATB_BROKER_TLS_KEY         server key
  --client-ca <pem>             ATB_BROKER_CLIENT_CA       CA that signs accepted client certificates
  --poa-key <pem> (repeatable)  ATB_POA_PUBLIC_KEYS        PoA verification public keys (comma-separated in env),
                                                           matched by algorithm whatever the token's kid
  --poa-jwks <file>             ATB_POA_JWKS               PoA verification keys as a JWKS file
  --poa-jwks-url <url>          ATB_POA_JWKS_URL           PoA verification keys from a JWKS URL (cached 300 s,
                                                           fetched again on an unknown kid)
  --poa-jwks-ca <pem>           ATB_POA_JWKS_CA            CA bundle for an https --poa-jwks-url
  --poa-jwks-allow-http         ATB_POA_JWKS_ALLOW_HTTP    allow a plain http --poa-jwks-url on a non-loopback host
  --poa-profile <name>          ATB_POA_PROFILE            what the keys above vouch for: default (no leg block),
                                                           agentauth (iss atb-agentauth, typ JWT, dual_control
                                                           with required: true) or dev (every block; dev minter)
  --poa-issuer <iss>            ATB_POA_ISSUER             iss the keys above must sign (overrides the profile's)
  --poa-audience <aud>          ATB_POA_AUDIENCE           aud the tokens of the keys above must name
  --trust-file <file>           ATB_TRUST_FILE             issuer profiles and approver keys (JSON or YAML)
  --policy-dir <dir>            ATB_POLICY_DIR             Rego policies (default ./policies)
  --data-file <json>            ATB_POLICY_DATA            policy data (default <policy-dir>/data.json)
  --max-token-lifetime <s>      ATB_MAX_TOKEN_LIFETIME     max exp-iat (default 300, at most 900)
  --clock-skew <s>              ATB_CLOCK_SKEW             tolerated clock skew (default 30)
  --jti-cache-size <n>          ATB_JTI_CACHE_SIZE         live jtis remembered (default 100000)
  --audit-log <dest>            ATB_AUDIT_LOG              stdout (default), stderr or a file path
  --opa-bin <path>              ATB_OPA_BIN                opa binary (default: the control plane cache)
  --log-level <level>           ATB_LOG_LEVEL              info (default), debug, warn, error
  --dev <dir>                   ATB_BROKER_DEV_DIR         create/reuse a throwaway CA, certs and PoA keys in <dir>`;

export interface BrokerCli {
  options: Omit<BrokerOptions, "tls" | "logger"> & { tls: Partial<BrokerOptions["tls"]> };
  logLevel: string;
  devDir?: string;
  help: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

function intOf(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

const FLAGS = {
  host: { type: "string" },
  port: { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "client-ca": { type: "string" },
  "poa-key": { type: "string", multiple: true },
  "poa-jwks": { type: "string" },
  "poa-jwks-url": { type: "string" },
  "poa-jwks-ca": { type: "string" },
  "poa-jwks-allow-http": { type: "boolean" },
  "poa-profile": { type: "string" },
  "poa-issuer": { type: "string" },
  "poa-audience": { type: "string" },
  "trust-file": { type: "string" },
  "policy-dir": { type: "string" },
  "data-file": { type: "string" },
  "max-token-lifetime": { type: "string" },
  "clock-skew": { type: "string" },
  "jti-cache-size": { type: "string" },
  "audit-log": { type: "string" },
  "opa-bin": { type: "string" },
  "log-level": { type: "string" },
  dev: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Flags = ReturnType<typeof parseFlags>;

function parseFlags(argv: string[]) {
  return parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }).values;
}

function poaOf(f: Flags, env: Env): BrokerCli["options"]["poa"] {
  const envKeys = env.ATB_POA_PUBLIC_KEYS?.split(",")
    .map(s => s.trim())
    .filter(Boolean);
  const lifetime = intOf("--max-token-lifetime", f["max-token-lifetime"] ?? env.ATB_MAX_TOKEN_LIFETIME) ?? 300;
  if (lifetime < 1 || lifetime > 900) throw new Error(`--max-token-lifetime must be 1..900 s, got ${lifetime}`);
  return {
    publicKeyFiles: f["poa-key"] ?? envKeys ?? [],
    jwksFile: f["poa-jwks"] ?? env.ATB_POA_JWKS,
    ...trustOf(f, env),
    maxLifetimeS: lifetime,
    clockSkewS: intOf("--clock-skew", f["clock-skew"] ?? env.ATB_CLOCK_SKEW) ?? 30,
  };
}

/** The trust settings besides the PEM keys and the JWKS file; unset ones are left out. */
function trustOf(f: Flags, env: Env): Partial<BrokerCli["options"]["poa"]> {
  const preset = f["poa-profile"] ?? env.ATB_POA_PROFILE;
  if (preset !== undefined && !Object.hasOwn(PRESETS, preset))
    throw new Error(`--poa-profile must be one of ${Object.keys(PRESETS).join(", ")}, got "${preset}"`);
  const allowHttp = f["poa-jwks-allow-http"] ?? (env.ATB_POA_JWKS_ALLOW_HTTP === "true" || undefined);
  const settings = {
    jwksUrl: f["poa-jwks-url"] ?? env.ATB_POA_JWKS_URL,
    jwksCaFile: f["poa-jwks-ca"] ?? env.ATB_POA_JWKS_CA,
    jwksAllowHttp: allowHttp,
    preset: preset as PresetName | undefined,
    issuer: f["poa-issuer"] ?? env.ATB_POA_ISSUER,
    audience: f["poa-audience"] ?? env.ATB_POA_AUDIENCE,
    trustFile: f["trust-file"] ?? env.ATB_TRUST_FILE,
  };
  return Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined && v !== ""));
}

function listenOf(f: Flags, env: Env): { host: string; port: number } {
  const port = intOf("--port", f.port ?? env.ATB_BROKER_PORT) ?? 8443;
  if (port > 65535) throw new Error("--port must be at most 65535");
  return { host: f.host ?? env.ATB_BROKER_HOST ?? "127.0.0.1", port };
}

function tlsOf(f: Flags, env: Env): BrokerCli["options"]["tls"] {
  return {
    certFile: f["tls-cert"] ?? env.ATB_BROKER_TLS_CERT,
    keyFile: f["tls-key"] ?? env.ATB_BROKER_TLS_KEY,
    clientCaFile: f["client-ca"] ?? env.ATB_BROKER_CLIENT_CA,
  };
}

/** Pure: argv (without node and script) and env to broker options. Throws on bad values. */
export function parseBrokerCli(argv: string[], env: Env): BrokerCli {
  const f = parseFlags(argv);
  const cacheSize = intOf("--jti-cache-size", f["jti-cache-size"] ?? env.ATB_JTI_CACHE_SIZE) ?? 100_000;
  if (cacheSize === 0) throw new Error("--jti-cache-size must be at least 1");
  const options: BrokerCli["options"] = {
    ...listenOf(f, env),
    tls: tlsOf(f, env),
    poa: poaOf(f, env),
    policyDir: f["policy-dir"] ?? env.ATB_POLICY_DIR,
    dataFile: f["data-file"] ?? env.ATB_POLICY_DATA,
    opaBin: f["opa-bin"] ?? env.ATB_OPA_BIN,
    jtiCacheSize: cacheSize,
    audit: f["audit-log"] ?? env.ATB_AUDIT_LOG ?? "stdout",
  };
  return {
    options,
    logLevel: f["log-level"] ?? env.ATB_LOG_LEVEL ?? "info",
    devDir: f.dev ?? env.ATB_BROKER_DEV_DIR,
    help: f.help ?? false,
  };
}

/** The options with every required file set, or an error listing what is missing. */
export function completeOptions(cli: BrokerCli): Omit<BrokerOptions, "logger"> {
  const { tls, poa } = cli.options;
  const missing = [
    !tls.certFile && "--tls-cert",
    !tls.keyFile && "--tls-key",
    !tls.clientCaFile && "--client-ca",
    !(poa.publicKeyFiles?.length || poa.jwksFile || poa.jwksUrl || poa.trustFile) &&
      "--poa-key, --poa-jwks, --poa-jwks-url or --trust-file",
  ].filter(Boolean);
  if (missing.length) throw new Error(`missing ${missing.join(", ")} (or use --dev <dir> for throwaway material)`);
  return { ...cli.options, tls: { certFile: tls.certFile!, keyFile: tls.keyFile!, clientCaFile: tls.clientCaFile! } };
}
