// What a transition tells the outside besides status: one structured log line and the seed's
// metrics. Label values stay bounded (actions, phases, tiers, stable reason codes).
import type { AgentTask } from "../../../crds/agenttask";
import type { Logger } from "../logger";
import type { OperatorMetrics } from "../metrics";
import { isTerminal, type Transition } from "../status/conditions";
import { Reason } from "./transitions";

/** Policy reason codes are short snake_case words; anything else is bucketed to keep labels bounded. */
export function reasonLabel(reason: string | undefined): string {
  return reason && /^[a-z0-9_]{1,64}$/.test(reason) ? reason : "other";
}

function ageMs(task: AgentTask): number {
  return Date.now() - Date.parse(String(task.metadata?.creationTimestamp));
}

export function logTransition(log: Logger, task: AgentTask, t: Transition): void {
  const atb = task.status?.atbResult;
  const target = task.spec?.target;
  log.info("transition", {
    uid: task.metadata?.uid,
    name: task.metadata?.name,
    namespace: task.metadata?.namespace,
    agentId: task.spec?.agentId,
    action: task.spec?.action ?? "unknown",
    target: target ? `${target.kind}/${target.namespace}/${target.name}` : undefined,
    phase: t.phase,
    reason: t.reason,
    detail: t.message,
    requestId: atb?.requestId,
    riskTier: atb?.riskTier,
    attempt: task.status?.attempts ?? 0,
    ageMs: ageMs(task),
  });
}

export function countTransition(m: OperatorMetrics, task: AgentTask, t: Transition): void {
  const action = task.spec?.action ?? "unknown";
  const atb = task.status?.atbResult;
  const tier = atb?.riskTier ?? "UNKNOWN";
  if (t.phase === "Executing" && t.reason === Reason.Authorized) m.tasksAllowed.inc({ action, risk_tier: tier });
  if (!isTerminal(t.phase)) return;
  m.tasksTotal.inc({ action, phase: t.phase });
  m.processingSeconds.observe({ action, phase: t.phase }, Math.max(0, ageMs(task) / 1000));
  if (t.phase === "Denied") m.tasksDenied.inc({ action, risk_tier: tier, reason: reasonLabel(atb?.reason) });
  if (t.phase === "Failed") m.tasksFailed.inc({ action, reason: t.reason });
}
