// Everything the scenarios run against, started and stopped here: the module bundle built from
// this tree, a control plane of its own in a scratch folder (under /dev/shm when there is one),
// the stack of tools/stack.ts (reference broker with mTLS and OPA, the operator as a child
// process with its webhooks), the benchmark's API client and watches, and the limit process with
// its own identity and its namespace's executor. The API server audits every request of the
// operator and of the limit (the end-to-end scenarios count them per task). Also the facts about
// the machine and the operator process that the results record.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { ensureBinaries } from "../tools/controlplane/binaries";
import { down, kubectl, up, type AuditRule, type ClusterState } from "../tools/controlplane/cluster";
import { installExecutor } from "../tools/executor";
import { buildModule } from "../tools/module-build";
import { OPERATOR_NAMESPACE } from "../tools/operator-identity";
import { installCrds, startStack, type Stack } from "../tools/stack";
import { webhookConfigurations } from "../tools/webhooks";
import { Api } from "./api";
import { NS, NS_DONE, NS_LIMIT } from "./fixtures";
import { LimitDriver } from "./limit/driver";
import { createLimitIdentity, type LimitIdentity } from "./limit/identity";
import { log } from "./log";
import { loadAverage, round, sleep } from "./measure";
import type { HeapFigures, MachineFacts } from "./results";
import type { Settings } from "./settings";
import { Tracker } from "./tracker";

const ROOT = join(__dirname, "..");
/** The namespaces the operator acts in (the limit's namespace is not one of them). */
const OPERATOR_NAMESPACES = [NS, NS_DONE];

export interface BenchEnv {
  readonly settings: Settings;
  /** The scratch folder: control plane, stack, logs, profiles. */
  readonly dataDir: string;
  readonly cluster: ClusterState;
  readonly stack: Stack;
  readonly api: Api;
  /** Watches on the operator's, the limit's and the finished tasks' namespaces. */
  readonly trackers: Readonly<Record<"operator" | "limit" | "done", Tracker>>;
  readonly limit: LimitDriver;
  /** Who the limit is on the API server, and whom it writes targets as. */
  readonly limitIdentity: LimitIdentity;
  /** What the operator was given besides the stack's own variables. */
  readonly operatorEnv: Readonly<Record<string, string>>;
  /** Where the operator writes its --cpu-prof files (ATB_BENCH_PROFILE=1). */
  readonly profileDir: string;
  readonly machine: MachineFacts;
}

/** Stops what was started, last first; safe to run twice (Ctrl-C during the normal stop). */
export class Teardown {
  private readonly steps: (() => Promise<unknown> | void)[] = [];
  private done = false;

  add(step: () => Promise<unknown> | void): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    if (this.done) return;
    this.done = true;
    for (const step of this.steps.reverse()) {
      try {
        await step();
      } catch {
        /* stopping the rest matters more */
      }
    }
  }
}

/**
 * Every request of the operator's ServiceAccount (in pepr-system) and of the limit's (in the
 * limit's namespace) to the end-to-end namespaces or to cluster-scoped resources, at Metadata
 * level: the audit log names the user, the impersonated user, verb, resource and URI of each. The
 * executors' groups are listed too, in case the policy is matched against the impersonated user.
 * The restart scenario's namespace is left out: its figures stay those of the standard policy.
 */
export const BENCH_AUDIT_RULES: AuditRule[] = [
  {
    level: "Metadata",
    userGroups: [OPERATOR_NAMESPACE, NS, NS_LIMIT].map(ns => `system:serviceaccounts:${ns}`),
    namespaces: [NS, NS_LIMIT, ""],
  },
];

/** Starts everything; each part registers its stop on `teardown` as soon as it runs. */
export async function startEnvironment(settings: Settings, teardown: Teardown): Promise<BenchEnv> {
  const base = existsSync("/dev/shm") ? "/dev/shm" : "/tmp";
  const dataDir = join(base, `atb-bench-${process.pid}`);
  teardown.add(async () => {
    await down(dataDir, l => log(l));
    if (!settings.keep) rmSync(dataDir, { recursive: true, force: true });
    else log(`kept ${dataDir}`);
  });
  if (settings.operator === "bundle") await buildBundle();
  const cluster = await up({ dataDir, nodes: 3, log: l => log(l), auditRules: BENCH_AUDIT_RULES });
  installCrds(ensureBinaries(), cluster.kubeconfig);
  const profileDir = join(dataDir, "profile");
  const operatorEnv = { ATB_API_QPS: String(settings.qps), ATB_WORKERS: String(settings.workers) };
  const stack = await startStack({
    cluster,
    workDir: join(dataDir, "stack"),
    namespaces: OPERATOR_NAMESPACES,
    operatorEnv,
    operatorEntry: settings.operator,
    // Node refuses --cpu-prof in NODE_OPTIONS; the profile is written when the operator exits.
    operatorNodeArgs: settings.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
  });
  teardown.add(() => stack.stop());
  const api = Api.open(cluster.kubeconfig);
  teardown.add(() => api.close());
  await api.ok("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS_LIMIT } });
  // The limit writes targets as its namespace's executor, with the Role the operator's namespaces get.
  await installExecutor(stack.bin, cluster.kubeconfig, { namespace: NS_LIMIT, bound: "all-actions" });
  const limitIdentity = createLimitIdentity(stack.bin, cluster.kubeconfig, NS_LIMIT, join(dataDir, "limit"));
  const machine = machineFacts(cluster);
  log(`machine ${JSON.stringify(machine)}`);
  const trackers = await startTrackers(api, teardown);
  const limit = await LimitDriver.start({
    type: "init",
    kubeconfig: limitIdentity.kubeconfig,
    namespace: NS_LIMIT,
    executor: limitIdentity.executor,
    workers: settings.workers,
  });
  teardown.add(() => limit.stop());
  return { settings, dataDir, cluster, stack, api, trackers, limit, limitIdentity, operatorEnv, profileDir, machine };
}

async function startTrackers(api: Api, teardown: Teardown): Promise<BenchEnv["trackers"]> {
  const trackers = {
    operator: new Tracker(api, NS),
    limit: new Tracker(api, NS_LIMIT),
    done: new Tracker(api, NS_DONE),
  };
  teardown.add(() => Object.values(trackers).forEach(t => t.close()));
  for (const t of Object.values(trackers)) await t.start();
  return trackers;
}

/** `npm run build` into dist/, so the operator measured is the bundle that ships, built from this tree. */
async function buildBundle(): Promise<void> {
  log("building the module bundle (npm run build)");
  await buildModule(join(ROOT, "dist"));
}

// ---------------------------------------------------------------------------------------------
// The operator

/**
 * Runs `during` with the operator stopped and its webhooks removed (so the benchmark can write
 * tasks and statuses the operator never sees), then starts the operator and puts the webhooks back.
 */
export async function withOperatorOffline<T>(env: BenchEnv, during: () => Promise<T>): Promise<T> {
  const s = env.stack;
  const name = `atb-operator-local-${s.operator.port}`;
  await s.operator.stop("SIGTERM");
  for (const kind of ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"])
    kubectl(s.bin, env.cluster.kubeconfig, ["delete", kind, name, "--ignore-not-found"]);
  await sleep(2000); // the API server drops the webhook configuration
  const result = await during();
  await s.restartOperator();
  const configs = webhookConfigurations(s.operator.port, s.operator.apiPath, s.operator.caFile, name, [
    ...OPERATOR_NAMESPACES,
  ]);
  for (const cfg of configs) kubectl(s.bin, env.cluster.kubeconfig, ["apply", "-f", "-"], JSON.stringify(cfg));
  return result;
}

/** The operator's own view of its memory (prom-client default metrics), in MiB. */
export async function operatorHeap(stack: Stack): Promise<HeapFigures> {
  const text = await stack.metrics().catch(() => "");
  const out: HeapFigures = {};
  for (const name of [
    "atb_operator_nodejs_heap_size_used_bytes",
    "atb_operator_nodejs_heap_size_total_bytes",
    "atb_operator_nodejs_external_memory_bytes",
    "atb_operator_process_resident_memory_bytes",
  ]) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(text);
    if (m) out[name.replace("atb_operator_", "").replace("_bytes", "MiB")] = round(Number(m[1]) / 2 ** 20, 1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The machine

function machineFacts(cluster: ClusterState): MachineFacts {
  const cpu = cpus();
  return {
    cores: cpu.length,
    cpuModel: cpu[0]?.model ?? "unknown",
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    ...versions(cluster),
    loadAverageAtStart: loadAverage(),
  };
}

function versions(cluster: ClusterState): Pick<MachineFacts, "kubernetes" | "etcd" | "opa" | "kwok"> {
  const bin = ensureBinaries();
  const v = JSON.parse(kubectl(bin, cluster.kubeconfig, ["version", "-o", "json"])) as {
    serverVersion?: { gitVersion?: string };
  };
  const etcd = spawnText(bin.etcd, ["--version"]);
  const opa = spawnText(bin.opa, ["version"]);
  const pinned = readFileSync(join(ROOT, "tools/controlplane/versions.env"), "utf8");
  return {
    kubernetes: v.serverVersion?.gitVersion ?? "unknown",
    etcd: /etcd Version: (\S+)/.exec(etcd)?.[1] ?? etcd.split("\n")[0],
    opa: /Version: (\S+)/.exec(opa)?.[1] ?? opa.split("\n")[0],
    kwok: /KWOK_VERSION=(\S+)/.exec(pinned)?.[1] ?? "",
  };
}

function spawnText(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
}
