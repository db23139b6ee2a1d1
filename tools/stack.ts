// The whole product on a local control plane, for the e2e tests, the sandbox and the benchmarks:
// the reference broker (real mTLS, real OPA on policies/), the operator as a child process in
// PEPR_MODE=dev with its admission webhooks registered against the API server, and a PoA minter
// whose key the broker trusts. Nothing here is a fake. The broker runs in this process; its OPA
// child and the operator are tied to this process (tools/reaper.ts), so they stop with it even
// when it dies without calling stop().
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { ensureDevMaterial, type DevMaterial } from "../broker/dev-material";
import { mintPoa, parseTarget, type MintOptions } from "../broker/poa";
import { startBroker, type BrokerOptions, type RunningBroker } from "../broker/server";
import { parseConfig } from "../capabilities/lib/config";
import { createLogger } from "../capabilities/lib/logger";
import { policyParamsConfigMap } from "../capabilities/lib/scope";
import { ensureBinaries, type Binaries } from "./controlplane/binaries";
import { freePort, kubectl, type ClusterState } from "./controlplane/cluster";
import { installExecutor, type Bound } from "./executor";
import { startOperator, type OperatorHandle } from "./operator";
import { createOperatorIdentity, type OperatorGrants, type OperatorIdentity } from "./operator-identity";
import { tiePath, tieProcess, untiePath, untieProcess } from "./reaper";
import { LOCAL_ADMIN_BINDING, writeDataWithBinding } from "./requester-binding";
import { kubectlReader, taskChangeSha256, type TaskChange } from "./task-change";
import { webhookConfigurations } from "./webhooks";

export interface StackOptions {
  cluster: ClusterState;
  workDir: string;
  /**
   * The namespaces this stack's operator acts in (WATCH_NAMESPACE) and its webhooks serve; they
   * are created if missing. Several stacks can then share one control plane (jest runs e2e files
   * in parallel) without two operators handling the same task. Empty: all namespaces.
   */
  namespaces: string[];
  /** Sources under tsx (default) or the built bundle; see OperatorOptions.entry. */
  operatorEntry?: "source" | "bundle";
  /** Extra node flags for the operator process. */
  operatorNodeArgs?: string[];
  /** Extra operator environment (deadlines, workers, ...). */
  operatorEnv?: Record<string, string>;
  /**
   * Whether the operator marks tasks outside its namespaces that nobody picks up Failed/OutOfScope
   * (ATB_OUT_OF_SCOPE_GRACE_SECONDS, the product default). Off unless asked: stacks sharing a
   * control plane each stand for a cluster of their own, and another file's task may wait
   * without status on purpose (its operator not started yet, or restarting). A stack that turns
   * it on should also name where to look (ATB_OUT_OF_SCOPE_NAMESPACES in operatorEnv).
   */
  markOutOfScope?: boolean;
  /** Where the broker writes its audit lines (default: a file in workDir). */
  auditFile?: string;
  brokerLogFile?: string;
  /** Policy data for the broker (default policies/data.json); LOCAL_ADMIN_BINDING is merged in. */
  brokerDataFile?: string;
  /**
   * The broker's trust settings (broker/trust.ts), merged over the default: the stack's dev
   * signing key under the "dev" profile, whose leg approval blocks count (what mint() writes).
   * E.g. `{ preset: "default" }` counts approvals only from attestations, and `{ trustFile }` adds
   * issuer profiles and approver keys.
   */
  brokerTrust?: Partial<BrokerOptions["poa"]>;
  /**
   * The executor each namespace gets (tools/executor.ts): the operator reaches targets only as
   * that ServiceAccount. Default: "all-actions" for every namespace in `namespaces`; "none"
   * creates none (its tasks fail ExecutorMissing). Namespaces not listed in `namespaces` get none.
   */
  executors?: Record<string, Bound | "none">;
  /**
   * The operator runs as a ServiceAccount of its own with the RBAC `npx pepr build` generates
   * (tools/operator-identity.ts); `omit` takes generated grants away (to show what breaks).
   */
  operatorGrants?: OperatorGrants;
}

/** What stack.mint() binds with con.change_sha256 (unless changeSha256 is given). */
export interface StackMintChange {
  payload?: Record<string, unknown>;
  resolved?: TaskChange["resolved"];
}

export interface Stack {
  cluster: ClusterState;
  bin: Binaries;
  material: DevMaterial;
  broker?: RunningBroker;
  brokerPort: number;
  operator: OperatorHandle;
  /** Whom the operator runs as: its ServiceAccount, kubeconfig and (changeable) grants. */
  operatorIdentity: OperatorIdentity;
  metricsPort: number;
  auditFile: string;
  /**
   * A PoA signed by the key the broker trusts. Given the task's payload (and, for a rollback, its
   * revision and template hash, else looked up in the cluster as the operator will), the token
   * binds the task's change: con.change_sha256, which MEDIUM and higher tiers require (unless the
   * payload has none: then the token is unbound).
   */
  mint(o: Omit<MintOptions, "key"> & StackMintChange): Promise<string>;
  startBroker(): Promise<RunningBroker>;
  stopBroker(): Promise<void>;
  /**
   * Stops the operator (SIGTERM, or SIGKILL for crash tests) and starts it again on the same port.
   * `env`, when given, is added over the stack's operator environment from now on (this and later
   * restarts; `{}` goes back to the stack's own), e.g. ATB_SHARDS and ATB_SHARD for the benchmark.
   */
  restartOperator(signal?: NodeJS.Signals, env?: Record<string, string>): Promise<OperatorHandle>;
  /**
   * One more watcher process (PEPR_WATCH_MODE, no admission: the webhooks stay registered once,
   * with the first operator) against the same control plane and broker, as the same
   * ServiceAccount, with the stack's operator environment plus `env` (a shard: ATB_SHARDS and
   * ATB_SHARD) and a metrics port and Pepr port of its own. Stopped with the stack.
   */
  startWatcher(env: Record<string, string>): Promise<Watcher>;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** A watcher process besides the stack's operator (Stack.startWatcher). */
export interface Watcher {
  handle: OperatorHandle;
  metricsPort: number;
  metrics(): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Stack.mint for a control plane and a signing key: the change a payload makes is looked up in the
 * cluster as the operator will look it up.
 */
export function minter(bin: Binaries, kubeconfig: string, signingKey: string): Stack["mint"] {
  return async ({ payload, resolved, ...m }) => {
    if (payload === undefined || m.changeSha256 !== undefined) return mintPoa({ key: signingKey, ...m } as MintOptions);
    const target = typeof m.target === "string" ? parseTarget(m.target) : m.target;
    const reader = kubectlReader(bin, kubeconfig);
    // A payload without a change (a rollback to a revision that does not exist, a malformed
    // patch) mints an unbound token: the operator refuses such a task before it asks the broker.
    const changeSha256 = await taskChangeSha256({ action: m.action, target, payload, resolved }, reader).catch(
      () => undefined,
    );
    return mintPoa({ key: signingKey, ...m, changeSha256 } as MintOptions);
  };
}

/**
 * Installs what the stack needs on a fresh control plane (the AgentTask and AgentTaskApproval
 * CRDs, Pepr's store CRD and pepr-system, and the scope admission policy with its default
 * parameters: the default protected namespaces refused, every other namespace allowed, since each
 * stack's WATCH_NAMESPACE is its own) and waits until the API server serves the CRDs.
 */
export function installCrds(bin: Binaries, kubeconfig: string): void {
  const root = join(__dirname, "..");
  kubectl(bin, kubeconfig, [
    "apply",
    "--server-side",
    "-f",
    join(root, "crds", "agenttask.yaml"),
    "-f",
    join(root, "crds", "agenttaskapproval.yaml"),
    "-f",
    join(root, "tests", "fixtures", "peprstore-crd.yaml"),
    "-f",
    join(root, "crds", "agenttask-scope.yaml"),
  ]);
  kubectl(bin, kubeconfig, [
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd/agenttasks.atb.siemens.com",
    "crd/agenttaskapprovals.atb.siemens.com",
    "crd/peprstores.pepr.dev",
  ]);
}

/**
 * Writes the scope policy's parameters for an operator with these settings, as the install does
 * from the watcher's env: for a control plane that runs one stack only (the sandbox). Stacks
 * sharing a plane keep installCrds' defaults, which allow every namespace but the protected ones.
 */
export function writeScopeParams(bin: Binaries, kubeconfig: string, env: Record<string, string>): void {
  const params = policyParamsConfigMap(parseConfig(env));
  kubectl(bin, kubeconfig, ["apply", "--server-side", "-f", "-"], JSON.stringify(params));
}

/**
 * OPA (the broker's child) and its socket folder, tied to this process: a killed process never
 * gets to the broker's own cleanup.
 */
function tieOpa(broker: RunningBroker, op: "tie" | "untie"): void {
  if (broker.opaPid) (op === "tie" ? tieProcess : untieProcess)(broker.opaPid);
  if (broker.opaUrl.startsWith("unix://")) (op === "tie" ? tiePath : untiePath)(dirname(broker.opaUrl.slice(7)));
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const bin = ensureBinaries();
  const material = await ensureDevMaterial(join(o.workDir, "pki"));
  const signingKey = readFileSync(material.poaPrivateKey, "utf8");
  const auditFile = o.auditFile ?? join(o.workDir, "broker-audit.log");
  const brokerPort = await freePort();
  const metricsPort = await freePort();
  const opPort = await freePort();
  const webhookName = `atb-operator-local-${opPort}`;
  const log = createLogger(
    "info",
    "broker",
    (await import("node:fs")).createWriteStream(o.brokerLogFile ?? join(o.workDir, "broker.log"), { flags: "a" }),
  );
  let broker: RunningBroker | undefined;
  const watchers = new Set<Watcher>();
  /** What restartOperator(signal, env) added over the operator environment. */
  let overrides: Record<string, string> = {};
  const stack: Stack = {
    cluster: o.cluster,
    bin,
    material,
    brokerPort,
    metricsPort,
    auditFile,
    operator: undefined as unknown as OperatorHandle,
    operatorIdentity: undefined as unknown as OperatorIdentity,
    mint: minter(bin, o.cluster.kubeconfig, signingKey),
    async startBroker() {
      broker = await startBroker({
        port: brokerPort,
        tls: { certFile: material.server.cert, keyFile: material.server.key, clientCaFile: material.ca.cert },
        poa: { publicKeyFiles: [material.poaPublicKey], preset: "dev", ...o.brokerTrust },
        audit: auditFile,
        logger: log,
        // The tasks of the tests and the sandbox are created with the admin kubeconfig: bind that
        // user to the example agents (and nobody else to anything) on top of the data in use.
        dataFile: writeDataWithBinding(
          o.brokerDataFile ?? join(__dirname, "..", "policies", "data.json"),
          [LOCAL_ADMIN_BINDING],
          join(o.workDir, "broker-data.json"),
        ),
      });
      stack.broker = broker;
      tieOpa(broker, "tie");
      return broker;
    },
    async stopBroker() {
      const stopped = broker;
      await broker?.stop();
      if (stopped) tieOpa(stopped, "untie");
      broker = undefined;
      stack.broker = undefined;
    },
    async restartOperator(signal = "SIGTERM", env) {
      await stack.operator.stop(signal);
      if (env) overrides = { ...env };
      stack.operator = await launch(stack, o, opPort, { apiPath: stack.operator.apiPath, overrides });
      return stack.operator;
    },
    async startWatcher(env) {
      const port = await freePort();
      const handle = await startOperator({
        kubeconfig: stack.operatorIdentity.kubeconfig,
        workDir: join(o.workDir, "operator"),
        mode: "watch",
        entry: o.operatorEntry,
        nodeArgs: o.operatorNodeArgs,
        env: { ...operatorEnv(stack, o, port), ...env },
      });
      const w: Watcher = {
        handle,
        metricsPort: port,
        metrics: () => httpGet(`http://127.0.0.1:${port}/metrics`),
        async stop(signal) {
          watchers.delete(w);
          await handle.stop(signal);
        },
      };
      watchers.add(w);
      return w;
    },
    metrics: () => httpGet(`http://127.0.0.1:${metricsPort}/metrics`),
    async stop() {
      for (const w of [...watchers]) await w.stop();
      await stack.operator?.stop();
      for (const kind of ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"]) {
        kubectl(bin, o.cluster.kubeconfig, ["delete", kind, webhookName, "--ignore-not-found"]);
      }
      await stack.stopBroker();
      stack.operatorIdentity?.remove();
    },
  };
  for (const ns of o.namespaces) {
    kubectl(
      bin,
      o.cluster.kubeconfig,
      ["apply", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }),
    );
  }
  stack.operatorIdentity = await createOperatorIdentity({
    bin,
    adminKubeconfig: o.cluster.kubeconfig,
    name: webhookName,
    dir: join(o.workDir, "operator"),
    grants: o.operatorGrants,
  });
  for (const ns of o.namespaces)
    await installExecutor(bin, o.cluster.kubeconfig, { namespace: ns, bound: o.executors?.[ns] ?? "all-actions" });
  await stack.startBroker();
  try {
    stack.operator = await launch(stack, o, opPort);
  } catch (err) {
    await stack.stopBroker(); // and its OPA child: the caller never gets a stack to stop
    stack.operatorIdentity.remove();
    throw err;
  }
  for (const cfg of webhookConfigurations(
    opPort,
    stack.operator.apiPath,
    stack.operator.caFile,
    webhookName,
    o.namespaces,
  )) {
    kubectl(bin, o.cluster.kubeconfig, ["apply", "-f", "-"], JSON.stringify(cfg));
  }
  await waitForWebhook(stack, o.namespaces[0] ?? "default");
  return stack;
}

function launch(
  stack: Stack,
  o: StackOptions,
  port: number,
  { apiPath, overrides = {} }: { apiPath?: string; overrides?: Record<string, string> } = {},
): Promise<OperatorHandle> {
  return startOperator({
    kubeconfig: stack.operatorIdentity.kubeconfig,
    workDir: join(o.workDir, "operator"),
    mode: "dev",
    entry: o.operatorEntry,
    nodeArgs: o.operatorNodeArgs,
    port,
    apiPath,
    env: { ...operatorEnv(stack, o, stack.metricsPort), ...overrides },
  });
}

/** The environment of the stack's operator processes; each has a metrics port of its own. */
function operatorEnv(stack: Stack, o: StackOptions, metricsPort: number): Record<string, string> {
  return {
    ATB_BROKER_URL: `https://127.0.0.1:${stack.brokerPort}`,
    TLS_CERT_FILE: stack.material.client.cert,
    TLS_KEY_FILE: stack.material.client.key,
    TLS_CA_FILE: stack.material.ca.cert,
    ATB_METRICS_PORT: String(metricsPort),
    ATB_METRICS_HOST: "127.0.0.1",
    ATB_SWEEP_INTERVAL_SECONDS: "5",
    WATCH_NAMESPACE: o.namespaces.join(","),
    ...(o.markOutOfScope ? {} : { ATB_OUT_OF_SCOPE_GRACE_SECONDS: "0" }),
    ...o.operatorEnv,
  };
}

/** The API server reaches the webhook once it has loaded the configuration: probe with a dry run. */
async function waitForWebhook(stack: Stack, namespace: string): Promise<void> {
  const probe = {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name: "webhook-probe", namespace },
    spec: {
      agentId: "spiffe://atb.local/agent/probe",
      poaToken: "a.b.c",
      action: "scale",
      target: { kind: "Deployment", name: "probe", namespace: "elsewhere" },
      payload: { replicas: 1 },
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      kubectl(stack.bin, stack.cluster.kubeconfig, ["create", "--dry-run=server", "-f", "-"], JSON.stringify(probe));
    } catch (err) {
      if (String(err).includes("cross-namespace targets are disabled")) return;
    }
    if (Date.now() > deadline) throw new Error("the API server never called the operator's validating webhook");
    await new Promise(r => setTimeout(r, 250));
  }
}

export function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // A fresh connection per call: Node's keep-alive global agent can reuse a socket the server
    // is closing ("socket hang up").
    request(url, { agent: false }, res => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", c => (body += c));
      res.on("end", () => resolve(body));
    })
      .on("error", reject)
      .end();
  });
}
