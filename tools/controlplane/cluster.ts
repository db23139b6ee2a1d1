// The local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// KWOK on 127.0.0.1, with a throwaway PKI and a kubeconfig inside the data folder. Each component
// runs detached in its own process group; state.json records PIDs and ports so `down` stops
// exactly what `up` started. The groups are tied to the process that called `up` (tools/reaper.ts):
// if it dies without calling `down` (Ctrl-C on jest, SIGKILL, a crash), its watchdog stops them;
// only `npm run cluster -- up` starts a plane that outlives its caller. Used by the CLI (npm run
// cluster), the e2e tests, the sandbox and the benchmarks.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ensureBinaries, type Binaries } from "./binaries";
import { ensureCA, issueCert, keyPair, readPem } from "../../broker/pki";
import { kubeReady, waitFor } from "./wait";
import { processStart, running, tieGroup, untieGroup } from "../reaper";

export const SERVICE_CIDR = "10.96.0.0/16";
export const POD_CIDR = "10.244.0.0/16";
export const COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"] as const;
export type Component = (typeof COMPONENTS)[number];

export interface ClusterState {
  dataDir: string;
  kubeconfig: string;
  server: string;
  ports: { etcd: number; etcdPeer: number; apiserver: number };
  pids: Partial<Record<Component, number>>;
  startedAt: string;
  /** Started by `npm run cluster -- up`: keeps running after that process exits (see UpOptions). */
  outlivesCaller?: boolean;
  /** UpOptions.auditRules, kept so that a restarted API server audits the same. */
  auditRules?: AuditRule[];
  /** UpOptions.apiserver, kept so that a restarted API server listens and admits the same. */
  apiserver?: ApiserverOptions;
}

/** How the API server listens and admits, beyond the defaults (127.0.0.1 only). */
export interface ApiserverOptions {
  /** --bind-address (default 127.0.0.1); only inside a network namespace of its own, e.g. 0.0.0.0. */
  bindAddress?: string;
  /** --advertise-address (the `kubernetes` Service's endpoint; default 127.0.0.1). */
  advertiseAddress?: string;
  /** More IP addresses in the serving certificate. */
  ips?: string[];
  /** The ServiceAccount admission plugin (a pod's token volume); off by default (KWOK's pods need none). */
  serviceAccountAdmission?: boolean;
  extraArgs?: string[];
}

/** One rule of an audit policy (audit.k8s.io/v1 PolicyRule, the fields used here). */
export interface AuditRule {
  level: "None" | "Metadata";
  users?: string[];
  userGroups?: string[];
  verbs?: string[];
  namespaces?: string[];
  resources?: { group: string; resources?: string[] }[];
}

export interface UpOptions {
  dataDir: string;
  nodes?: number;
  log?: (line: string) => void;
  /**
   * Keep the components running after the calling process exits (the CLI's `up`). By default they
   * are stopped when the caller is gone, however it ends, so a killed test run leaves nothing behind.
   */
  outliveCaller?: boolean;
  /**
   * Audit rules checked after the standard ones (AUDIT_POLICY) and before its final `None`: the
   * benchmark records every request of the identities it measures. Default: none.
   */
  auditRules?: AuditRule[];
  apiserver?: ApiserverOptions;
  /**
   * Namespaces whose pods KWOK leaves alone (they stay Pending on its nodes unless something else,
   * such as tools/pods/runner.ts, runs them).
   */
  kwokUnmanagedNamespaces?: string[];
}

export function statePath(dataDir: string): string {
  return join(dataDir, "state.json");
}

export function readState(dataDir: string): ClusterState | undefined {
  const p = statePath(dataDir);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, "utf8")) as ClusterState;
}

function writeState(s: ClusterState): void {
  writeFileSync(statePath(s.dataDir), JSON.stringify(s, null, 2));
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie has stopped: its parent is gone and the machine's init may never reap it.
  return processStart(pid) === undefined || running(pid);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function pki(dataDir: string, extraIps: string[] = []) {
  const dir = join(dataDir, "pki");
  const ca = ensureCA(dir);
  const apiserver = issueCert(dir, ca, "apiserver", {
    cn: "kube-apiserver",
    dns: [
      "localhost",
      "kubernetes",
      "kubernetes.default",
      "kubernetes.default.svc",
      "kubernetes.default.svc.cluster.local",
    ],
    ips: ["127.0.0.1", "10.96.0.1", ...extraIps],
    usage: "server",
  });
  const admin = issueCert(dir, ca, "admin", { cn: "atb-admin", org: "system:masters", usage: "client" });
  const sa = keyPair(dir, "sa");
  return { dir, ca, apiserver, admin, sa };
}

/** A kubeconfig with the certificates inlined (kfc reads only the CA/cert/key data or files). */
export function kubeconfigYaml(server: string, caPem: string, certPem: string, keyPem: string, user = "admin"): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: atb-local\n  cluster:\n    server: ${server}\n    certificate-authority-data: ${b64(caPem)}`,
    "users:",
    `- name: ${user}\n  user:\n    client-certificate-data: ${b64(certPem)}\n    client-key-data: ${b64(keyPem)}`,
    "contexts:",
    `- name: atb-local\n  context:\n    cluster: atb-local\n    user: ${user}`,
    "current-context: atb-local",
    "",
  ].join("\n");
}

/**
 * Starts one component detached, in its own process group, logging into the data folder, and
 * tied to this process unless the plane outlives its caller.
 */
export function startProcess(s: ClusterState, name: Component, bin: string, args: string[]): number {
  const logs = join(s.dataDir, "logs");
  mkdirSync(logs, { recursive: true });
  const fd = openSync(join(logs, `${name}.log`), "a");
  const child = spawn(bin, args, { detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${name} (${bin})`);
  if (!s.outlivesCaller) tieGroup(child.pid);
  return child.pid;
}

export function logTail(dataDir: string, name: string, lines = 30): string {
  const p = join(dataDir, "logs", `${name}.log`);
  if (!existsSync(p)) return "(no log)";
  return readFileSync(p, "utf8").split("\n").slice(-lines).join("\n");
}

/**
 * API server audit policy: successful writes to workloads, config and AgentTasks, and reads of
 * ConfigMaps and Secrets (metadata only). Tests count target writes from it (at most once is
 * checked on the API server's own record, not on the operator's logs) and check that nothing of a
 * target is read before its token was verified; everything else is not logged, to keep the plane
 * light.
 */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    verbs: [get, list]
    resources:
      - group: ""
        resources: [configmaps, secrets]
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - group: apps
        resources: [deployments, statefulsets, daemonsets, replicasets, deployments/scale, statefulsets/scale, replicasets/scale]
      - group: ""
        resources: [configmaps, secrets, services]
      - group: atb.siemens.com
        resources: [agenttasks, agenttasks/status]
  - level: None
`;

/** AUDIT_POLICY with `extra` rules before its final `None` (JSON is YAML). */
export function auditPolicy(extra: readonly AuditRule[] = []): string {
  const rules = extra.map(r => `  - ${JSON.stringify(r)}\n`).join("");
  return AUDIT_POLICY.replace(/  - level: None\n$/, `${rules}  - level: None\n`);
}

export function auditLogPath(dataDir: string): string {
  return join(dataDir, "logs", "audit.log");
}

function apiserverArgs(s: ClusterState, k: ReturnType<typeof pki>): string[] {
  const policy = join(s.dataDir, "audit-policy.yaml");
  writeFileSync(policy, auditPolicy(s.auditRules));
  const a = s.apiserver ?? {};
  return [
    `--audit-policy-file=${policy}`,
    `--audit-log-path=${auditLogPath(s.dataDir)}`,
    "--audit-log-format=json",
    "--audit-log-maxsize=500",
    `--etcd-servers=http://127.0.0.1:${s.ports.etcd}`,
    `--bind-address=${a.bindAddress ?? "127.0.0.1"}`,
    `--advertise-address=${a.advertiseAddress ?? "127.0.0.1"}`,
    `--secure-port=${s.ports.apiserver}`,
    `--cert-dir=${k.dir}`,
    `--tls-cert-file=${k.apiserver.cert}`,
    `--tls-private-key-file=${k.apiserver.key}`,
    `--client-ca-file=${k.ca.cert}`,
    "--authorization-mode=RBAC",
    "--allow-privileged=true",
    `--service-account-issuer=https://127.0.0.1:${s.ports.apiserver}`,
    `--service-account-key-file=${k.sa.pub}`,
    `--service-account-signing-key-file=${k.sa.key}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    ...(a.serviceAccountAdmission ? [] : ["--disable-admission-plugins=ServiceAccount"]),
    "--profiling=false",
    "--v=0",
    ...(a.extraArgs ?? []),
  ];
}

/** Starts (or restarts, keeping etcd) the API server of an existing plane and waits for /readyz. */
export async function startApiserver(s: ClusterState, b: Binaries): Promise<void> {
  const k = pki(s.dataDir, s.apiserver?.ips);
  s.pids["kube-apiserver"] = startProcess(s, "kube-apiserver", b.kubeApiserver, apiserverArgs(s, k));
  writeState(s);
  await waitFor(
    "kube-apiserver /readyz",
    90_000,
    () => kubeReady(s.server, k),
    () => {
      if (!isAlive(s.pids["kube-apiserver"]))
        throw new Error(`kube-apiserver exited:\n${logTail(s.dataDir, "kube-apiserver")}`);
    },
  );
}

function startEtcd(s: ClusterState, b: Binaries): void {
  const peer = `http://127.0.0.1:${s.ports.etcdPeer}`;
  const client = `http://127.0.0.1:${s.ports.etcd}`;
  s.pids.etcd = startProcess(s, "etcd", b.etcd, [
    "--name=default",
    `--data-dir=${join(s.dataDir, "etcd")}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=default=${peer}`,
    "--listen-metrics-urls=",
    "--unsafe-no-fsync",
    "--log-level=warn",
    "--quota-backend-bytes=4294967296",
  ]);
}

// The controllers' and the scheduler's API clients default to 20 and 50 requests/s (bursts 30 and 100), sized for a shared production
// API server. Here they are the only load besides the tests, and at that rate the ReplicaSet and
// Deployment controllers, not the operator, would set the pace of every rollout the tests and the
// benchmark wait for.
const CONTROLLER_CLIENT_FLAGS = ["--kube-api-qps=500", "--kube-api-burst=1000"];

/**
 * KWOK's stages with the pods of `namespaces` left out of every pod stage but deletion: KWOK
 * neither readies nor completes them, and still finishes their deletion.
 */
export function kwokStagesWithout(stages: string, namespaces: string[]): string {
  if (!namespaces.length) return stages;
  const rule = [
    "    - key: '.metadata.namespace'",
    "      operator: 'NotIn'",
    "      values:",
    ...namespaces.map(n => `      - ${JSON.stringify(n)}`),
  ].join("\n");
  const docs = stages.split(/^---$/m);
  let changed = 0;
  const out = docs.map(doc => {
    if (!/^\s*kind: Pod$/m.test(doc) || !/^\s*name: pod-(ready|complete)$/m.test(doc)) return doc;
    changed++;
    return doc.replace(/^(  selector:\n    matchExpressions:\n)/m, `$1${rule}\n`);
  });
  if (changed !== 2) throw new Error(`KWOK stages: expected the pod-ready and pod-complete stages, changed ${changed}`);
  return out.join("---");
}

function startControllers(s: ClusterState, b: Binaries, k: ReturnType<typeof pki>, o: UpOptions): void {
  s.pids["kube-controller-manager"] = startProcess(s, "kube-controller-manager", b.kubeControllerManager, [
    `--kubeconfig=${s.kubeconfig}`,
    "--leader-elect=false",
    "--controllers=*",
    "--bind-address=127.0.0.1",
    "--secure-port=0",
    `--root-ca-file=${k.ca.cert}`,
    `--service-account-private-key-file=${k.sa.key}`,
    "--use-service-account-credentials=false",
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    ...CONTROLLER_CLIENT_FLAGS,
  ]);
  s.pids["kube-scheduler"] = startProcess(s, "kube-scheduler", b.kubeScheduler, [
    `--kubeconfig=${s.kubeconfig}`,
    "--leader-elect=false",
    "--bind-address=127.0.0.1",
    "--secure-port=0",
    ...CONTROLLER_CLIENT_FLAGS,
  ]);
  let stages = b.kwokStages;
  if (o.kwokUnmanagedNamespaces?.length) {
    stages = join(s.dataDir, "kwok-stages.yaml");
    writeFileSync(stages, kwokStagesWithout(readFileSync(b.kwokStages, "utf8"), o.kwokUnmanagedNamespaces));
  }
  s.pids.kwok = startProcess(s, "kwok", b.kwok, [
    `--kubeconfig=${s.kubeconfig}`,
    `--config=${stages}`,
    "--manage-all-nodes=false",
    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
    "--node-lease-duration-seconds=40",
    `--cidr=${POD_CIDR}`,
    "--node-ip=10.243.0.1",
  ]);
}

function nodeManifest(i: number): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: `kwok-node-${i}`,
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: { type: "kwok", "kubernetes.io/hostname": `kwok-node-${i}`, "kubernetes.io/os": "linux" },
    },
    status: {
      allocatable: { cpu: "32", memory: "256Gi", pods: "250" },
      capacity: { cpu: "32", memory: "256Gi", pods: "250" },
    },
  });
}

export function kubectl(b: Binaries, kubeconfig: string, args: string[], input?: string): string {
  const r = spawnSync(b.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Starts the whole plane and waits until it is usable (default namespace, SA, Ready nodes). */
export async function up(o: UpOptions): Promise<ClusterState> {
  const log = o.log ?? ((l: string) => console.error(l));
  const existing = readState(o.dataDir);
  if (existing && isAlive(existing.pids["kube-apiserver"])) {
    log(`[controlplane] already running at ${existing.server}`);
    return existing;
  }
  const b = ensureBinaries(log);
  rmSync(o.dataDir, { recursive: true, force: true });
  mkdirSync(o.dataDir, { recursive: true });
  const t0 = Date.now();
  const k = pki(o.dataDir, o.apiserver?.ips);
  const ports = { etcd: await freePort(), etcdPeer: await freePort(), apiserver: await freePort() };
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const kubeconfig = join(o.dataDir, "kubeconfig");
  writeFileSync(kubeconfig, kubeconfigYaml(server, readPem(k.ca.cert), readPem(k.admin.cert), readPem(k.admin.key)), {
    mode: 0o600,
  });
  const s: ClusterState = {
    dataDir: o.dataDir,
    kubeconfig,
    server,
    ports,
    pids: {},
    startedAt: new Date().toISOString(),
    ...(o.outliveCaller ? { outlivesCaller: true } : {}),
    ...(o.auditRules?.length ? { auditRules: o.auditRules } : {}),
    ...(o.apiserver ? { apiserver: o.apiserver } : {}),
  };
  try {
    startEtcd(s, b);
    writeState(s);
    await startApiserver(s, b);
    startControllers(s, b, k, o);
    writeState(s);
    await waitUsable(s, b, o.nodes ?? 3);
  } catch (err) {
    log(`[controlplane] start failed; stopping what was started`);
    await down(o.dataDir, log);
    throw err;
  }
  log(`[controlplane] ready at ${server} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  return s;
}

async function waitUsable(s: ClusterState, b: Binaries, nodes: number): Promise<void> {
  const alive = () => {
    for (const c of COMPONENTS) {
      if (!isAlive(s.pids[c])) throw new Error(`${c} exited:\n${logTail(s.dataDir, c)}`);
    }
  };
  const sa = () => {
    const r = spawnSync(b.kubectl, [
      `--kubeconfig=${s.kubeconfig}`,
      "get",
      "serviceaccount",
      "default",
      "-n",
      "default",
    ]);
    return r.status === 0;
  };
  await waitFor("default ServiceAccount", 90_000, async () => sa(), alive);
  for (let i = 0; i < nodes; i++) kubectl(b, s.kubeconfig, ["apply", "-f", "-"], nodeManifest(i));
  await waitFor(
    "KWOK nodes Ready",
    90_000,
    async () => {
      const out = spawnSync(
        b.kubectl,
        [
          `--kubeconfig=${s.kubeconfig}`,
          "get",
          "nodes",
          "-o",
          "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
        ],
        { encoding: "utf8" },
      );
      return out.stdout.split("\n").filter(x => x === "True").length >= nodes;
    },
    alive,
  );
}

/** Stops exactly the processes recorded in state.json: SIGTERM to each process group, then SIGKILL. */
export async function down(dataDir: string, log: (l: string) => void = l => console.error(l)): Promise<void> {
  const s = readState(dataDir);
  if (!s) return;
  for (const c of [...COMPONENTS].reverse()) await stopComponent(s, c);
  writeState({ ...s, pids: {} });
  log(`[controlplane] stopped (${dataDir})`);
}

export async function stopComponent(s: ClusterState, c: Component): Promise<void> {
  const pid = s.pids[c];
  if (!pid) return;
  if (isAlive(pid)) await stopGroup(pid);
  untieGroup(pid);
  delete s.pids[c];
}

async function stopGroup(pid: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      /* the group is gone */
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + 15_000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
  if (isAlive(pid)) signal("SIGKILL");
  while (isAlive(pid)) await new Promise(r => setTimeout(r, 50));
}
