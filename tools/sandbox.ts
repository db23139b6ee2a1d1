// npm run sandbox [-- --once]: the one-command demo. Starts the local control plane with KWOK
// nodes, the reference broker (mTLS, a fresh dev signing key, real OPA; policy data from
// samples/broker-data.json) and the operator with its admission webhooks; creates the sample
// workloads and then rolls out their later releases (samples/releases/, so the rollback sample
// has an earlier revision), waiting for each rollout; mints a PoA for every sample task as
// samples/expectations.json describes (and, for the attested sample, the approvers' attestations,
// signed with keys made at start whose public halves the broker trusts); applies the tasks and prints `kubectl get agenttasks -A`
// as they finish. Without --once it keeps running until Ctrl-C and then stops everything it
// started (killed instead, it leaves nothing running either: the control plane, OPA and the
// operator are tied to it, see tools/reaper.ts); with --once it exits 0 only when every sample
// reached its expected phase and risk tier.
import { readFileSync, readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { load, loadAll } from "js-yaml";
import { binDirs, ensureBinaries, type Binaries } from "./controlplane/binaries";
import { down, kubectl, up, type ClusterState } from "./controlplane/cluster";
import { generateDevKeys, readPrivateKey, signAttestation } from "../broker/poa";
import type { PresetName } from "../broker/trust";
import { LOCAL_ADMIN_BINDING } from "./requester-binding";
import { installCrds, startStack, writeScopeParams, type Stack, type StackOptions } from "./stack";

const root = join(__dirname, "..");
const dataDir = process.env.ATB_SANDBOX_DIR ?? join(root, ".data", "sandbox");
const samples = join(root, "samples");
const NAMESPACES = ["production", "staging"];

interface Expectation {
  name: string;
  namespace: string;
  phase: string;
  risk: string;
  /**
   * change: the token binds the sample's own change (con.change_sha256), as MEDIUM and up require.
   * attestations: approvers who each sign an attestation of that change for the minted token (their
   * keys are made at start and given to the broker), instead of approval blocks in the token.
   */
  poa: { approvers?: string[]; target?: string; maxReplicas?: number; change?: boolean; attestations?: string[] };
}

interface Workload {
  kind: string;
  metadata: { name: string; namespace: string };
}

interface TaskDoc {
  metadata: { name: string; namespace: string };
  spec: {
    agentId: string;
    poaToken: string;
    action: string;
    target: { kind: string; name: string; namespace: string };
    payload?: Record<string, unknown>;
    attestations?: string[];
  };
}

const expectations = (): Expectation[] =>
  JSON.parse(readFileSync(join(samples, "expectations.json"), "utf8")) as Expectation[];

/** The approvers' own signing keys (made at start), by approver id. */
type ApproverKeys = Map<string, string>;

/** A key pair for every approver the samples' attestations name; the broker gets the public keys. */
async function approverKeys(): Promise<ApproverKeys> {
  const ids = [...new Set(expectations().flatMap(e => e.poa.attestations ?? []))];
  const keys: ApproverKeys = new Map();
  for (const id of ids) {
    const name = id
      .split("/")
      .pop()!
      .replace(/[^A-Za-z0-9_-]/g, "_");
    keys.set(id, (await generateDevKeys(join(dataDir, "approvers"), "EdDSA", name)).privateKeyFile);
  }
  return keys;
}

/** The approvers as the broker's trust configuration knows them: id and public key. */
function approverTrust(keys: ApproverKeys): StackOptions["brokerTrust"] {
  const approvers = [...keys].map(([id, privateKeyFile]) => ({
    id,
    keys: [privateKeyFile.replace(/\.key$/, ".pub")],
  }));
  return approvers.length ? { trust: { approvers } } : {};
}

/** Each approver's attestation of the token's change, bound to its jti (what the approver saw). */
async function attest(token: string, approvers: string[], keys: ApproverKeys): Promise<string[]> {
  const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")) as {
    jti: string;
    con?: { change_sha256?: string };
  };
  const changeSha256 = claims.con?.change_sha256;
  if (!changeSha256) throw new Error("an attested sample needs a token bound to its change (poa.change: true)");
  return Promise.all(
    approvers.map(approver =>
      signAttestation({ key: readPrivateKey(keys.get(approver)!), approver, changeSha256, poaJti: claims.jti }),
    ),
  );
}

async function applyTasks(stack: Stack, keys: ApproverKeys): Promise<void> {
  const want = new Map(expectations().map(e => [`${e.namespace}/${e.name}`, e]));
  const dir = join(samples, "tasks");
  for (const f of readdirSync(dir)
    .filter(f => f.endsWith(".yaml"))
    .sort()) {
    const doc = load(readFileSync(join(dir, f), "utf8")) as TaskDoc;
    const e = want.get(`${doc.metadata.namespace}/${doc.metadata.name}`);
    if (!e) throw new Error(`samples/tasks/${f}: no entry in samples/expectations.json`);
    const t = doc.spec.target;
    doc.spec.poaToken = await stack.mint({
      agent: doc.spec.agentId,
      action: doc.spec.action,
      target: e.poa.target ?? { kind: t.kind, namespace: t.namespace, name: t.name },
      approvers: e.poa.approvers,
      maxReplicas: e.poa.maxReplicas,
      ttlSeconds: 300,
      payload: e.poa.change ? (doc.spec.payload ?? {}) : undefined,
    });
    if (e.poa.attestations?.length) doc.spec.attestations = await attest(doc.spec.poaToken, e.poa.attestations, keys);
    kubectl(stack.bin, stack.cluster.kubeconfig, ["apply", "-f", "-"], JSON.stringify(doc));
  }
}

function observed(b: Binaries, kubeconfig: string): Map<string, { phase: string; risk: string }> {
  const out = kubectl(b, kubeconfig, [
    "get",
    "agenttasks",
    "-A",
    "-o",
    "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase} {.status.atbResult.riskTier}{'\\n'}{end}",
  ]);
  const rows = out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map(l => l.split(" "));
  return new Map(rows.map(([key, phase, risk]) => [key, { phase: phase ?? "", risk: risk ?? "" }]));
}

async function waitForSamples(b: Binaries, s: ClusterState, timeoutMs: number): Promise<boolean> {
  const want = expectations();
  const deadline = Date.now() + timeoutMs;
  let lastTable = "";
  for (;;) {
    const table = kubectl(b, s.kubeconfig, ["get", "agenttasks", "-A"]);
    if (table !== lastTable) console.log(`\n$ kubectl get agenttasks -A\n${(lastTable = table)}`);
    const got = observed(b, s.kubeconfig);
    const wrong = want.filter(e => {
      const g = got.get(`${e.namespace}/${e.name}`);
      return g?.phase !== e.phase || g?.risk !== e.risk;
    });
    if (wrong.length === 0) return true;
    if (Date.now() > deadline) {
      for (const e of wrong) {
        const g = got.get(`${e.namespace}/${e.name}`);
        console.log(
          `[sandbox] ${e.namespace}/${e.name}: expected ${e.phase} ${e.risk}, got ${g?.phase || "(none)"} ${g?.risk || "(none)"}`,
        );
      }
      return false;
    }
    await new Promise(r => setTimeout(r, 1000));
  }
}

/** Applies samples/<folder>/*.yaml and waits until every Deployment in it has rolled out. */
function rollOut(b: Binaries, kubeconfig: string, folder: string): void {
  const dir = join(samples, folder);
  const files = readdirSync(dir)
    .filter(f => f.endsWith(".yaml"))
    .sort();
  for (const f of files) kubectl(b, kubeconfig, ["apply", "-f", join(dir, f)]);
  for (const f of files) {
    for (const doc of loadAll(readFileSync(join(dir, f), "utf8")) as (Workload | null)[]) {
      if (doc?.kind !== "Deployment") continue;
      const { name, namespace } = doc.metadata;
      kubectl(b, kubeconfig, ["rollout", "status", `deployment/${name}`, "-n", namespace, "--timeout=120s"]);
    }
  }
}

function newcomerHelp(stack: Stack, b: Binaries): string {
  const key = relative(root, stack.material.poaPrivateKey);
  return [
    "Try it yourself (in another shell, from the repository folder):",
    "",
    `  export KUBECONFIG=${stack.cluster.kubeconfig}`,
    `  export PATH=${binDirs(b).join(":")}:$PATH`,
    "",
    `  TOKEN=$(npm run -s poa -- mint --key ${key} --agent spiffe://atb.example.com/agent/me --action scale --target Deployment/production/web-frontend --max-replicas 10)`,
    `  sed "s/TOKEN_HERE/$TOKEN/" samples/my-task.yaml | kubectl apply -f - && kubectl get agenttask my-task -n production -w`,
    "",
    // The holder binding (docs/authorization.md): this kubeconfig's user may claim these agents only.
    `The broker lets the user of this kubeconfig (${LOCAL_ADMIN_BINDING.users!.join(", ")}) act as ${LOCAL_ADMIN_BINDING.agents.join(", ")}`,
    "and nothing else (an entry the sandbox adds to requester_binding; the shipped policy data has no entries).",
    "",
    "Ctrl-C stops the sandbox and everything it started.",
  ].join("\n");
}

/**
 * The broker's trust settings, over the stack's default (its dev key under the "dev" profile):
 * --trust-file <file> or ATB_SANDBOX_TRUST_FILE adds issuer profiles and approver keys,
 * --poa-profile <name> or ATB_SANDBOX_POA_PROFILE says what the dev key vouches for.
 */
function brokerTrust(): StackOptions["brokerTrust"] {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const trustFile = arg("--trust-file") ?? process.env.ATB_SANDBOX_TRUST_FILE;
  const preset = arg("--poa-profile") ?? process.env.ATB_SANDBOX_POA_PROFILE;
  return {
    ...(trustFile ? { trustFile: resolve(trustFile) } : {}),
    ...(preset ? { preset: preset as PresetName } : {}),
  };
}

async function main(): Promise<number> {
  const once = process.argv.includes("--once");
  const b = ensureBinaries(l => console.log(l));
  const s = await up({ dataDir: join(dataDir, "cluster"), nodes: 3, log: l => console.log(l) });
  let stack: Stack | undefined;
  const cleanup = async () => {
    await stack?.stop().catch(() => undefined);
    await down(s.dataDir, l => console.log(l));
  };
  // A terminal's Ctrl-C reaches this process twice (directly, and passed on by tools/run-ts.mjs):
  // the first one cleans up, the rest are ignored so they cannot cut the cleanup short.
  let stopping = false;
  const onSignal = (code: number) => {
    if (stopping) return;
    stopping = true;
    void cleanup().then(() => process.exit(code));
  };
  process.on("SIGINT", () => onSignal(130));
  process.on("SIGTERM", () => onSignal(143));
  try {
    installCrds(b, s.kubeconfig);
    const keys = await approverKeys();
    // As the install does: the scope policy refuses tasks outside the operator's namespaces.
    writeScopeParams(b, s.kubeconfig, { WATCH_NAMESPACE: NAMESPACES.join(",") });
    stack = await startStack({
      cluster: s,
      workDir: dataDir,
      namespaces: NAMESPACES,
      brokerDataFile: join(samples, "broker-data.json"),
      brokerTrust: { ...brokerTrust(), ...approverTrust(keys) },
      // The sandbox is a cluster of its own: a task created outside its namespaces is marked
      // Failed/OutOfScope after the product's grace, as in production.
      markOutOfScope: true,
    });
    console.log(`[sandbox] broker at https://127.0.0.1:${stack.brokerPort} (audit: ${stack.auditFile})`);
    console.log(
      `[sandbox] operator running (logs: ${stack.operator.logFile}; metrics: http://127.0.0.1:${stack.metricsPort}/metrics)`,
    );
    rollOut(b, s.kubeconfig, "workloads");
    // Then the later releases: those workloads have a revision history before any task runs.
    rollOut(b, s.kubeconfig, "releases");
    await applyTasks(stack, keys);
    const ok = await waitForSamples(b, s, 240_000);
    console.log(
      ok
        ? "\n[sandbox] every sample task reached its expected phase and risk tier"
        : "\n[sandbox] some sample tasks did not reach their expected phase",
    );
    if (once) {
      await cleanup();
      return ok ? 0 : 1;
    }
    console.log(`\n${newcomerHelp(stack, b)}`);
    await new Promise<never>(() => undefined);
    return 0;
  } catch (err) {
    console.error(`[sandbox] ${err instanceof Error ? err.message : String(err)}`);
    await cleanup();
    return 1;
  }
}

main().then(
  code => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
