// Rollout status per workload kind, following `kubectl rollout status` (k8s.io/kubectl
// pkg/polymorphichelpers/rollout_status.go) so a task counts as Completed exactly when an engineer
// running kubectl would call the rollout finished. Pure functions over one GET of the object,
// plus the shared workload helpers (target GET, pod template, containers) the actions use.
import type { KubeObject, TaskContext, VerifyResult } from "./action";
import { resourcePath } from "./kube";

type Status = Record<string, unknown>;

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

export function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

const waiting = (message: string): VerifyResult => ({ state: "waiting", message });
const done = (message: string): VerifyResult => ({ state: "done", message });

/** spec.replicas with the API default (1) applied, as the controllers read it. */
export function specReplicas(obj: KubeObject): number {
  const r = obj.spec?.replicas;
  return typeof r === "number" ? r : 1;
}

/** The controller has not seen the latest spec yet: nothing in status is about our change. */
function notObserved(obj: KubeObject): boolean {
  const status: Status = obj.status ?? {};
  return num(status.observedGeneration) === 0 || num(obj.metadata.generation) > num(status.observedGeneration);
}

/** What a Deployment's rollout still waits for, in kubectl's order; undefined when complete. */
function deploymentPending(d: KubeObject): string | undefined {
  const s: Status = d.status ?? {};
  const want = specReplicas(d);
  const [updated, replicas, available] = [num(s.updatedReplicas), num(s.replicas), num(s.availableReplicas)];
  if (updated !== want) return `${updated} of ${want} new replicas have been updated`;
  if (replicas !== updated) return `${replicas - updated} old replicas are pending termination`;
  if (available !== updated) return `${available} of ${updated} updated replicas are available`;
  return undefined;
}

export function deploymentStatus(d: KubeObject): VerifyResult {
  const name = d.metadata.name;
  if (notObserved(d)) return waiting(`waiting for deployment ${name} spec update to be observed`);
  const s: Status = d.status ?? {};
  const conditions = (Array.isArray(s.conditions) ? s.conditions : []) as Condition[];
  const progressing = conditions.find(c => c.type === "Progressing");
  if (progressing?.reason === "ProgressDeadlineExceeded") {
    return {
      state: "failed",
      reason: "ProgressDeadlineExceeded",
      message: `deployment ${name} exceeded its progress deadline: ${progressing.message ?? ""}`.trim(),
    };
  }
  const pending = deploymentPending(d);
  if (!pending) return done(`deployment ${name} successfully rolled out (${num(s.updatedReplicas)} replicas)`);
  // A paused Deployment never rolls a new template out: waiting would only burn the timeout.
  if (d.spec?.paused === true) {
    return { state: "failed", reason: "DeploymentPaused", message: `deployment ${name} is paused: ${pending}` };
  }
  return waiting(`waiting for deployment ${name} rollout to finish: ${pending}`);
}

export function statefulSetStatus(sts: KubeObject): VerifyResult {
  const name = sts.metadata.name;
  const strategy = record(sts.spec?.updateStrategy);
  if (notObserved(sts)) return waiting(`waiting for statefulset ${name} spec update to be observed`);
  const s: Status = sts.status ?? {};
  const want = specReplicas(sts);
  if (num(s.readyReplicas) < want)
    return waiting(`waiting for ${want - num(s.readyReplicas)} pods of ${name} to be ready`);
  if (strategy.type === "OnDelete")
    return done(`statefulset ${name} uses OnDelete: pods take the new template when deleted`);
  const partition = num(record(strategy.rollingUpdate).partition);
  if (partition > 0) {
    const target = Math.max(0, want - partition);
    if (num(s.updatedReplicas) < target) {
      return waiting(
        `waiting for partitioned roll out of ${name}: ${num(s.updatedReplicas)} of ${target} new pods updated`,
      );
    }
    return done(`statefulset ${name} partitioned roll out complete: ${num(s.updatedReplicas)} new pods updated`);
  }
  if (s.updateRevision !== s.currentRevision) {
    return waiting(
      `waiting for statefulset ${name} rolling update: ${num(s.updatedReplicas)} pods at revision ${String(s.updateRevision)}`,
    );
  }
  return done(
    `statefulset ${name} rolling update complete: ${num(s.currentReplicas)} pods at revision ${String(s.currentRevision)}`,
  );
}

export function daemonSetStatus(ds: KubeObject): VerifyResult {
  const name = ds.metadata.name;
  if (notObserved(ds)) return waiting(`waiting for daemon set ${name} spec update to be observed`);
  const s: Status = ds.status ?? {};
  const desired = num(s.desiredNumberScheduled);
  if (record(ds.spec?.updateStrategy).type === "OnDelete") {
    return done(`daemon set ${name} uses OnDelete: pods take the new template when deleted`);
  }
  if (num(s.updatedNumberScheduled) !== desired) {
    return waiting(
      `waiting for daemon set ${name} rollout: ${num(s.updatedNumberScheduled)} of ${desired} updated pods scheduled`,
    );
  }
  if (num(s.numberAvailable) !== desired) {
    return waiting(
      `waiting for daemon set ${name} rollout: ${num(s.numberAvailable)} of ${desired} updated pods available`,
    );
  }
  return done(`daemon set ${name} successfully rolled out (${desired} pods)`);
}

/** ReplicaSets have no rollout: done when the controller saw the spec and every replica is ready. */
export function replicaSetStatus(rs: KubeObject): VerifyResult {
  const name = rs.metadata.name;
  if (notObserved(rs)) return waiting(`waiting for replica set ${name} spec update to be observed`);
  const s: Status = rs.status ?? {};
  const want = specReplicas(rs);
  if (num(s.replicas) !== want || num(s.readyReplicas) !== want) {
    return waiting(
      `waiting for replica set ${name}: ${num(s.readyReplicas)} of ${want} replicas ready (${num(s.replicas)} exist)`,
    );
  }
  return done(`replica set ${name} has ${want} ready replicas`);
}

const BY_KIND: Record<string, (obj: KubeObject) => VerifyResult> = {
  Deployment: deploymentStatus,
  StatefulSet: statefulSetStatus,
  DaemonSet: daemonSetStatus,
  ReplicaSet: replicaSetStatus,
};

/** Rollout status of any workload kind; kinds without a rollout (ConfigMap, ...) are done. */
export function rolloutStatus(kind: string, obj: KubeObject): VerifyResult {
  const f = BY_KIND[kind];
  return f ? f(obj) : done(`${kind} ${obj.metadata.name} updated`);
}

/** GET the task's target (undefined when it does not exist). */
export function getTarget(ctx: TaskContext): Promise<KubeObject | undefined> {
  const t = ctx.spec.target;
  return ctx.kube.get<KubeObject>(resourcePath(t.kind, t.namespace, t.name));
}

export function targetGone(ctx: TaskContext): VerifyResult {
  const t = ctx.spec.target;
  return { state: "failed", reason: "TargetNotFound", message: `${t.kind} ${t.namespace}/${t.name} no longer exists` };
}

/** The shared verify of restart, deploy and patch: re-read the target, apply its kind's rules. */
export async function verifyRollout(ctx: TaskContext): Promise<VerifyResult> {
  const obj = await getTarget(ctx);
  return obj ? rolloutStatus(ctx.spec.target.kind, obj) : targetGone(ctx);
}

export interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  spec?: { containers?: { name: string; image?: string }[]; [k: string]: unknown };
  [k: string]: unknown;
}

export function podTemplate(obj: KubeObject | undefined): PodTemplate {
  return record(obj?.spec?.template) as PodTemplate;
}

/** Container name → image of a workload's pod template (regular containers only). */
export function containerImages(obj: KubeObject | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const list = podTemplate(obj).spec?.containers;
  for (const c of Array.isArray(list) ? list : []) {
    if (c && typeof c.name === "string") out[c.name] = typeof c.image === "string" ? c.image : "";
  }
  return out;
}
