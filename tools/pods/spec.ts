// What the pod runner makes of a Pod: the plan the kubelet would follow (command, environment,
// volumes and mounts, user, privileges, probes, limits), or a refusal that names every field it
// cannot honour without a container engine. Pure: no I/O, unit-tested (tests/unit/pods-spec.test.ts).
import type { ImageFs } from "./image";

export interface Probe {
  kind: "http" | "tcp";
  port: number | string;
  path?: string;
  scheme?: "HTTP" | "HTTPS";
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
  successThreshold: number;
}

export type EnvSource =
  | { value: string }
  | { secretKeyRef: { name: string; key: string; optional?: boolean } }
  | { configMapKeyRef: { name: string; key: string; optional?: boolean } }
  | { fieldRef: { fieldPath: string } };

export interface Mount {
  volume: string;
  mountPath: string;
  readOnly: boolean;
}

export type VolumeSource =
  | { kind: "secret"; secretName: string; defaultMode: number; optional: boolean; items?: KeyPath[] }
  | { kind: "configMap"; name: string; defaultMode: number; optional: boolean; items?: KeyPath[] }
  | { kind: "emptyDir"; medium?: string }
  | { kind: "projected"; defaultMode: number; sources: ProjectedSource[] };

export interface KeyPath {
  key: string;
  path: string;
  mode?: number;
}

export type ProjectedSource =
  | { serviceAccountToken: { path: string; audience?: string; expirationSeconds: number } }
  | { configMap: { name: string; items?: KeyPath[]; optional: boolean } }
  | { secret: { name: string; items?: KeyPath[]; optional: boolean } }
  | { downwardAPI: { items: { path: string; fieldPath: string; mode?: number }[] } };

export interface ContainerPlan {
  name: string;
  image: string;
  argv: string[];
  workingDir: string;
  env: { name: string; from: EnvSource }[];
  mounts: Mount[];
  uid: number;
  gid: number;
  /** Supplementary groups: fsGroup and supplementalGroups. */
  groups: number[];
  noNewPrivileges: boolean;
  readOnlyRootFilesystem: boolean;
  ports: number[];
  readiness?: Probe;
  liveness?: Probe;
  startup?: Probe;
  limits: { memoryBytes?: number; cpuMillis?: number };
}

export interface PodPlan {
  namespace: string;
  name: string;
  uid: string;
  serviceAccount: string;
  fsGroup?: number;
  volumes: Map<string, VolumeSource>;
  containers: ContainerPlan[];
  graceSeconds: number;
  /** What the runner does differently from a kubelet with a container runtime, said at start. */
  notes: string[];
}

/** The pod asks for something the runner cannot honour; `problems` name each field and why. */
export class PodRefused extends Error {
  constructor(
    readonly pod: string,
    readonly problems: string[],
  ) {
    super(`pod ${pod} cannot be run without a container engine:\n  - ${problems.join("\n  - ")}`);
  }
}

// The Pod fields read here (a subset of core/v1 Pod).
/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = Record<string, any>;

const QUANTITY = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const FACTOR: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** A memory quantity in bytes, or undefined when it is not one. */
export function memoryBytes(q: unknown): number | undefined {
  const m = QUANTITY.exec(String(q));
  if (!m || m[2] === "m") return undefined;
  return Math.round(Number(m[1]) * FACTOR[m[2] ?? ""]);
}

/** A CPU quantity in millicores, or undefined when it is not one. */
export function cpuMillis(q: unknown): number | undefined {
  const m = QUANTITY.exec(String(q));
  if (!m) return undefined;
  if (m[2] === "m") return Math.round(Number(m[1]));
  if (m[2]) return undefined;
  return Math.round(Number(m[1]) * 1000);
}

function probe(p: Obj | undefined, where: string, problems: string[]): Probe | undefined {
  if (!p) return undefined;
  const timing = {
    initialDelaySeconds: p.initialDelaySeconds ?? 0,
    periodSeconds: p.periodSeconds ?? 10,
    timeoutSeconds: p.timeoutSeconds ?? 1,
    failureThreshold: p.failureThreshold ?? 3,
    successThreshold: p.successThreshold ?? 1,
  };
  if (p.httpGet) {
    if (p.httpGet.host) problems.push(`${where}.httpGet.host: probes of another host are not supported`);
    if (p.httpGet.httpHeaders?.length) problems.push(`${where}.httpGet.httpHeaders: not supported`);
    return {
      kind: "http",
      port: p.httpGet.port,
      path: p.httpGet.path ?? "/",
      scheme: p.httpGet.scheme ?? "HTTP",
      ...timing,
    };
  }
  if (p.tcpSocket) return { kind: "tcp", port: p.tcpSocket.port, ...timing };
  problems.push(`${where}: only httpGet and tcpSocket probes are supported (exec and grpc are not)`);
  return undefined;
}

function keyPaths(items: Obj[] | undefined): KeyPath[] | undefined {
  return items?.map(i => ({ key: i.key, path: i.path, ...(i.mode !== undefined ? { mode: i.mode } : {}) }));
}

function projectedSource(s: Obj, where: string, problems: string[]): ProjectedSource[] {
  if (s.serviceAccountToken) {
    const t = s.serviceAccountToken as Obj;
    return [
      {
        serviceAccountToken: { path: t.path, audience: t.audience, expirationSeconds: t.expirationSeconds ?? 3600 },
      },
    ];
  }
  if (s.configMap)
    return [
      { configMap: { name: s.configMap.name, items: keyPaths(s.configMap.items), optional: !!s.configMap.optional } },
    ];
  if (s.secret)
    return [{ secret: { name: s.secret.name, items: keyPaths(s.secret.items), optional: !!s.secret.optional } }];
  if (s.downwardAPI) {
    const items = (s.downwardAPI.items ?? []) as Obj[];
    if (items.some(it => !it.fieldRef)) problems.push(`${where}.downwardAPI: only fieldRef items are supported`);
    return [
      {
        downwardAPI: {
          items: items
            .filter(it => it.fieldRef)
            .map(it => ({ path: it.path, fieldPath: it.fieldRef.fieldPath, mode: it.mode })),
        },
      },
    ];
  }
  problems.push(`${where}: unsupported source ${Object.keys(s).join(",")}`);
  return [];
}

function volume(v: Obj, problems: string[]): VolumeSource | undefined {
  const where = `spec.volumes[${v.name}]`;
  const keyed = (src: Obj) => ({
    defaultMode: (src.defaultMode as number | undefined) ?? 0o644,
    optional: (src.optional as boolean | undefined) ?? false,
    items: keyPaths(src.items),
  });
  if (v.secret) return { kind: "secret", secretName: v.secret.secretName, ...keyed(v.secret) };
  if (v.configMap) return { kind: "configMap", name: v.configMap.name, ...keyed(v.configMap) };
  if (v.emptyDir) return { kind: "emptyDir", medium: v.emptyDir.medium };
  if (v.projected) {
    const sources = ((v.projected.sources ?? []) as Obj[]).flatMap((s, i) =>
      projectedSource(s, `${where}.projected.sources[${i}]`, problems),
    );
    return { kind: "projected", defaultMode: v.projected.defaultMode ?? 0o644, sources };
  }
  const kind = Object.keys(v).filter(k => k !== "name");
  problems.push(
    `${where}: volume type ${kind.join(",")} is not supported (secret, configMap, projected and emptyDir are)`,
  );
  return undefined;
}

const FIELD_PATHS = new Set([
  "metadata.name",
  "metadata.namespace",
  "metadata.uid",
  "spec.serviceAccountName",
  "spec.nodeName",
  "status.podIP",
  "status.hostIP",
]);

function envOf(c: Obj, where: string, problems: string[]): { name: string; from: EnvSource }[] {
  if (c.envFrom?.length) problems.push(`${where}.envFrom: not supported`);
  return ((c.env ?? []) as Obj[]).flatMap((e): { name: string; from: EnvSource }[] => {
    const at = `${where}.env[${e.name}]`;
    if (!e.valueFrom) return [{ name: e.name, from: { value: String(e.value ?? "") } }];
    const f = e.valueFrom;
    if (f.secretKeyRef) return [{ name: e.name, from: { secretKeyRef: f.secretKeyRef } }];
    if (f.configMapKeyRef) return [{ name: e.name, from: { configMapKeyRef: f.configMapKeyRef } }];
    if (f.fieldRef && FIELD_PATHS.has(f.fieldRef.fieldPath)) return [{ name: e.name, from: { fieldRef: f.fieldRef } }];
    problems.push(
      `${at}.valueFrom: only value, secretKeyRef, configMapKeyRef and fieldRef (${[...FIELD_PATHS].join(", ")}) are supported`,
    );
    return [];
  });
}

/** Kubernetes' $(VAR) expansion in command and args ($$ escapes). */
export function expand(s: string, env: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) =>
    m === "$$" ? "$" : (env.get(name!) ?? m),
  );
}

function securityOf(pod: Obj, c: Obj, img: ImageFs, where: string, problems: string[], notes: string[]) {
  const ps = (pod.spec.securityContext ?? {}) as Obj;
  const cs = (c.securityContext ?? {}) as Obj;
  if (cs.privileged) problems.push(`${where}.securityContext.privileged: not supported`);
  if (cs.capabilities?.add?.length) problems.push(`${where}.securityContext.capabilities.add: not supported`);
  if (!(cs.capabilities?.drop ?? []).includes("ALL"))
    problems.push(
      `${where}.securityContext.capabilities.drop: the runner always drops ALL (a container runtime's default set cannot be reproduced)`,
    );
  if (cs.procMount && cs.procMount !== "Default") problems.push(`${where}.securityContext.procMount: not supported`);
  if (cs.windowsOptions || ps.windowsOptions) problems.push(`${where}: windowsOptions are not supported`);
  for (const [field, v] of [
    ["seLinuxOptions", cs.seLinuxOptions ?? ps.seLinuxOptions],
    ["appArmorProfile", cs.appArmorProfile ?? ps.appArmorProfile],
  ] as const) {
    if (v) problems.push(`${where}.securityContext.${field}: not supported`);
  }
  const seccomp = (cs.seccompProfile ?? ps.seccompProfile) as Obj | undefined;
  if (seccomp && seccomp.type !== "RuntimeDefault" && seccomp.type !== "Unconfined")
    problems.push(`${where}.securityContext.seccompProfile: ${seccomp.type} is not supported`);
  if (seccomp?.type === "RuntimeDefault")
    notes.push(
      `${where}: seccompProfile RuntimeDefault is not applied (no container runtime profile here); the process runs without a seccomp filter`,
    );
  const uid = (cs.runAsUser ?? ps.runAsUser ?? img.user.uid) as number;
  const gid = (cs.runAsGroup ?? ps.runAsGroup ?? img.user.gid) as number;
  if ((cs.runAsNonRoot ?? ps.runAsNonRoot) && uid === 0)
    problems.push(
      `${where}: runAsNonRoot is set but the container would run as uid 0 (the kubelet refuses to start it)`,
    );
  const groups = [...new Set([...(ps.supplementalGroups ?? []), ...(ps.fsGroup !== undefined ? [ps.fsGroup] : [])])];
  return {
    uid,
    gid,
    groups: groups as number[],
    noNewPrivileges: cs.allowPrivilegeEscalation === false,
    readOnlyRootFilesystem: !!cs.readOnlyRootFilesystem,
  };
}

/**
 * The plan for `pod` given the image filesystems; throws PodRefused listing every field the runner
 * cannot honour (nothing is silently dropped).
 */
export function planPod(pod: Obj, images: (image: string) => ImageFs): PodPlan {
  const problems: string[] = [];
  const notes: string[] = [];
  const spec = pod.spec as Obj;
  const name = `${pod.metadata.namespace}/${pod.metadata.name}`;
  for (const f of ["hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "hostUsers"] as const) {
    if (spec[f] === true || (f === "hostUsers" && spec[f] === false)) problems.push(`spec.${f}: not supported`);
  }
  if (spec.initContainers?.length) problems.push("spec.initContainers: not supported");
  if (spec.ephemeralContainers?.length) problems.push("spec.ephemeralContainers: not supported");
  if (spec.hostAliases?.length) problems.push("spec.hostAliases: not supported");
  if (spec.dnsConfig || (spec.dnsPolicy && spec.dnsPolicy !== "ClusterFirst"))
    problems.push("spec.dnsPolicy/dnsConfig: only ClusterFirst (served from /etc/hosts) is supported");
  if (spec.runtimeClassName) problems.push("spec.runtimeClassName: not supported");
  if (spec.os && spec.os.name !== "linux") problems.push(`spec.os.name: ${spec.os.name} is not supported`);
  const volumes = new Map<string, VolumeSource>();
  for (const v of (spec.volumes ?? []) as Obj[]) {
    const src = volume(v, problems);
    if (src) volumes.set(v.name, src);
  }
  const containers: ContainerPlan[] = [];
  for (const c of (spec.containers ?? []) as Obj[]) {
    const where = `spec.containers[${c.name}]`;
    let img: ImageFs | undefined;
    try {
      img = images(c.image);
    } catch (err) {
      problems.push(`${where}.image: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    if (c.lifecycle) problems.push(`${where}.lifecycle: hooks are not supported`);
    if (c.volumeDevices?.length) problems.push(`${where}.volumeDevices: not supported`);
    if (c.stdin || c.tty) problems.push(`${where}.stdin/tty: not supported`);
    if (c.restartPolicy) problems.push(`${where}.restartPolicy: sidecar containers are not supported`);
    const mounts: Mount[] = [];
    for (const m of (c.volumeMounts ?? []) as Obj[]) {
      if (!volumes.has(m.name)) {
        problems.push(`${where}.volumeMounts[${m.mountPath}]: no volume named ${m.name}`);
        continue;
      }
      if (m.subPath || m.subPathExpr) problems.push(`${where}.volumeMounts[${m.mountPath}].subPath: not supported`);
      if (m.mountPropagation && m.mountPropagation !== "None")
        problems.push(`${where}.volumeMounts[${m.mountPath}].mountPropagation: not supported`);
      mounts.push({ volume: m.name, mountPath: m.mountPath, readOnly: !!m.readOnly });
    }
    const probes = {
      readiness: probe(c.readinessProbe, `${where}.readinessProbe`, problems),
      liveness: probe(c.livenessProbe, `${where}.livenessProbe`, problems),
      startup: probe(c.startupProbe, `${where}.startupProbe`, problems),
    };
    const limits = (c.resources?.limits ?? {}) as Obj;
    for (const k of Object.keys(limits)) {
      if (k !== "memory" && k !== "cpu") problems.push(`${where}.resources.limits.${k}: not supported`);
    }
    containers.push({
      name: c.name,
      image: c.image,
      // command replaces the entrypoint (and drops the image's CMD); args replace CMD.
      argv: [...(c.command ?? img.entrypoint), ...(c.args ?? (c.command ? [] : img.cmd))],
      workingDir: c.workingDir ?? img.workingDir,
      env: envOf(c, where, problems),
      mounts,
      ...securityOf(pod, c, img, where, problems, notes),
      ports: ((c.ports ?? []) as Obj[]).map(p => p.containerPort as number),
      ...probes,
      limits: {
        ...(limits.memory !== undefined ? { memoryBytes: memoryBytes(limits.memory) } : {}),
        ...(limits.cpu !== undefined ? { cpuMillis: cpuMillis(limits.cpu) } : {}),
      },
    });
  }
  if (containers.length === 0 && problems.length === 0) problems.push("spec.containers: none");
  if (problems.length) throw new PodRefused(name, problems);
  return {
    namespace: pod.metadata.namespace,
    name: pod.metadata.name,
    uid: pod.metadata.uid,
    serviceAccount: spec.serviceAccountName ?? "default",
    fsGroup: spec.securityContext?.fsGroup,
    volumes,
    containers,
    graceSeconds: spec.terminationGracePeriodSeconds ?? 30,
    notes,
  };
}
