// The sandbox's samples (samples/): the workloads and their later releases, the sample tasks
// with a PoA minted for each as samples/expectations.json says, the approvers' keys and
// attestations, and the wait for every task's expected phase and risk tier. Used by the sandbox
// (tools/sandbox.ts) and by the deploy-path check (tools/deploy-path.ts), which runs the same
// samples through the operator's generated pods.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { load, loadAll } from "js-yaml";
import { generateDevKeys, readPrivateKey, signAttestation } from "../broker/poa";
import type { Binaries } from "./controlplane/binaries";
import { kubectl, type ClusterState } from "./controlplane/cluster";
import type { Stack, StackOptions } from "./stack";

const samples = join(__dirname, "..", "samples");
/** The broker policy data the samples are written for. */
export const SAMPLE_BROKER_DATA = join(samples, "broker-data.json");
/** The namespaces the samples work in. */
export const SAMPLE_NAMESPACES = ["production", "staging"];

export interface Expectation {
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

export const expectations = (): Expectation[] =>
  JSON.parse(readFileSync(join(samples, "expectations.json"), "utf8")) as Expectation[];

/** The approvers' own signing keys (made at start), by approver id. */
export type ApproverKeys = Map<string, string>;

/** A key pair for every approver the samples' attestations name; the broker gets the public keys. */
export async function approverKeys(dataDir: string): Promise<ApproverKeys> {
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
export function approverTrust(keys: ApproverKeys): StackOptions["brokerTrust"] {
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

/** Mints a PoA for a sample task (Stack.mint, or the same against another control plane). */
export type Mint = Stack["mint"];

export async function applyTasks(mint: Mint, bin: Binaries, kubeconfig: string, keys: ApproverKeys): Promise<void> {
  const want = new Map(expectations().map(e => [`${e.namespace}/${e.name}`, e]));
  const dir = join(samples, "tasks");
  for (const f of readdirSync(dir)
    .filter(f => f.endsWith(".yaml"))
    .sort()) {
    const doc = load(readFileSync(join(dir, f), "utf8")) as TaskDoc;
    const e = want.get(`${doc.metadata.namespace}/${doc.metadata.name}`);
    if (!e) throw new Error(`samples/tasks/${f}: no entry in samples/expectations.json`);
    const t = doc.spec.target;
    doc.spec.poaToken = await mint({
      agent: doc.spec.agentId,
      action: doc.spec.action,
      target: e.poa.target ?? { kind: t.kind, namespace: t.namespace, name: t.name },
      approvers: e.poa.approvers,
      maxReplicas: e.poa.maxReplicas,
      ttlSeconds: 300,
      payload: e.poa.change ? (doc.spec.payload ?? {}) : undefined,
    });
    if (e.poa.attestations?.length) doc.spec.attestations = await attest(doc.spec.poaToken, e.poa.attestations, keys);
    kubectl(bin, kubeconfig, ["apply", "-f", "-"], JSON.stringify(doc));
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

export async function waitForSamples(
  b: Binaries,
  s: Pick<ClusterState, "kubeconfig">,
  timeoutMs: number,
): Promise<boolean> {
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
export function rollOut(b: Binaries, kubeconfig: string, folder: string): void {
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
