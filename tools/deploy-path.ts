// npm run deploy-check [-- --dist DIR] [--report FILE] [--rollout-timeout SECONDS] [--keep]
//
// The deploy path as a cluster runs it, without a container engine: installs the generated
// manifests (dist/atb-operator.yaml, from `npm run build && npm run manifests`) on a control
// plane of its own exactly as the README's Installation section says, runs the watcher and
// admission pods the Deployments create as local processes the way the kubelet would
// (tools/pods/runner.ts: Pepr's `controller.js <hash>` loading the module from the generated
// Secret, the generated env, the mounted Secrets, the ServiceAccount's token, uid/gid 65532), and
// checks that they pass their probes, that the API server reaches the admission pods through the
// generated webhook configurations (Service-referenced, with their caBundle), and that the
// sandbox's sample tasks reach their expected phases through them, with the watcher's writes made
// as the generated ServiceAccount (and the executor it impersonates) in the API server's audit log.
//
// Everything runs in a network namespace this command makes (it re-runs itself under
// `unshare --net --mount`; root needed): the API server listens on a bridge there (10.246.0.1),
// each pod has its own address on it (10.246.0.10 and up), and nothing is routed out of it.
// Exit 0 when every check passed; --report FILE writes every check as JSON (the e2e test
// tests/e2e/deploy-path.test.ts reads it).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isAbsolute, join, resolve } from "node:path";
import { loadAll } from "js-yaml";
import { ensureDevMaterial } from "../broker/dev-material";
import { ANNOTATION_REQUESTER } from "../crds/agenttask";
import { startBroker, type RunningBroker } from "../broker/server";
import { createLogger } from "../capabilities/lib/logger";
import { ensureBinaries, type Binaries } from "./controlplane/binaries";
import { auditLogPath, down, kubectl, logTail, up, type ClusterState } from "./controlplane/cluster";
import type { PodReport, ProcessFacts } from "./pods/runner";
import { memoryBytes } from "./pods/spec";
import { tieGroup, tiePath, untieGroup } from "./reaper";
import { LOCAL_ADMIN_BINDING, writeDataWithBinding } from "./requester-binding";
import * as samples from "./samples";
import { minter } from "./stack";

const root = join(__dirname, "..");
const NETNS_VAR = "ATB_DEPLOY_CHECK_NETNS";
/** The node's bridge in the check's network namespace; pods get .10 and up. */
const BRIDGE = { name: "atb0", prefix: "10.246.0" };
const NODE_IP = `${BRIDGE.prefix}.1`;
const NAMESPACE = "pepr-system";
const SERVICE_ACCOUNT = "pepr-atb-operator";
const BROKER = { namespace: "atb-system", service: "atb-broker", port: 8443 };
const EXECUTOR = "atb-executor";

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DeployReport {
  ok: boolean;
  checks: Check[];
  pods: PodReport[];
  /** The last lines of each pod's container log, for a failed run. */
  podLogs: Record<string, string>;
}

interface Args {
  dist: string;
  report?: string;
  keep: boolean;
  /** How long each operator Deployment may take to roll out (kubectl rollout status --timeout). */
  rolloutSeconds: number;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { dist: join(root, "dist"), keep: false, rolloutSeconds: 240 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--dist" && value) out.dist = isAbsolute(value) ? value : resolve(value);
    else if (flag === "--report" && value) out.report = isAbsolute(value) ? value : resolve(value);
    else if (flag === "--rollout-timeout" && /^\d+$/.test(value ?? "")) out.rolloutSeconds = Number(value);
    else if (flag === "--keep") {
      out.keep = true;
      continue;
    } else
      throw new Error(
        `unknown or incomplete argument "${flag}" (usage: [--dist DIR] [--report FILE] [--rollout-timeout SECONDS] [--keep])`,
      );
    i++;
  }
  return out;
}

/** Runs this file again in a network and mount namespace of its own; returns its exit code. */
function reExecInNamespaces(): Promise<number> {
  if (process.getuid?.() !== 0)
    throw new Error("the deploy-path check needs root: it makes network and mount namespaces (unshare) and cgroups");
  const child = spawn(
    "unshare",
    [
      "--net",
      "--mount",
      "--propagation",
      "private",
      "--fork",
      "--kill-child",
      process.execPath,
      join(root, "tools", "run-ts.mjs"),
      "tools/deploy-path.ts",
      ...process.argv.slice(2),
    ],
    { stdio: "inherit", env: { ...process.env, [NETNS_VAR]: "1" } },
  );
  const pass = (sig: NodeJS.Signals) => () => child.kill(sig);
  process.on("SIGINT", pass("SIGINT"));
  process.on("SIGTERM", pass("SIGTERM"));
  return new Promise(r => child.on("exit", (code, signal) => r(code ?? (signal ? 128 : 1))));
}

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

function get(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const u = new URL(url);
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(
      { host: u.hostname, port: u.port, path: u.pathname, rejectUnauthorized: false, timeout: timeoutMs },
      r => {
        let body = "";
        r.on("data", (c: Buffer) => (body += c.toString("utf8")));
        r.on("end", () => res({ status: r.statusCode ?? 0, body }));
      },
    );
    req.on("error", rej);
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.end();
  });
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise(r => setTimeout(r, 1000));
  }
}

/** Ready addresses behind a Service, from its EndpointSlices (what the API server routes to). */
function readyEndpoints(b: Binaries, kubeconfig: string, namespace: string, service: string): string[] {
  const out = kubectl(b, kubeconfig, [
    "get",
    "endpointslices",
    "-n",
    namespace,
    "-l",
    `kubernetes.io/service-name=${service}`,
    "-o",
    "json",
  ]);
  const items = (
    JSON.parse(out) as { items: { endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[] }[] }
  ).items;
  return items.flatMap(s => (s.endpoints ?? []).filter(e => e.conditions?.ready !== false).map(e => e.addresses[0]));
}

/** The broker as the manifests' ATB_BROKER_URL names it: a Service with an endpoint on the node. */
function brokerService(b: Binaries, kubeconfig: string): void {
  const objs = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: BROKER.namespace } },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: BROKER.service, namespace: BROKER.namespace },
      spec: { ports: [{ port: BROKER.port, targetPort: BROKER.port, protocol: "TCP" }] },
    },
    {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: `${BROKER.service}-node`,
        namespace: BROKER.namespace,
        labels: {
          "kubernetes.io/service-name": BROKER.service,
          "endpointslice.kubernetes.io/managed-by": "atb-deploy-check",
        },
      },
      addressType: "IPv4",
      endpoints: [{ addresses: [NODE_IP], conditions: { ready: true } }],
      ports: [{ name: "", port: BROKER.port, protocol: "TCP" }],
    },
  ];
  for (const o of objs) kubectl(b, kubeconfig, ["apply", "-f", "-"], JSON.stringify(o));
}

interface AuditEvent {
  verb: string;
  user: { username: string; extra?: Record<string, string[]> };
  impersonatedUser?: { username: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
}

function auditEvents(s: ClusterState): AuditEvent[] {
  const path = auditLogPath(s.dataDir);
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map(l => JSON.parse(l) as AuditEvent);
}

/** The checks on the audit log: who wrote the tasks' status and the targets. */
function auditChecks(s: ClusterState, watcherPods: string[]): Check[] {
  const events = auditEvents(s).filter(e => (e.responseStatus?.code ?? 0) < 300);
  const operator = `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`;
  const status = events.filter(e => e.objectRef?.resource === "agenttasks" && e.objectRef.subresource === "status");
  const statusUsers = [...new Set(status.map(e => e.user.username))];
  const podNames = [...new Set(status.flatMap(e => e.user.extra?.["authentication.kubernetes.io/pod-name"] ?? []))];
  const targets = events.filter(
    e =>
      e.impersonatedUser &&
      ["patch", "update", "create"].includes(e.verb) &&
      samples.SAMPLE_NAMESPACES.includes(e.objectRef?.namespace ?? ""),
  );
  const targetUsers = [...new Set(targets.map(e => `${e.user.username} as ${e.impersonatedUser!.username}`))];
  const wantTarget = (ns: string) => `${operator} as system:serviceaccount:${ns}:${EXECUTOR}`;
  return [
    {
      name: "audit: task status written by the generated ServiceAccount only",
      ok: status.length > 0 && statusUsers.length === 1 && statusUsers[0] === operator,
      detail: `${status.length} status writes by ${statusUsers.join(", ") || "nobody"}`,
    },
    {
      name: "audit: with the token the runner requested for the watcher pod",
      ok: podNames.length > 0 && podNames.every(p => watcherPods.includes(p)),
      detail: `token bound to pod(s) ${podNames.join(", ") || "(none)"}; watcher pods ${watcherPods.join(", ")}`,
    },
    {
      name: "audit: targets written as the namespace's executor, impersonated by the operator",
      ok: targets.length > 0 && targetUsers.every(u => samples.SAMPLE_NAMESPACES.some(ns => u === wantTarget(ns))),
      detail: `${targets.length} target writes by ${targetUsers.join("; ") || "nobody"}`,
    },
  ];
}

async function probeChecks(b: Binaries, kubeconfig: string, pods: PodReport[]): Promise<Check[]> {
  const out: Check[] = [];
  for (const p of pods.filter(x => x.namespace === NAMESPACE && x.ip)) {
    const r = await get(`https://${p.ip}:3000/healthz`).catch((e: Error) => ({ status: 0, body: e.message }));
    out.push({
      name: `probe: ${p.name} /healthz (port 3000, HTTPS)`,
      ok: r.status === 200,
      detail: `HTTP ${r.status} ${r.body.slice(0, 120)}`,
    });
  }
  const metrics = readyEndpoints(b, kubeconfig, NAMESPACE, "atb-operator-metrics");
  const m = metrics[0]
    ? await get(`http://${metrics[0]}:9464/metrics`).catch((e: Error) => ({ status: 0, body: e.message }))
    : { status: 0, body: "the metrics Service has no ready endpoint" };
  const ready = metrics[0]
    ? await get(`http://${metrics[0]}:9464/readyz`).catch((e: Error) => ({ status: 0, body: e.message }))
    : { status: 0, body: "no endpoint" };
  out.push({
    name: "readiness: the watcher's /readyz on the metrics port (its sweep lists AgentTasks)",
    ok: ready.status === 200,
    detail: `HTTP ${ready.status} ${ready.body.slice(0, 200)}`,
  });
  const completed = /atb_operator_tasks_total\{[^}]*\}\s+[1-9]/.test(m.body);
  out.push({
    name: "metrics: the watcher's port 9464 through the atb-operator-metrics Service",
    ok: m.status === 200 && completed,
    detail: `${metrics[0] ?? "(no endpoint)"}: HTTP ${m.status}, atb_operator_tasks_total ${completed ? "counts the samples" : "missing or zero"}`,
  });
  return out;
}

/** The pod runner (npm run pods) as a process of its own, and what it reports. */
interface Pods {
  report(): PodReport[];
  stop(): Promise<void>;
}

function startPods(state: string, s: ClusterState): Pods {
  mkdirSync(state, { recursive: true });
  const fd = openSync(join(state, "..", "pods.log"), "a");
  const child: ChildProcess = spawn(
    process.execPath,
    [
      join(root, "tools", "run-ts.mjs"),
      "tools/pods/cli.ts",
      "--kubeconfig",
      s.kubeconfig,
      "--namespace",
      NAMESPACE,
      "--bridge",
      `${BRIDGE.name}/${BRIDGE.prefix}`,
      "--apiserver",
      `${NODE_IP}:${s.ports.apiserver}`,
      "--state",
      state,
    ],
    { cwd: root, detached: true, stdio: ["ignore", fd, fd] },
  );
  closeSync(fd);
  if (!child.pid) throw new Error("could not start the pod runner");
  tieGroup(child.pid);
  const exited = new Promise<void>(r => child.on("exit", () => r()));
  return {
    report: () => {
      const f = join(state, "report.json");
      return existsSync(f) ? (JSON.parse(readFileSync(f, "utf8")) as PodReport[]) : [];
    },
    async stop() {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(t);
      untieGroup(child.pid!);
    },
  };
}

interface PodTemplate {
  metadata: { name: string };
  spec: {
    template: {
      spec: {
        securityContext?: { fsGroup?: number; runAsUser?: number; runAsGroup?: number };
        containers: {
          name: string;
          securityContext?: { runAsUser?: number; runAsGroup?: number; allowPrivilegeEscalation?: boolean };
          volumeMounts?: { mountPath: string; readOnly?: boolean }[];
          resources?: { limits?: { memory?: string } };
        }[];
      };
    };
  };
}

const SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

type ContainerSpec = PodTemplate["spec"]["template"]["spec"]["containers"][number];

/** How a container's process differs from what its Deployment says. */
function containerProblems(
  f: ProcessFacts,
  c: ContainerSpec,
  ps: NonNullable<PodTemplate["spec"]["template"]["spec"]["securityContext"]>,
): string[] {
  const problems: string[] = [];
  const cs = c.securityContext ?? {};
  const want = { uid: cs.runAsUser ?? ps.runAsUser, gid: cs.runAsGroup ?? ps.runAsGroup };
  if (f.uid !== want.uid) problems.push(`uid ${f.uid}, Deployment says ${want.uid}`);
  if (f.gid !== want.gid) problems.push(`gid ${f.gid}, Deployment says ${want.gid}`);
  if (ps.fsGroup !== undefined && !f.groups.includes(ps.fsGroup))
    problems.push(`groups ${f.groups.join(",")} lack fsGroup ${ps.fsGroup}`);
  if (cs.allowPrivilegeEscalation === false && !f.noNewPrivs) problems.push("no_new_privs not set");
  if (!/^0+$/.test(f.capEff)) problems.push(`effective capabilities ${f.capEff}`);
  for (const m of [...(c.volumeMounts ?? []), { mountPath: SA_MOUNT, readOnly: true }]) {
    const seen = f.mounts.find(x => x.path === m.mountPath);
    if (!seen) problems.push(`${m.mountPath} not mounted`);
    else if (m.readOnly && !seen.readOnly) problems.push(`${m.mountPath} mounted read-write`);
  }
  const limit = c.resources?.limits?.memory;
  if (limit && f.memoryLimit !== memoryBytes(limit))
    problems.push(`memory limit ${f.memoryLimit ?? "none"}, Deployment says ${limit}`);
  return problems;
}

/**
 * Each running container as the kernel sees it against its generated Deployment: user, group,
 * fsGroup, no-new-privileges, no capabilities, every volumeMount (and the ServiceAccount token)
 * mounted read-only at its path, the memory limit.
 */
function processChecks(dist: string, pods: PodReport[]): Check[] {
  const deployments = (loadAll(readFileSync(join(dist, "atb-operator.yaml"), "utf8")) as ({ kind?: string } | null)[])
    .filter(d => d?.kind === "Deployment")
    .map(d => d as unknown as PodTemplate);
  const out: Check[] = [];
  for (const p of pods.filter(x => x.namespace === NAMESPACE)) {
    const d = deployments.find(x => new RegExp(`^${x.metadata.name}-[a-z0-9]+-[a-z0-9]+$`).test(p.name));
    if (!d) {
      out.push({ name: `process: ${p.name}`, ok: false, detail: "no generated Deployment makes this pod" });
      continue;
    }
    const ps = d.spec.template.spec.securityContext ?? {};
    for (const c of d.spec.template.spec.containers) {
      const f = p.processes.find(x => x.container === c.name);
      const problems = f ? containerProblems(f, c, ps) : ["no running process"];
      out.push({
        name: `process: ${p.name}/${c.name} runs as its Deployment says`,
        ok: problems.length === 0,
        detail: problems.length
          ? problems.join("; ")
          : `uid ${f!.uid} gid ${f!.gid} groups ${f!.groups.join(",")}, no_new_privs, no capabilities, ${(c.volumeMounts ?? []).length + 1} mounts read-only, memory limit ${f!.memoryLimit}`,
      });
    }
  }
  return out;
}

/** The webhooks as the API server calls them: the requester annotation on every task, a refusal. */
function webhookChecks(b: Binaries, kubeconfig: string): Check[] {
  const tasks = JSON.parse(kubectl(b, kubeconfig, ["get", "agenttasks", "-A", "-o", "json"])) as {
    items: { metadata: { name: string; annotations?: Record<string, string> } }[];
  };
  const unmarked = tasks.items.filter(t => !t.metadata.annotations?.[ANNOTATION_REQUESTER]).map(t => t.metadata.name);
  const bad = {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name: "deploy-check-cross-namespace", namespace: samples.SAMPLE_NAMESPACES[0] },
    spec: {
      agentId: "spiffe://atb.example.com/agent/deploy-check",
      poaToken: "e30.e30.e30",
      action: "scale",
      target: { kind: "Deployment", name: "web-frontend", namespace: samples.SAMPLE_NAMESPACES[1] },
      payload: { replicas: 2 },
    },
  };
  const r = spawnSync(b.kubectl, [`--kubeconfig=${kubeconfig}`, "create", "--dry-run=server", "-f", "-"], {
    input: JSON.stringify(bad),
    encoding: "utf8",
  });
  const refused = /admission webhook "pepr-atb-operator\.pepr\.dev" denied the request.*spec\.target\.namespace/s.test(
    r.stderr,
  );
  return [
    {
      name: "webhooks: the mutating webhook recorded the requester on every task",
      ok: tasks.items.length > 0 && unmarked.length === 0,
      detail: unmarked.length
        ? `no ${ANNOTATION_REQUESTER} on ${unmarked.join(", ")}`
        : `${tasks.items.length} tasks carry ${ANNOTATION_REQUESTER}`,
    },
    {
      name: "webhooks: the validating webhook refuses a cross-namespace task, naming the field",
      ok: r.status !== 0 && refused,
      detail: (r.stderr || r.stdout).trim().slice(0, 300),
    },
  ];
}

/** The README's Installation commands, in its order, against this control plane. */
function install(b: Binaries, s: ClusterState, dist: string, tls: { cert: string; key: string; ca: string }): void {
  const k = (args: string[], input?: string) => kubectl(b, s.kubeconfig, args, input);
  k(["create", "namespace", NAMESPACE]);
  k([
    "create",
    "secret",
    "generic",
    "atb-operator-tls",
    "-n",
    NAMESPACE,
    `--from-file=tls.crt=${tls.cert}`,
    `--from-file=tls.key=${tls.key}`,
    `--from-file=ca.crt=${tls.ca}`,
  ]);
  // The manifests carry a ServiceMonitor: the Prometheus Operator's CRD (a typed subset) first.
  k(["apply", "--server-side", "-f", join(root, "tests", "fixtures", "servicemonitor-crd.yaml")]);
  k(["wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com"]);
  k(["apply", "--server-side", "-f", join(dist, "atb-operator.yaml")]);
  for (const ns of samples.SAMPLE_NAMESPACES) {
    k(["create", "namespace", ns]);
    // The README's command, as written: npm run -s executor -- <ns> --bound all-actions | kubectl apply -f -
    const r = spawnSync("npm", ["run", "-s", "executor", "--", ns, "--bound", "all-actions"], {
      cwd: root,
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`npm run executor -- ${ns}: ${r.stderr}`);
    k(["apply", "-f", "-"], r.stdout);
  }
}

async function check(args: Args): Promise<DeployReport> {
  if (!existsSync(join(args.dist, "atb-operator.yaml")))
    throw new Error(
      `${join(args.dist, "atb-operator.yaml")} is missing: run \`npm run build && npm run manifests\` first`,
    );
  const log = (l: string) => console.log(l);
  const dataDir = join(existsSync("/dev/shm") ? "/dev/shm" : "/tmp", `atb-deploy-check-${process.pid}`);
  if (!args.keep) tiePath(dataDir);
  ip(["link", "set", "lo", "up"]);
  ip(["link", "add", BRIDGE.name, "type", "bridge"]);
  ip(["addr", "add", `${NODE_IP}/24`, "dev", BRIDGE.name]);
  ip(["link", "set", BRIDGE.name, "up"]);
  const b = ensureBinaries(log);
  const s = await up({
    dataDir: join(dataDir, "cluster"),
    nodes: 2,
    log,
    apiserver: {
      bindAddress: "0.0.0.0",
      advertiseAddress: NODE_IP,
      ips: [NODE_IP],
      serviceAccountAdmission: true,
      // Service-referenced webhooks go to an endpoint of the Service (there is no kube-proxy).
      extraArgs: ["--enable-aggregator-routing=true"],
    },
    kwokUnmanagedNamespaces: [NAMESPACE],
  });
  let broker: RunningBroker | undefined;
  let runner: Pods | undefined;
  const checks: Check[] = [];
  const report = (): DeployReport => {
    const pods = runner?.report() ?? [];
    const podLogs: Record<string, string> = {};
    for (const p of pods)
      for (const f of p.logFiles)
        podLogs[`${p.name}`] = existsSync(f) ? readFileSync(f, "utf8").split("\n").slice(-40).join("\n") : "(no log)";
    return { ok: checks.length > 0 && checks.every(c => c.ok), checks, pods, podLogs };
  };
  try {
    const material = await ensureDevMaterial(join(dataDir, "pki"));
    const keys = await samples.approverKeys(dataDir);
    broker = await startBroker({
      host: NODE_IP,
      port: BROKER.port,
      tls: { certFile: material.server.cert, keyFile: material.server.key, clientCaFile: material.ca.cert },
      poa: { publicKeyFiles: [material.poaPublicKey], preset: "dev", ...samples.approverTrust(keys) },
      audit: join(dataDir, "broker-audit.log"),
      logger: createLogger("info", "broker", createWriteStream(join(dataDir, "broker.log"), { flags: "a" })),
      dataFile: writeDataWithBinding(
        samples.SAMPLE_BROKER_DATA,
        [LOCAL_ADMIN_BINDING],
        join(dataDir, "broker-data.json"),
      ),
    });
    brokerService(b, s.kubeconfig);
    install(b, s, args.dist, { cert: material.client.cert, key: material.client.key, ca: material.ca.cert });
    runner = startPods(join(dataDir, "pods"), s);
    for (const d of ["pepr-atb-operator-watcher", "pepr-atb-operator"]) {
      const r = spawnSync(
        b.kubectl,
        [
          `--kubeconfig=${s.kubeconfig}`,
          "rollout",
          "status",
          `deployment/${d}`,
          "-n",
          NAMESPACE,
          `--timeout=${args.rolloutSeconds}s`,
        ],
        { encoding: "utf8" },
      );
      checks.push({
        name: `rollout: deployment/${d} (kubectl rollout status)`,
        ok: r.status === 0,
        detail: `${r.stdout.trim().split("\n").pop() ?? ""} ${r.stderr.trim()}`.trim(),
      });
      if (r.status !== 0) return report();
    }
    const admission = await until("the admission Service's ready endpoints", 60_000, () => {
      const eps = readyEndpoints(b, s.kubeconfig, NAMESPACE, "pepr-atb-operator");
      return eps.length ? eps : undefined;
    });
    checks.push({
      name: "webhooks: the admission Service has ready endpoints",
      ok: true,
      detail: admission.join(", "),
    });
    samples.rollOut(b, s.kubeconfig, "workloads");
    samples.rollOut(b, s.kubeconfig, "releases");
    await samples.applyTasks(
      minter(b, s.kubeconfig, readFileSync(material.poaPrivateKey, "utf8")),
      b,
      s.kubeconfig,
      keys,
    );
    const samplesOk = await samples.waitForSamples(b, s, 240_000);
    checks.push({
      name: "samples: every sample task reached its expected phase and risk tier through the generated pods",
      ok: samplesOk,
      detail: kubectl(b, s.kubeconfig, ["get", "agenttasks", "-A"]).trim(),
    });
    checks.push(...webhookChecks(b, s.kubeconfig));
    checks.push(...(await probeChecks(b, s.kubeconfig, runner.report())));
    checks.push(...processChecks(args.dist, runner.report()));
    const watcherPods = runner
      .report()
      .filter(p => p.name.startsWith("pepr-atb-operator-watcher"))
      .map(p => p.name);
    checks.push(...auditChecks(s, watcherPods));
    return report();
  } catch (err) {
    checks.push({
      name: "the check ran to its end",
      ok: false,
      detail: err instanceof Error ? err.message : String(err),
    });
    checks.push({ name: "kube-apiserver log (tail)", ok: false, detail: logTail(s.dataDir, "kube-apiserver", 15) });
    return report();
  } finally {
    await runner?.stop();
    log(`[deploy-check] pod runner log: ${join(dataDir, "pods.log")}`);
    await broker?.stop();
    await down(s.dataDir, log);
    if (!args.keep) rmSync(dataDir, { recursive: true, force: true });
    else log(`[deploy-check] kept ${dataDir}`);
  }
}

async function main(): Promise<number> {
  if (process.env[NETNS_VAR] !== "1") return reExecInNamespaces();
  const args = parseArgs(process.argv.slice(2));
  const r = await check(args);
  if (args.report) {
    mkdirSync(resolve(args.report, ".."), { recursive: true });
    writeFileSync(args.report, JSON.stringify(r, null, 2));
  }
  for (const c of r.checks)
    console.log(`[deploy-check] ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail.split("\n")[0]}`);
  for (const p of r.pods) {
    if (p.refused) console.log(`[deploy-check] pod ${p.namespace}/${p.name} REFUSED: ${p.refused}`);
    for (const n of p.notes) console.log(`[deploy-check] pod ${p.namespace}/${p.name}: ${n}`);
  }
  if (!r.ok)
    for (const [pod, text] of Object.entries(r.podLogs)) console.log(`\n[deploy-check] ${pod} log (tail):\n${text}`);
  console.log(r.ok ? "[deploy-check] the generated deploy path works" : "[deploy-check] FAILED");
  return r.ok ? 0 : 1;
}

main().then(
  code => process.exit(code),
  (err: unknown) => {
    console.error(`deploy-check: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
