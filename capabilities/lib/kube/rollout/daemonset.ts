// DaemonSet rollout status, as `kubectl rollout status daemonset` decides it.
import type { KubeObject, VerifyResult } from "../../action";
import { done, notObserved, num, record, waiting, type Status } from "./common";

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
