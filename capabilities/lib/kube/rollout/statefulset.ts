// StatefulSet rollout status, as `kubectl rollout status statefulset` decides it (partitions and
// OnDelete included).
import type { KubeObject, VerifyResult } from "../../action";
import { done, notObserved, num, record, specReplicas, waiting, type Status } from "./common";

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
