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
import { join, relative, resolve } from "node:path";
import { binDirs, ensureBinaries, type Binaries } from "./controlplane/binaries";
import { down, up } from "./controlplane/cluster";
import type { PresetName } from "../broker/trust";
import { LOCAL_ADMIN_BINDING } from "./requester-binding";
import {
  applyTasks,
  approverKeys,
  approverTrust,
  rollOut,
  SAMPLE_BROKER_DATA,
  SAMPLE_NAMESPACES,
  waitForSamples,
} from "./samples";
import { installCrds, startStack, writeScopeParams, type Stack, type StackOptions } from "./stack";

const root = join(__dirname, "..");
const dataDir = process.env.ATB_SANDBOX_DIR ?? join(root, ".data", "sandbox");
const NAMESPACES = SAMPLE_NAMESPACES;

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
    const keys = await approverKeys(dataDir);
    // As the install does: the scope policy refuses tasks outside the operator's namespaces.
    writeScopeParams(b, s.kubeconfig, { WATCH_NAMESPACE: NAMESPACES.join(",") });
    stack = await startStack({
      cluster: s,
      workDir: dataDir,
      namespaces: NAMESPACES,
      brokerDataFile: SAMPLE_BROKER_DATA,
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
    await applyTasks(stack.mint, b, s.kubeconfig, keys);
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
