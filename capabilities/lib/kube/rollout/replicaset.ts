// ReplicaSet readiness: a ReplicaSet has no rollout, only replicas that become ready.
import type { KubeObject, VerifyResult } from "../../action";
import { done, notObserved, num, specReplicas, waiting, type Status } from "./common";

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
