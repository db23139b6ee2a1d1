// `npm run poa -- keygen|mint|approve ...`: development PoA tokens and approver attestations for
// the reference broker. The library behind it is broker/poa.ts (mintPoa, signAttestation,
// generateDevKeys), which tests and the sandbox call directly.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  POA_ALGS,
  generateDevKeys,
  mintPoa,
  parseTarget,
  readPrivateKey,
  signAttestation,
  type PoaAlg,
} from "../broker/poa";
import { CHANGE_OPTIONS, CHANGE_USAGE, changeSha256FromArgs, digestCommand } from "./poa-change";

const USAGE = `usage:
  npm run poa -- keygen [--out <dir>] [--alg EdDSA|ES256|RS256] [--name <file name>]
      writes <dir>/<name>.key (private, PKCS#8), .pub (SPKI) and .jwks.json (default dir: .data/poa,
      name: poa-signing, alg: EdDSA, the algorithm the upstream ATB's broker accepts besides RS256)
  npm run poa -- mint --agent <spiffe id> --action <action> --target <kind>/<namespace>/<name>
                  [--approver <id>]... [--executive <id>]... [--attestation <jws|file>]... [--ttl <s>]
                  [--max-replicas <n>] [--min-replicas <n>] [--tier LOW|MEDIUM|HIGH|CRITICAL]
                  [--jti <id>] [--issuer <iss>] [--key <pem>] [change options, below]
      prints a signed token. --action takes the CRD action (scale) or k8s.<Kind>.<action>.
      One --approver -> leg.approval; two or more -> leg.dual_control (both count only where the
      broker's issuer profile for this key vouches for them). --attestation embeds an approver's
      attestation in leg.attestations. Default key: .data/poa/poa-signing.key; default iss: atb-dev-minter
  npm run poa -- approve --key <approver private key> --approver <id>
                  --change <sha256:...|file with the change JSON> (--jti <PoA jti> | --task <task uid>)...
                  [--roles executive,...] [--ttl <s>]
      prints an approver attestation (a JWS with typ atb-attestation+jwt) binding the change digest
      to the PoA's jti and/or the task's uid; default ttl 900 s
  npm run poa -- digest (--action <action> [--kind <kind> | --target <kind>/<ns>/<name>] --payload <json|file>
                  | --task-file <file> | --change <json|file>) [--revision <n>] [--template-hash <hash>]
                  [--value-digest <key>=sha256:<hex>]... [--canonical]
      prints the change digest sha256:<hex> a token binds as con.change_sha256 (--canonical: the
      canonical change's RFC 8785 JSON instead); docs/authorization.md, "The change digest"
${CHANGE_USAGE}`;

const DEFAULT_DIR = ".data/poa";

function int(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

async function keygen(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { out: { type: "string" }, alg: { type: "string" }, name: { type: "string" } },
  });
  const alg = values.alg ?? "EdDSA";
  if (!(POA_ALGS as readonly string[]).includes(alg)) throw new Error(`--alg must be one of ${POA_ALGS.join(", ")}`);
  const files = await generateDevKeys(resolve(values.out ?? DEFAULT_DIR), alg as PoaAlg, values.name);
  console.log(JSON.stringify(files, null, 2));
}

/** A compact JWS given inline, or the path of a file holding one. */
function jwsArg(value: string): string {
  return value.split(".").length === 3 && !existsSync(value) ? value : readFileSync(value, "utf8").trim();
}

async function mint(args: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args,
    options: {
      agent: { type: "string" },
      action: { type: "string" },
      target: { type: "string" },
      approver: { type: "string", multiple: true },
      executive: { type: "string", multiple: true },
      attestation: { type: "string", multiple: true },
      ttl: { type: "string" },
      "max-replicas": { type: "string" },
      "min-replicas": { type: "string" },
      tier: { type: "string" },
      jti: { type: "string" },
      issuer: { type: "string" },
      key: { type: "string" },
      ...CHANGE_OPTIONS,
    },
  });
  if (!v.agent || !v.action || !v.target) throw new Error("mint needs --agent, --action and --target");
  const token = await mintPoa({
    key: readPrivateKey(resolve(v.key ?? `${DEFAULT_DIR}/poa-signing.key`)),
    agent: v.agent,
    action: v.action,
    target: parseTarget(v.target),
    approvers: v.approver,
    executiveApprovers: v.executive,
    attestations: v.attestation?.map(jwsArg),
    ttlSeconds: int("ttl", v.ttl),
    maxReplicas: int("max-replicas", v["max-replicas"]),
    minReplicas: int("min-replicas", v["min-replicas"]),
    tier: v.tier,
    jti: v.jti,
    issuer: v.issuer,
    changeSha256: changeSha256FromArgs(v, v.action, parseTarget(v.target).kind),
  });
  process.stdout.write(`${token}\n`);
}

/** `sha256:<hex>` as given, or the change JSON in a file (digested by signAttestation). */
function changeArg(value: string): { changeSha256: string } | { change: unknown } {
  if (value.startsWith("sha256:")) return { changeSha256: value };
  return { change: JSON.parse(readFileSync(value, "utf8")) as unknown };
}

async function approve(args: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args,
    options: {
      key: { type: "string" },
      approver: { type: "string" },
      change: { type: "string" },
      jti: { type: "string" },
      task: { type: "string" },
      roles: { type: "string" },
      ttl: { type: "string" },
    },
  });
  if (!v.key || !v.approver || !v.change) throw new Error("approve needs --key, --approver and --change");
  if (!v.jti && !v.task) throw new Error("approve needs --jti <PoA jti> and/or --task <task uid>");
  const attestation = await signAttestation({
    key: readPrivateKey(resolve(v.key)),
    approver: v.approver,
    ...changeArg(v.change),
    poaJti: v.jti,
    taskUid: v.task,
    roles: v.roles
      ?.split(",")
      .map(r => r.trim())
      .filter(Boolean),
    ttlSeconds: int("ttl", v.ttl),
  });
  process.stdout.write(`${attestation}\n`);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === "keygen") return keygen(rest);
  if (command === "mint") return mint(rest);
  if (command === "approve") return approve(rest);
  if (command === "digest") return digestCommand(rest);
  console.error(USAGE);
  process.exit(command === undefined || command === "help" || command === "--help" ? 0 : 2);
}

main().catch(err => {
  console.error(`poa: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
  process.exit(1);
});
