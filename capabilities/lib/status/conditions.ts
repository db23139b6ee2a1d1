// Pure status math: the complete next status of a task for each transition, and the conditions
// it carries (Kubernetes API conventions: lastTransitionTime changes only when a condition's
// status flips). The status writer sends what these functions return; nothing here does I/O.
import type {
  AgentTask,
  AgentTaskStatus,
  AtbResult,
  Condition,
  ConditionType,
  Phase,
  TaskPlan,
} from "../../../crds/agenttask";
import { TERMINAL_PHASES } from "../../../crds/agenttask";

/**
 * The CRD's bound on a condition message is 32768. A message can quote what an agent sent (an API
 * server error quotes an invalid value whole), so each copy is kept to 8000 characters: enough for
 * any real error, and a task's status stays small whatever the task held. status.message is kept
 * short for `kubectl get -o wide`.
 */
const MAX_CONDITION_MESSAGE = 8_000;
const MAX_STATUS_MESSAGE = 4_000;

export type ConditionStatus = Condition["status"];

export interface ConditionChange {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** Sets one condition; keeps lastTransitionTime when the status does not change. */
export function setCondition(
  list: readonly Condition[] | undefined,
  c: ConditionChange,
  generation: number | undefined,
  now: Date,
): Condition[] {
  const old = list?.find(x => x.type === c.type);
  const next: Condition = {
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message.slice(0, MAX_CONDITION_MESSAGE),
    observedGeneration: generation,
    lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now.toISOString(),
  };
  const rest = (list ?? []).filter(x => x.type !== c.type);
  return [...rest, next].sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type));
}

const ORDER: ConditionType[] = ["Authorized", "Executed", "Succeeded"];

export function conditionOf(task: AgentTask, type: ConditionType): Condition | undefined {
  return task.status?.conditions?.find(c => c.type === type);
}

export function isTerminal(phase: Phase | undefined): boolean {
  return phase !== undefined && TERMINAL_PHASES.includes(phase);
}

/** Event type and reason that go with a transition. */
export interface Transition {
  phase: Phase;
  /** What a task waiting for approval needs and has (kept once written; see pipeline/approvals.ts). */
  approvals?: AgentTaskStatus["approvals"];
  /** CamelCase reason for the event and the conditions it changes. */
  reason: string;
  message: string;
  conditions?: ConditionChange[];
  atbResult?: AtbResult;
  /** The Kubernetes identity that wrote (or would have written) the change: the namespace's executor. */
  executedAs?: string;
  /** A Plan task's plan (phase Planned); kept once written. */
  plan?: TaskPlan;
  /** Retry bookkeeping: set both for a scheduled retry; omitted fields are cleared. */
  attempts?: number;
  nextAttemptAt?: Date;
  lastError?: string;
}

/**
 * The full next status for a transition. Fields that belong to earlier phases are kept
 * (startedAt, atbResult, attempts); retry fields are cleared unless the transition sets them.
 */
export function nextStatus(task: AgentTask, t: Transition, now: Date): AgentTaskStatus {
  const prev = task.status ?? {};
  const generation = task.metadata?.generation;
  let conditions = prev.conditions ?? [];
  for (const c of t.conditions ?? []) conditions = setCondition(conditions, c, generation, now);
  const status: AgentTaskStatus = {
    phase: t.phase,
    message: t.message.slice(0, MAX_STATUS_MESSAGE),
    observedGeneration: generation,
    attempts: t.attempts ?? prev.attempts ?? 0,
    conditions,
  };
  const startedAt = prev.startedAt ?? (t.phase !== "Pending" ? now.toISOString() : undefined);
  if (startedAt) status.startedAt = startedAt;
  const approvals = t.approvals ?? prev.approvals;
  if (approvals) status.approvals = approvals;
  if (isTerminal(t.phase)) status.finishedAt = now.toISOString();
  const atb = t.atbResult ?? prev.atbResult;
  if (atb) status.atbResult = atb;
  const executedAs = t.executedAs ?? prev.executedAs;
  if (executedAs) status.executedAs = executedAs;
  const plan = t.plan ?? prev.plan;
  if (plan) status.plan = plan;
  if (t.nextAttemptAt) status.nextAttemptAt = t.nextAttemptAt.toISOString();
  if (t.lastError) status.lastError = t.lastError;
  return status;
}

/**
 * A JSON merge patch body that turns `prev` into `next`: every key of next, and null for keys
 * that prev has and next does not (merge patch replaces lists such as conditions whole).
 */
export function statusPatch(prev: AgentTaskStatus | undefined, next: AgentTaskStatus): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...next };
  for (const key of Object.keys(prev ?? {})) if (!(key in next)) patch[key] = null;
  return patch;
}

export function warning(phase: Phase): boolean {
  return phase === "Denied" || phase === "Failed";
}
