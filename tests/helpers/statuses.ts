// Statuses as an earlier operator process left them, for tests that start a new process over
// stored tasks: authorized (and, with `applied`, written) but not yet finished.
import type { AgentTask, Condition } from "../../crds/agenttask";

function condition(type: Condition["type"], reason: string, at: Date): Condition {
  return { type, status: "True", reason, message: "ok", lastTransitionTime: at.toISOString() };
}

/** Executing with Authorized=True; with `applied`, also Executed=True (the change was written). */
export function startedStatus(at: Date, o: { applied?: boolean } = {}): NonNullable<AgentTask["status"]> {
  const conditions = [condition("Authorized", "Authorized", at)];
  if (o.applied) conditions.push(condition("Executed", "Applied", at));
  return { phase: "Executing", attempts: 0, conditions };
}
