// npm run sandbox [-- --once]: the one-command demo. Starts the local control plane with KWOK
// nodes, installs the CRD, starts the operator, creates the sample workloads and AgentTasks from
// samples/, and prints `kubectl get agenttasks -A` as tasks progress. Without --once it keeps
// running until Ctrl-C and then stops everything it started; with --once it exits 0 only when
// every sample task reached the phase samples/expectations.json gives for it.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import { binDirs, ensureBinaries } from "./controlplane/binaries";
import { down, kubectl, up, type ClusterState } from "./controlplane/cluster";
import { startOperator, type OperatorHandle } from "./operator";
import type { Binaries } from "./controlplane/binaries";

const root = join(__dirname, "..");
const dataDir = process.env.ATB_SANDBOX_DIR ?? join(root, ".data", "sandbox");
const samples = join(root, "samples");

interface Expectation {
  namespace: string;
  name: string;
  phase: string;
}

function expectations(): Expectation[] {
  return JSON.parse(readFileSync(join(samples, "expectations.json"), "utf8")) as Expectation[];
}

function applyDir(b: Binaries, kubeconfig: string, dir: string): void {
  for (const f of readdirSync(dir)
    .filter(f => f.endsWith(".yaml"))
    .sort()) {
    kubectl(b, kubeconfig, ["apply", "-f", join(dir, f)]);
  }
}

/** Sample tasks carry a placeholder token; it is replaced here with one minted for this run. */
function applyTasks(b: Binaries, kubeconfig: string, mint: (doc: Record<string, unknown>) => string): void {
  const dir = join(samples, "tasks");
  for (const f of readdirSync(dir)
    .filter(f => f.endsWith(".yaml"))
    .sort()) {
    const doc = load(readFileSync(join(dir, f), "utf8")) as { spec: Record<string, unknown> };
    doc.spec.poaToken = mint(doc as unknown as Record<string, unknown>);
    kubectl(b, kubeconfig, ["apply", "-f", "-"], JSON.stringify(doc));
  }
}

function phases(b: Binaries, kubeconfig: string): Map<string, string> {
  const out = kubectl(b, kubeconfig, [
    "get",
    "agenttasks",
    "-A",
    "-o",
    "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.status.phase}{'\\n'}{end}",
  ]);
  return new Map(
    out
      .trim()
      .split("\n")
      .filter(Boolean)
      .map(l => l.split("=") as [string, string]),
  );
}

async function waitForSamples(b: Binaries, s: ClusterState, timeoutMs: number): Promise<boolean> {
  const want = expectations();
  const deadline = Date.now() + timeoutMs;
  let lastTable = "";
  for (;;) {
    const table = kubectl(b, s.kubeconfig, ["get", "agenttasks", "-A"]);
    if (table !== lastTable) {
      console.log(`\n$ kubectl get agenttasks -A\n${table}`);
      lastTable = table;
    }
    const got = phases(b, s.kubeconfig);
    if (want.every(e => got.get(`${e.namespace}/${e.name}`) === e.phase)) return true;
    if (Date.now() > deadline) {
      for (const e of want) {
        const p = got.get(`${e.namespace}/${e.name}`) ?? "(none)";
        if (p !== e.phase) console.log(`[sandbox] ${e.namespace}/${e.name}: expected ${e.phase}, got ${p}`);
      }
      return false;
    }
    await new Promise(r => setTimeout(r, 1000));
  }
}

async function main(): Promise<number> {
  const once = process.argv.includes("--once");
  const b = ensureBinaries(l => console.log(l));
  const s = await up({ dataDir: join(dataDir, "cluster"), nodes: 3, log: l => console.log(l) });
  let operator: OperatorHandle | undefined;
  const cleanup = async () => {
    await operator?.stop();
    await down(s.dataDir, l => console.log(l));
  };
  process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));
  try {
    kubectl(b, s.kubeconfig, [
      "apply",
      "--server-side",
      "-f",
      join(root, "crds", "agenttask.yaml"),
      "-f",
      join(root, "tests", "fixtures", "peprstore-crd.yaml"),
    ]);
    kubectl(b, s.kubeconfig, [
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/agenttasks.atb.siemens.com",
      "crd/peprstores.pepr.dev",
    ]);
    operator = await startOperator({ kubeconfig: s.kubeconfig, workDir: join(dataDir, "operator"), mode: "watch" });
    console.log(`[sandbox] operator running (logs: ${operator.logFile})`);
    applyDir(b, s.kubeconfig, join(samples, "workloads"));
    applyTasks(b, s.kubeconfig, sampleToken);
    const ok = await waitForSamples(b, s, 180_000);
    console.log(
      ok
        ? "[sandbox] every sample task reached its expected phase"
        : "[sandbox] some sample tasks did not reach their expected phase",
    );
    if (once) {
      await cleanup();
      return ok ? 0 : 1;
    }
    console.log(`\nThe sandbox keeps running; Ctrl-C stops it and everything it started.\n`);
    console.log(`export KUBECONFIG=${s.kubeconfig}\nexport PATH=${binDirs(b).join(":")}:$PATH`);
    await new Promise<never>(() => undefined);
    return 0;
  } catch (err) {
    console.error(`[sandbox] ${err instanceof Error ? err.message : String(err)}`);
    await cleanup();
    return 1;
  }
}

/** Placeholder until PoA minting lands: a well-formed compact JWS that the operator does not yet verify. */
function sampleToken(): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${enc({ alg: "ES256", typ: "JWT" })}.${enc({ note: "sandbox placeholder" })}.${enc({ sig: "none" })}`;
}

if (existsSync(samples)) {
  main().then(
    code => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
