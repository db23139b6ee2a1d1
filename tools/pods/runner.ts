// Pods without a container engine: a small kubelet for the pods of some namespaces. It takes the
// Pods the scheduler bound (the Deployment, ReplicaSet and scheduler are the real ones) and runs
// each container as a local process the way the kubelet would (tools/pods/spec.ts makes the plan,
// or refuses the pod naming every field it cannot honour):
//
// - a pod sandbox: a "pause" process in new network, mount, PID and UTS namespaces (hostname = pod name); a veth pair joins
//   its eth0 (the pod IP) to a bridge in the runner's own network namespace, where the API server
//   listens too (so the API server reaches webhooks at pod IPs, and pods reach the API server at
//   the bridge's address);
// - a root filesystem of its own: a tmpfs with the host's /usr read-only (Node.js and the C
//   library; the image's own Node.js cannot be reproduced), a copy of /etc with the pod's
//   /etc/hosts, /proc of the pod's PID namespace, a minimal /dev, the image's content
//   (tools/pods/image.ts) and each volume bind-mounted at its mountPath (read-only where the
//   kubelet mounts it so);
// - volumes from the API: Secrets, ConfigMaps and projected volumes (a ServiceAccount token from
//   the TokenRequest API bound to the Pod, kube-root-ca.crt, the namespace) written with the
//   volume's modes, owned by root and the pod's fsGroup as the kubelet does;
// - the container's environment (its env with Secret, ConfigMap and field references resolved,
//   KUBERNETES_SERVICE_HOST/PORT pointing at the API server, HOSTNAME), user, group and
//   supplementary groups, no-new-privileges, no capabilities, memory and CPU limits (cgroup v1);
// - probes (httpGet, tcpSocket) run from the node as the kubelet runs them; readiness sets the
//   Pod's Ready condition and pod IP in its status, so the real EndpointSlice controller publishes
//   the pod behind its Services; a failed liveness probe restarts the container;
// - a Pod being deleted: SIGTERM, its grace period, SIGKILL, then the sandbox is torn down.
//
// Cluster DNS and kube-proxy are not reproduced: a pod's /etc/hosts maps the names of the
// cluster's Services (<svc>.<ns>.svc and .svc.cluster.local) to a ready endpoint of each, taken
// when the pod starts. Needs root (namespaces, mounts, cgroups).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { imageFs, type ImageFs } from "./image";
import {
  expand,
  planPod,
  PodRefused,
  type ContainerPlan,
  type PodPlan,
  type Probe,
  type VolumeSource,
  type KeyPath,
} from "./spec";
import { tieGroup, untieGroup } from "../reaper";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = Record<string, any>;

export interface RunnerOptions {
  /** The project's folder (its package-lock.json and node_modules make the image). */
  root: string;
  kubectl: string;
  /** An admin kubeconfig: the runner plays the node, which reads Secrets and writes Pod status. */
  kubeconfig: string;
  /** The pods of these namespaces are this runner's. */
  namespaces: string[];
  stateDir: string;
  /** The bridge in the runner's network namespace and its /24: gateway .1, pods from .10. */
  bridge: { name: string; prefix: string };
  /** The API server as pods reach it. */
  apiserver: { host: string; port: number };
  log?: (line: string) => void;
  /** Interval of the Pod list, ms (default 1000). */
  pollMs?: number;
}

interface ContainerRun {
  plan: ContainerPlan;
  process?: ChildProcess;
  pgid?: number;
  logFile: string;
  restarts: number;
  ready: boolean;
  started?: string;
  exited?: { code: number | null; signal: string | null; at: string };
  livenessFailures: number;
  readinessOk: number;
  readinessFailures: number;
  cgroups: string[];
}

interface PodRun {
  key: string;
  plan: PodPlan;
  ip: string;
  index: number;
  dir: string;
  pause: ChildProcess;
  /** The sleeper inside the sandbox's namespaces (pid 1 there), as the host sees it. */
  sandboxPid: number;
  containers: ContainerRun[];
  startTime: string;
  timers: NodeJS.Timeout[];
  stopping?: Promise<void>;
  lastStatus?: string;
}

/** What the runner saw of one pod, for reports and tests. */
export interface PodReport {
  namespace: string;
  name: string;
  ip?: string;
  ready: boolean;
  restarts: number;
  refused?: string;
  notes: string[];
  logFiles: string[];
  /** Each running container's main process as the kernel sees it (/proc). */
  processes: ProcessFacts[];
}

/** A container's process: who it runs as, what it may do, what it sees mounted. */
export interface ProcessFacts {
  container: string;
  pid: number;
  uid: number;
  gid: number;
  groups: number[];
  noNewPrivs: boolean;
  /** Effective capabilities (hex, 0 = none). */
  capEff: string;
  /** Mount points as the process sees them (its root is the container's), read-only ones marked. */
  mounts: { path: string; readOnly: boolean }[];
  /** cgroup v1 memory limit in bytes, when in a memory cgroup of the runner's. */
  memoryLimit?: number;
}

/** The facts of the process in group `pgid` that runs the container's command (argv[0]). */
export function processFacts(container: string, pgid: number, command: string): ProcessFacts | undefined {
  let pids: number[] = [];
  try {
    pids = readdirSync("/proc")
      .filter(d => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    const stat = readFileQuiet(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) !== pgid) continue;
    const comm = readFileQuiet(`/proc/${pid}/comm`).trim();
    if (comm !== command.split("/").pop()) continue;
    const status = readFileQuiet(`/proc/${pid}/status`);
    const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "";
    const mounts = readFileQuiet(`/proc/${pid}/mountinfo`)
      .split("\n")
      .filter(Boolean)
      .map(l => {
        const f = l.split(" ");
        return { path: f[4], readOnly: f[5].split(",").includes("ro") };
      })
      .filter(m => !m.path.startsWith("/.."));
    const cg = /memory:(.*)$/m.exec(readFileQuiet(`/proc/${pid}/cgroup`))?.[1];
    const limit = cg ? Number(readFileQuiet(join("/sys/fs/cgroup/memory", cg, "memory.limit_in_bytes")).trim()) : NaN;
    return {
      container,
      pid,
      uid: Number(field("Uid").split(/\s+/)[1]),
      gid: Number(field("Gid").split(/\s+/)[1]),
      groups: field("Groups").split(/\s+/).filter(Boolean).map(Number),
      noNewPrivs: field("NoNewPrivs") === "1",
      capEff: field("CapEff"),
      mounts,
      ...(Number.isFinite(limit) ? { memoryLimit: limit } : {}),
    };
  }
  return undefined;
}

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

function cgroupRoots(): string[] {
  return ["memory", "cpu"].map(c => join("/sys/fs/cgroup", c, "atb-pods")).filter(p => existsSync(dirname(p)));
}

export class PodRunner {
  private readonly pods = new Map<string, PodRun>();
  private readonly refused = new Map<string, { reason: string; notes: string[] }>();
  private readonly images = new Map<string, ImageFs>();
  private readonly log: (line: string) => void;
  private timer?: NodeJS.Timeout;
  private polling = false;
  private nextIndex = 10;
  private stopped = false;

  constructor(private readonly o: RunnerOptions) {
    this.log = o.log ?? (l => console.error(l));
    if (process.getuid?.() !== 0) throw new Error("the pod runner needs root (network and mount namespaces, cgroups)");
    for (const root of cgroupRoots()) {
      // Empty groups a killed earlier run left behind.
      if (existsSync(root)) for (const d of readdirSync(root)) rmdirQuiet(join(root, d));
    }
  }

  private kubectl(args: string[], input?: string): string {
    return sh(this.o.kubectl, [`--kubeconfig=${this.o.kubeconfig}`, ...args], input);
  }

  private getJson(args: string[]): Obj | undefined {
    const r = spawnSync(this.o.kubectl, [`--kubeconfig=${this.o.kubeconfig}`, "get", ...args, "-o", "json"], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0) {
      if (/NotFound|not found/.test(r.stderr)) return undefined;
      throw new Error(`kubectl get ${args.join(" ")}: ${r.stderr.trim()}`);
    }
    return JSON.parse(r.stdout) as Obj;
  }

  private image(image: string): ImageFs {
    let fs = this.images.get(image);
    if (!fs) this.images.set(image, (fs = imageFs(image, this.o.root)));
    return fs;
  }

  start(): void {
    const tick = () => {
      if (this.polling || this.stopped) return;
      this.polling = true;
      this.sync()
        .catch(err => this.log(`[pods] ${err instanceof Error ? err.message : String(err)}`))
        .finally(() => (this.polling = false));
    };
    this.timer = setInterval(tick, this.o.pollMs ?? 1000);
    tick();
  }

  report(): PodReport[] {
    const out: PodReport[] = [];
    for (const p of this.pods.values()) {
      out.push({
        namespace: p.plan.namespace,
        name: p.plan.name,
        ip: p.ip,
        ready: p.containers.every(c => c.ready),
        restarts: p.containers.reduce((n, c) => n + c.restarts, 0),
        notes: p.plan.notes,
        logFiles: p.containers.map(c => c.logFile),
        processes: p.containers.flatMap(c => {
          const f = c.pgid && !c.exited ? processFacts(c.plan.name, c.pgid, c.plan.argv[0]) : undefined;
          return f ? [f] : [];
        }),
      });
    }
    for (const [key, r] of this.refused) {
      const [namespace, name] = key.split("/");
      out.push({
        namespace,
        name,
        ready: false,
        restarts: 0,
        refused: r.reason,
        notes: r.notes,
        logFiles: [],
        processes: [],
      });
    }
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.pods.values()].map(p => this.terminate(p)));
  }

  private async sync(): Promise<void> {
    const seen = new Set<string>();
    for (const ns of this.o.namespaces) {
      const list = this.getJson(["pods", "-n", ns]);
      for (const pod of (list?.items ?? []) as Obj[]) {
        const key = `${pod.metadata.namespace}/${pod.metadata.name}/${pod.metadata.uid}`;
        seen.add(key);
        await this.syncPod(pod, this.pods.get(key));
      }
    }
    for (const [key, run] of this.pods) if (!seen.has(key)) void this.terminate(run);
  }

  private async syncPod(pod: Obj, run: PodRun | undefined): Promise<void> {
    if (pod.metadata.deletionTimestamp) {
      if (run) void this.terminate(run, pod);
      else this.forget(pod);
    } else if (run) await this.writeStatus(run);
    else if (pod.spec.nodeName && !this.refused.has(`${pod.metadata.namespace}/${pod.metadata.name}`))
      await this.startPod(pod).catch(err => this.failStart(pod, err));
  }

  /** Deletes a terminating pod nobody runs (as the kubelet does once its containers are gone). */
  private forget(pod: Obj): void {
    spawnSync(this.o.kubectl, [
      `--kubeconfig=${this.o.kubeconfig}`,
      "delete",
      "pod",
      pod.metadata.name,
      "-n",
      pod.metadata.namespace,
      "--grace-period=0",
      "--force",
      "--ignore-not-found",
      "--wait=false",
    ]);
  }

  private failStart(pod: Obj, err: unknown): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const msg = err instanceof Error ? err.message : String(err);
    if (err instanceof PodRefused) {
      // Loudly: on the Pod (as CreateContainerConfigError), in the log, and in the report.
      this.refused.set(key, { reason: msg, notes: [] });
      this.log(`[pods] REFUSED ${msg}`);
      this.patchStatus(pod.metadata.namespace, pod.metadata.name, {
        phase: "Pending",
        conditions: [{ type: "Ready", status: "False", reason: "CreateContainerConfigError", message: msg }],
        containerStatuses: ((pod.spec.containers ?? []) as Obj[]).map(c => ({
          name: c.name,
          image: c.image,
          imageID: "",
          ready: false,
          restartCount: 0,
          started: false,
          state: { waiting: { reason: "CreateContainerConfigError", message: msg.slice(0, 1000) } },
        })),
      });
      return;
    }
    // A volume or an env source not there yet: the kubelet retries (FailedMount); so does the next pass.
    this.log(`[pods] ${key}: cannot start yet: ${msg}`);
  }

  private patchStatus(namespace: string, name: string, status: Obj): void {
    spawnSync(this.o.kubectl, [
      `--kubeconfig=${this.o.kubeconfig}`,
      "patch",
      "pod",
      name,
      "-n",
      namespace,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status }),
    ]);
  }

  // ---- start -------------------------------------------------------------------------------

  private async startPod(pod: Obj): Promise<void> {
    const plan = planPod(pod, i => this.image(i));
    const key = `${plan.namespace}/${plan.name}/${plan.uid}`;
    const dir = join(this.o.stateDir, `${plan.namespace}_${plan.name}_${plan.uid.slice(0, 8)}`);
    rmSync(dir, { recursive: true, force: true });
    // The pod's volumes hold Secret values: only root may look in (the kubelet's pods folder is 0750).
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    // Volumes and env first: a missing Secret is retried on the next pass without using an address.
    const volumes = this.materializeVolumes(plan, pod, dir);
    const index = this.nextIndex;
    if (index > 250) throw new Error("the node's pod range is exhausted");
    const ip = `${this.o.bridge.prefix}.${index}`;
    const envs = plan.containers.map(c => this.environment(c, plan, pod, ip));
    this.nextIndex++;
    writeFileSync(join(dir, "hosts"), this.hosts(plan, ip));
    for (const line of plan.notes) this.log(`[pods] ${plan.namespace}/${plan.name}: note: ${line}`);
    const { pause, sandboxPid } = await this.sandbox(plan, index, ip);
    const run: PodRun = {
      key,
      plan,
      ip,
      index,
      dir,
      pause,
      sandboxPid,
      containers: [],
      startTime: new Date().toISOString(),
      timers: [],
    };
    this.pods.set(key, run);
    for (const [i, c] of plan.containers.entries()) {
      const root = join(dir, `root-${c.name}`);
      this.mountRoot(run, c, root, volumes);
      const cr: ContainerRun = {
        plan: c,
        logFile: join(dir, `${c.name}.log`),
        restarts: 0,
        ready: false,
        livenessFailures: 0,
        readinessOk: 0,
        readinessFailures: 0,
        cgroups: this.cgroups(run, c),
      };
      run.containers.push(cr);
      this.launch(run, cr, root, envs[i]);
      this.probe(run, cr);
    }
    this.log(`[pods] ${plan.namespace}/${plan.name} started at ${ip} (${plan.containers.map(c => c.name).join(", ")})`);
    await this.writeStatus(run);
  }

  private objectData(
    kind: "secret" | "configmap",
    namespace: string,
    name: string,
    optional: boolean,
    what: string,
  ): Record<string, Buffer> {
    return kind === "secret"
      ? this.secretData(namespace, name, optional, what)
      : this.configMapData(namespace, name, optional, what);
  }

  private secretData(namespace: string, name: string, optional: boolean, what: string): Record<string, Buffer> {
    const obj = this.getJson(["secret", name, "-n", namespace]);
    if (!obj) {
      if (optional) return {};
      throw new Error(`${what}: secret "${name}" not found`);
    }
    return Object.fromEntries(
      Object.entries((obj.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, "base64")]),
    );
  }

  private configMapData(namespace: string, name: string, optional: boolean, what: string): Record<string, Buffer> {
    const obj = this.getJson(["configmap", name, "-n", namespace]);
    if (!obj) {
      if (optional) return {};
      throw new Error(`${what}: configmap "${name}" not found`);
    }
    return {
      ...Object.fromEntries(
        Object.entries((obj.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v)]),
      ),
      ...Object.fromEntries(
        Object.entries((obj.binaryData ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, "base64")]),
      ),
    };
  }

  private fieldValue(fieldPath: string, plan: PodPlan, pod: Obj, ip: string): string {
    switch (fieldPath) {
      case "metadata.name":
        return plan.name;
      case "metadata.namespace":
        return plan.namespace;
      case "metadata.uid":
        return plan.uid;
      case "spec.serviceAccountName":
        return plan.serviceAccount;
      case "spec.nodeName":
        return String(pod.spec.nodeName ?? "");
      case "status.podIP":
        return ip;
      case "status.hostIP":
        return `${this.o.bridge.prefix}.1`;
      default:
        throw new Error(`fieldRef ${fieldPath} is not supported`);
    }
  }

  /** Writes every volume's files (the kubelet's modes and ownership) and returns their folders. */
  private materializeVolumes(plan: PodPlan, pod: Obj, dir: string): Map<string, string> {
    const out = new Map<string, string>();
    const gid = plan.fsGroup ?? 0;
    const write = (base: string, path: string, data: Buffer, mode: number) => {
      const file = join(base, path);
      if (!file.startsWith(`${base}/`)) throw new Error(`volume path ${path} leaves its volume`);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, data);
      // The kubelet's volume ownership: group fsGroup, group-readable (read-only volumes).
      chownSync(file, 0, gid);
      chmodSync(file, plan.fsGroup !== undefined ? mode | 0o440 : mode);
    };
    const pick = (data: Record<string, Buffer>, items: KeyPath[] | undefined, defaultMode: number, what: string) =>
      items
        ? items.map(i => {
            if (!(i.key in data)) throw new Error(`${what}: key ${i.key} not found`);
            return { path: i.path, data: data[i.key], mode: i.mode ?? defaultMode };
          })
        : Object.entries(data).map(([k, v]) => ({ path: k, data: v, mode: defaultMode }));
    for (const [name, v] of plan.volumes) {
      const base = join(dir, "volumes", name);
      mkdirSync(base, { recursive: true });
      chownSync(base, 0, gid);
      chmodSync(base, v.kind === "emptyDir" ? 0o777 : 0o755);
      out.set(name, base);
      const what = `volume ${name}`;
      for (const f of this.volumeFiles(v, plan, pod, what, pick)) write(base, f.path, f.data, f.mode);
    }
    return out;
  }

  private volumeFiles(
    v: VolumeSource,
    plan: PodPlan,
    pod: Obj,
    what: string,
    pick: (
      data: Record<string, Buffer>,
      items: KeyPath[] | undefined,
      mode: number,
      what: string,
    ) => { path: string; data: Buffer; mode: number }[],
  ): { path: string; data: Buffer; mode: number }[] {
    switch (v.kind) {
      case "emptyDir":
        return [];
      case "secret":
        return pick(this.secretData(plan.namespace, v.secretName, v.optional, what), v.items, v.defaultMode, what);
      case "configMap":
        return pick(this.configMapData(plan.namespace, v.name, v.optional, what), v.items, v.defaultMode, what);
      case "projected":
        return v.sources.flatMap(s => {
          if ("serviceAccountToken" in s) {
            const t = s.serviceAccountToken;
            const token = this.kubectl([
              "create",
              "token",
              plan.serviceAccount,
              "-n",
              plan.namespace,
              `--duration=${t.expirationSeconds}s`,
              "--bound-object-kind=Pod",
              `--bound-object-name=${plan.name}`,
              `--bound-object-uid=${plan.uid}`,
              ...(t.audience ? [`--audience=${t.audience}`] : []),
            ]).trim();
            return [{ path: t.path, data: Buffer.from(token), mode: v.defaultMode }];
          }
          if ("configMap" in s || "secret" in s) {
            const [kind, ref] = "secret" in s ? (["secret", s.secret] as const) : (["configmap", s.configMap] as const);
            return pick(
              this.objectData(kind, plan.namespace, ref.name, ref.optional, what),
              ref.items,
              v.defaultMode,
              what,
            );
          }
          return s.downwardAPI.items.map(i => ({
            path: i.path,
            data: Buffer.from(this.fieldValue(i.fieldPath, plan, pod, "")),
            mode: i.mode ?? v.defaultMode,
          }));
        });
    }
  }

  private environment(c: ContainerPlan, plan: PodPlan, pod: Obj, ip: string): Record<string, string> {
    const img = this.image(c.image);
    const { host, port } = this.o.apiserver;
    // The kubelet's order: image env, then the service variables, then the container's env (which
    // may refer to earlier variables with $(VAR)).
    const env = new Map<string, string>(Object.entries(img.env));
    env.set("HOSTNAME", plan.name);
    for (const [k, v] of Object.entries({
      KUBERNETES_SERVICE_HOST: host,
      KUBERNETES_SERVICE_PORT: String(port),
      KUBERNETES_SERVICE_PORT_HTTPS: String(port),
      KUBERNETES_PORT: `tcp://${host}:${port}`,
      [`KUBERNETES_PORT_${port}_TCP`]: `tcp://${host}:${port}`,
      [`KUBERNETES_PORT_${port}_TCP_PROTO`]: "tcp",
      [`KUBERNETES_PORT_${port}_TCP_PORT`]: String(port),
      [`KUBERNETES_PORT_${port}_TCP_ADDR`]: host,
    }))
      env.set(k, v);
    for (const e of c.env) {
      const value = this.envValue(e, plan, pod, ip, env);
      if (value !== undefined) env.set(e.name, value);
    }
    return Object.fromEntries(env);
  }

  /** One env entry's value; undefined for an optional reference that is not there. */
  private envValue(
    e: ContainerPlan["env"][number],
    plan: PodPlan,
    pod: Obj,
    ip: string,
    env: Map<string, string>,
  ): string | undefined {
    const f = e.from;
    if ("value" in f) return expand(f.value, env);
    if ("fieldRef" in f) return this.fieldValue(f.fieldRef.fieldPath, plan, pod, ip);
    const [kind, ref] =
      "secretKeyRef" in f ? (["secret", f.secretKeyRef] as const) : (["configmap", f.configMapKeyRef] as const);
    const d = this.objectData(kind, plan.namespace, ref.name, !!ref.optional, `env ${e.name}`);
    if (ref.key in d) return d[ref.key].toString("utf8");
    if (ref.optional) return undefined;
    throw new Error(`env ${e.name}: key ${ref.key} not in ${kind} ${ref.name}`);
  }

  /** /etc/hosts: the pod, and every Service of the cluster at a ready endpoint (no cluster DNS here). */
  private hosts(plan: PodPlan, ip: string): string {
    const lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", `${ip}\t${plan.name}`];
    const slices = (this.getJson(["endpointslices", "-A"])?.items ?? []) as Obj[];
    const byService = new Map<string, string>();
    for (const s of slices) {
      const svc = s.metadata.labels?.["kubernetes.io/service-name"] as string | undefined;
      const ep = ((s.endpoints ?? []) as Obj[]).find(e => e.conditions?.ready !== false && e.addresses?.length);
      if (svc && ep && !byService.has(`${s.metadata.namespace}/${svc}`))
        byService.set(`${s.metadata.namespace}/${svc}`, ep.addresses[0] as string);
    }
    for (const [key, addr] of byService) {
      const [ns, svc] = key.split("/");
      const names = [`${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`, `${svc}.${ns}`];
      if (ns === plan.namespace) names.push(svc);
      lines.push(`${addr}\t${names.join(" ")}`);
    }
    return `${lines.join("\n")}\n`;
  }

  /** The pause process in new namespaces, its eth0 on the bridge with the pod IP. */
  private async sandbox(
    plan: PodPlan,
    index: number,
    ip: string,
  ): Promise<{ pause: ChildProcess; sandboxPid: number }> {
    const pause = spawn(
      "unshare",
      ["--net", "--mount", "--pid", "--uts", "--fork", "--propagation", "private", "--kill-child", "sleep", "infinity"],
      {
        detached: true,
        stdio: "ignore",
      },
    );
    if (!pause.pid) throw new Error("could not start the pod sandbox (unshare)");
    tieGroup(pause.pid);
    let sandboxPid = 0;
    for (let i = 0; i < 100 && !sandboxPid; i++) {
      await new Promise(r => setTimeout(r, 20));
      const children = readFileQuiet(`/proc/${pause.pid}/task/${pause.pid}/children`).trim();
      if (children) sandboxPid = Number(children.split(/\s+/)[0]);
    }
    if (!sandboxPid) throw new Error(`the pod sandbox of ${plan.namespace}/${plan.name} did not start`);
    const host = `vh${index}`;
    const peer = `vp${index}`;
    sh("ip", ["link", "add", host, "type", "veth", "peer", "name", peer]);
    sh("ip", ["link", "set", host, "master", this.o.bridge.name, "up"]);
    sh("ip", ["link", "set", peer, "netns", String(sandboxPid)]);
    const inNet = (args: string[]) => sh("nsenter", ["-t", String(sandboxPid), "-n", "ip", ...args]);
    // The pod's hostname is its name, as the kubelet sets it.
    sh("nsenter", ["-t", String(sandboxPid), "-u", "hostname", plan.name.slice(0, 63)]);
    inNet(["link", "set", "lo", "up"]);
    inNet(["link", "set", peer, "name", "eth0"]);
    inNet(["addr", "add", `${ip}/24`, "dev", "eth0"]);
    inNet(["link", "set", "eth0", "up"]);
    inNet(["route", "add", "default", "via", `${this.o.bridge.prefix}.1`]);
    return { pause, sandboxPid };
  }

  /** The container's root filesystem, built inside the sandbox's mount namespace. */
  private mountRoot(run: PodRun, c: ContainerPlan, root: string, volumes: Map<string, string>): void {
    const img = this.image(c.image);
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const lines = [
      "set -eu",
      `R=${q(root)}`,
      'mkdir -p "$R"',
      'mount -t tmpfs -o mode=755 tmpfs "$R"',
      'mkdir -p "$R/usr" "$R/etc" "$R/proc" "$R/dev" "$R/tmp" "$R/run" "$R/var/run" "$R/sys"',
      'for l in bin lib lib64 sbin; do [ -L "/$l" ] && ln -s "$(readlink "/$l")" "$R/$l"; done',
      'mount --bind /usr "$R/usr"',
      'mount -o remount,bind,ro "$R/usr"',
      'cp -a /etc/. "$R/etc/"',
      `cp ${q(join(run.dir, "hosts"))} "$R/etc/hosts"`,
      `printf '%s\\n' ${q(run.plan.name)} > "$R/etc/hostname"`,
      // No cluster DNS: names resolve from /etc/hosts only.
      `printf 'search ${run.plan.namespace}.svc.cluster.local svc.cluster.local cluster.local\\noptions ndots:5\\n' > "$R/etc/resolv.conf"`,
      'mount -t proc proc "$R/proc"',
      'mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"',
      'mount -t tmpfs -o mode=755 tmpfs "$R/dev"',
      'for d in null zero full random urandom tty; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done',
      'mkdir -p "$R/dev/shm" "$R/dev/pts" && mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"',
      'ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"',
      // The image's working folder belongs to its user (Pepr's controller writes the module there).
      `mkdir -p "$R"${q(img.workingDir)} && chown ${img.user.uid}:${img.user.gid} "$R"${q(img.workingDir)}`,
    ];
    for (const [path, src] of Object.entries(img.content)) {
      lines.push(
        `mkdir -p "$R"${q(path)}`,
        `mount --bind ${q(src)} "$R"${q(path)}`,
        `mount -o remount,bind,ro "$R"${q(path)}`,
      );
    }
    for (const m of c.mounts) {
      const src = volumes.get(m.volume)!;
      const kind = run.plan.volumes.get(m.volume)!.kind;
      // The kubelet mounts Secret, ConfigMap and projected volumes read-only whatever the mount says.
      const ro = m.readOnly || kind !== "emptyDir";
      lines.push(`mkdir -p "$R"${q(m.mountPath)}`, `mount --bind ${q(src)} "$R"${q(m.mountPath)}`);
      if (ro) lines.push(`mount -o remount,bind,ro "$R"${q(m.mountPath)}`);
    }
    if (c.readOnlyRootFilesystem) lines.push('mount -o remount,ro "$R"');
    sh("nsenter", ["-t", String(run.sandboxPid), "-m", "-p", "sh", "-c", lines.join("\n")]);
  }

  private cgroups(run: PodRun, c: ContainerPlan): string[] {
    const name = `${run.plan.namespace}_${run.plan.name}_${c.name}`;
    const out: string[] = [];
    for (const root of cgroupRoots()) {
      const dir = join(root, name);
      mkdirSync(dir, { recursive: true });
      if (root.includes("/memory/") && c.limits.memoryBytes)
        writeFileSync(join(dir, "memory.limit_in_bytes"), String(c.limits.memoryBytes));
      if (root.includes("/cpu/") && c.limits.cpuMillis) {
        writeFileSync(join(dir, "cpu.cfs_period_us"), "100000");
        writeFileSync(join(dir, "cpu.cfs_quota_us"), String(c.limits.cpuMillis * 100));
      }
      out.push(dir);
    }
    if (out.length < 2 && (c.limits.memoryBytes || c.limits.cpuMillis))
      run.plan.notes.push(`${c.name}: cgroup v1 memory/cpu controllers not found: limits not applied`);
    return out;
  }

  private launch(run: PodRun, cr: ContainerRun, root: string, env: Record<string, string>): void {
    const c = cr.plan;
    const groups = c.groups.length ? ["--groups", c.groups.join(",")] : ["--clear-groups"];
    const argv = c.argv.map(a => expand(a, new Map(Object.entries(env))));
    const fd = openSync(cr.logFile, "a");
    // The shell joins the container's cgroups first, so everything it execs and forks is in them;
    // the environment is passed as the process environment, never on a command line.
    const cg = cr.cgroups.map(d => `echo $$ > '${d}/cgroup.procs'`).join("; ");
    const child = spawn(
      "/bin/sh",
      [
        "-c",
        `${cg ? `${cg}; ` : ""}exec "$@"`,
        "sh",
        "nsenter",
        "-t",
        String(run.sandboxPid),
        "-n",
        "-m",
        "-p",
        "chroot",
        root,
        "setpriv",
        "--reuid",
        String(c.uid),
        "--regid",
        String(c.gid),
        ...groups,
        ...(c.noNewPrivileges ? ["--no-new-privs"] : []),
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        "env",
        "-C",
        c.workingDir,
        "--",
        ...argv,
      ],
      { detached: true, stdio: ["ignore", fd, fd], env },
    );
    closeSync(fd);
    if (!child.pid) throw new Error(`could not start container ${c.name}`);
    tieGroup(child.pid);
    cr.process = child;
    cr.pgid = child.pid;
    cr.started = new Date().toISOString();
    cr.exited = undefined;
    child.on("exit", (code, signal) => {
      untieGroup(child.pid!);
      cr.exited = { code, signal, at: new Date().toISOString() };
      cr.ready = false;
      if (run.stopping || this.stopped) return;
      // restartPolicy Always (a Deployment's pods): start it again, as the kubelet does (no back-off here).
      cr.restarts++;
      this.log(
        `[pods] ${run.plan.namespace}/${run.plan.name} container ${c.name} exited (${code ?? signal}); restarting`,
      );
      const t = setTimeout(() => !run.stopping && this.launch(run, cr, root, env), 1000);
      run.timers.push(t);
    });
  }

  private probe(run: PodRun, cr: ContainerRun): void {
    const c = cr.plan;
    const schedule = (p: Probe | undefined, onResult: (ok: boolean) => void) => {
      if (!p) return;
      const tick = () => {
        if (run.stopping) return;
        void this.check(run, p).then(ok => {
          onResult(ok);
          if (!run.stopping) run.timers.push(setTimeout(tick, p.periodSeconds * 1000));
        });
      };
      run.timers.push(setTimeout(tick, p.initialDelaySeconds * 1000));
    };
    if (!c.readiness) cr.ready = true;
    schedule(c.readiness, ok => {
      if (ok) {
        cr.readinessFailures = 0;
        if (++cr.readinessOk >= c.readiness!.successThreshold) cr.ready = !!cr.process && !cr.exited;
      } else {
        cr.readinessOk = 0;
        if (++cr.readinessFailures >= c.readiness!.failureThreshold) cr.ready = false;
      }
    });
    schedule(c.liveness, ok => {
      if (ok) cr.livenessFailures = 0;
      else if (++cr.livenessFailures >= c.liveness!.failureThreshold && cr.pgid && !cr.exited) {
        this.log(
          `[pods] ${run.plan.namespace}/${run.plan.name} container ${c.name}: liveness probe failed ${cr.livenessFailures} times; killing it`,
        );
        cr.livenessFailures = 0;
        killGroup(cr.pgid, "SIGKILL");
      }
    });
  }

  private check(run: PodRun, p: Probe): Promise<boolean> {
    const c = run.plan.containers;
    const port = typeof p.port === "number" ? p.port : c.flatMap(x => x.ports)[0];
    return new Promise(resolve => {
      if (p.kind === "tcp") {
        const s = connect({ host: run.ip, port, timeout: p.timeoutSeconds * 1000 }, () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
        s.on("timeout", () => (s.destroy(), resolve(false)));
        return;
      }
      const req = (p.scheme === "HTTPS" ? httpsRequest : httpRequest)(
        // The kubelet does not verify a probe's certificate.
        {
          host: run.ip,
          port,
          path: p.path,
          method: "GET",
          timeout: p.timeoutSeconds * 1000,
          rejectUnauthorized: false,
        },
        res => {
          res.resume();
          resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
        },
      );
      req.on("error", () => resolve(false));
      req.on("timeout", () => (req.destroy(), resolve(false)));
      req.end();
    });
  }

  private async writeStatus(run: PodRun): Promise<void> {
    if (run.stopping) return;
    const ready = run.containers.every(c => c.ready);
    const now = new Date().toISOString();
    const cond = (type: string, ok: boolean) => ({ type, status: ok ? "True" : "False" });
    const status = {
      phase: "Running",
      hostIP: `${this.o.bridge.prefix}.1`,
      hostIPs: [{ ip: `${this.o.bridge.prefix}.1` }],
      podIP: run.ip,
      podIPs: [{ ip: run.ip }],
      startTime: run.startTime,
      conditions: [
        cond("Initialized", true),
        cond("ContainersReady", ready),
        cond("Ready", ready),
        cond("PodScheduled", true),
      ],
      containerStatuses: run.containers.map(c => ({
        name: c.plan.name,
        image: c.plan.image,
        imageID: "",
        containerID: `atb-pods://${c.pgid ?? 0}`,
        ready: c.ready,
        started: !c.exited,
        restartCount: c.restarts,
        state: c.exited ? { waiting: { reason: "CrashLoopBackOff" } } : { running: { startedAt: c.started } },
        ...(c.exited
          ? {
              lastState: {
                terminated: {
                  exitCode: c.exited.code ?? 137,
                  finishedAt: c.exited.at,
                  reason: c.exited.signal ?? "Error",
                },
              },
            }
          : {}),
      })),
    };
    const text = JSON.stringify(status);
    if (text === run.lastStatus) return;
    run.lastStatus = text;
    void now;
    this.patchStatus(run.plan.namespace, run.plan.name, status);
  }

  // ---- stop --------------------------------------------------------------------------------

  private terminate(run: PodRun, pod?: Obj): Promise<void> {
    if (run.stopping) return run.stopping;
    run.stopping = (async () => {
      for (const t of run.timers) clearTimeout(t);
      const grace = pod?.metadata?.deletionGracePeriodSeconds ?? run.plan.graceSeconds;
      for (const c of run.containers) if (c.pgid && !c.exited) killGroup(c.pgid, "SIGTERM");
      const deadline = Date.now() + grace * 1000;
      while (run.containers.some(c => c.pgid && !c.exited) && Date.now() < deadline)
        await new Promise(r => setTimeout(r, 100));
      for (const c of run.containers) if (c.pgid && !c.exited) killGroup(c.pgid, "SIGKILL");
      // The sandbox: its PID namespace ends with its first process, its network and mount
      // namespaces (and the veth pair) with the last.
      if (run.pause.pid) {
        killGroup(run.pause.pid, "SIGKILL");
        untieGroup(run.pause.pid);
      }
      await new Promise(r => setTimeout(r, 200));
      for (const c of run.containers) for (const d of c.cgroups) rmdirQuiet(d);
      spawnSync("ip", ["link", "del", `vh${run.index}`]);
      this.pods.delete(run.key);
      this.log(`[pods] ${run.plan.namespace}/${run.plan.name} stopped`);
      if (pod && !this.stopped) this.forget(pod);
    })();
    return run.stopping;
  }
}

function killGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* gone */
  }
}

function rmdirQuiet(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    /* busy or gone */
  }
}

function readFileQuiet(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
