// `npm run poa -- keygen|mint ...`: development PoA tokens for the reference broker. The library
// behind it is broker/poa.ts (mintPoa, generateDevKeys), which tests and the sandbox call directly.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { generateDevKeys, mintPoa, parseTarget, readPrivateKey, type PoaAlg } from "../broker/poa";

const USAGE = `usage:
  npm run poa -- keygen [--out <dir>] [--alg ES256|EdDSA|RS256]
      writes <dir>/poa-signing.key (private, PKCS#8), .pub (SPKI) and .jwks.json (default dir: .data/poa)
  npm run poa -- mint --agent <spiffe id> --action <action> --target <kind>/<namespace>/<name>
                  [--approver <id>]... [--executive <id>]... [--ttl <s>] [--max-replicas <n>]
                  [--min-replicas <n>] [--tier LOW|MEDIUM|HIGH|CRITICAL] [--jti <id>] [--key <pem>]
      prints a signed token. --action takes the CRD action (scale) or k8s.<Kind>.<action>.
      One --approver -> leg.approval; two or more -> leg.dual_control. Default key: .data/poa/poa-signing.key`;

const DEFAULT_DIR = ".data/poa";

function int(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

async function keygen(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { out: { type: "string" }, alg: { type: "string" } } });
  const files = await generateDevKeys(resolve(values.out ?? DEFAULT_DIR), (values.alg ?? "ES256") as PoaAlg);
  console.log(JSON.stringify(files, null, 2));
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
      ttl: { type: "string" },
      "max-replicas": { type: "string" },
      "min-replicas": { type: "string" },
      tier: { type: "string" },
      jti: { type: "string" },
      key: { type: "string" },
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
    ttlSeconds: int("ttl", v.ttl),
    maxReplicas: int("max-replicas", v["max-replicas"]),
    minReplicas: int("min-replicas", v["min-replicas"]),
    tier: v.tier,
    jti: v.jti,
  });
  process.stdout.write(`${token}\n`);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === "keygen") return keygen(rest);
  if (command === "mint") return mint(rest);
  console.error(USAGE);
  process.exit(command === undefined || command === "help" || command === "--help" ? 0 : 2);
}

main().catch(err => {
  console.error(`poa: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
  process.exit(1);
});
