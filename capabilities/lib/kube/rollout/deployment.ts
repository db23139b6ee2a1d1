// Deployment rollout status, as `kubectl rollout status deployment` decides it.
import type { KubeObject, VerifyResult } from "../../action";
import { done, notObserved, num, specReplicas, waiting, type Condition, type Status } from "./common";

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
