// Rollout status per workload kind, following `kubectl rollout status` (k8s.io/kubectl
// pkg/polymorphichelpers/rollout_status.go) so a task counts as Completed exactly when an engineer
// running kubectl would call the rollout finished. Pure functions over one GET of the object; one
// file per kind.
import type { KubeObject, VerifyResult } from "../../action";
import { done } from "./common";
import { daemonSetStatus } from "./daemonset";
import { deploymentStatus } from "./deployment";
import { replicaSetStatus } from "./replicaset";
import { statefulSetStatus } from "./statefulset";

export { num, specReplicas } from "./common";
export { daemonSetStatus, deploymentStatus, replicaSetStatus, statefulSetStatus };

const BY_KIND: Record<string, (obj: KubeObject) => VerifyResult> = {
  Deployment: deploymentStatus,
  StatefulSet: statefulSetStatus,
  DaemonSet: daemonSetStatus,
  ReplicaSet: replicaSetStatus,
};

/**
 * The kinds whose change takes effect only when a controller has rolled it out: their verify
 * waits, and the executor may `watch` them (lib/kube/object-watch.ts) instead of polling.
 */
export const ROLLOUT_KINDS: readonly string[] = Object.freeze(Object.keys(BY_KIND));

/** Rollout status of any workload kind; kinds without a rollout (ConfigMap, ...) are done. */
export function rolloutStatus(kind: string, obj: KubeObject): VerifyResult {
  const f = BY_KIND[kind];
  return f ? f(obj) : done(`${kind} ${obj.metadata.name} updated`);
}
