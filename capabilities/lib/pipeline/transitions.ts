// Every transition the pipeline can make, as pure functions of the stored task: the phase, the
// typed reason, the message and the conditions it changes. The status writer turns a Transition
// into the next status (lib/status/conditions.ts); nothing here does I/O.
import { ANNOTATION_REQUESTER, type AgentTask } from "../../../crds/agenttask";
import type { Decision } from "../broker/client";
import type { AtbError } from "../errors";
import { conditionOf, type Transition } from "../status/conditions";

/**
 * The reasons the pipeline writes into conditions and Events (CamelCase, stable). Failures that
 * come from elsewhere keep their own reason: an AtbError's catalog reason (BrokerUnavailable, ...)
 * or an action's verify result (ProgressDeadlineExceeded, DeploymentPaused, ...).
 */
export const Reason = {
  Queued: "Queued",
  Authorizing: "Authorizing",
  Reauthorizing: "Reauthorizing",
  Authorized: "Authorized",
  PolicyDenied: "PolicyDenied",
  /** Denied with approval codes only: the task waits for AgentTaskApprovals (approvals.ts). */
  ApprovalRequired: "ApprovalRequired",
  /** The PoA expired or the task's deadline passed while waiting for approvals. */
  ApprovalTimeout: "ApprovalTimeout",
  RequesterNotRecorded: "RequesterNotRecorded",
  Applied: "Applied",
  Completed: "Completed",
  NoChange: "NoChange",
  /** A Plan task was planned (status.plan); nothing was applied. */
  Planned: "Planned",
  /** A Plan task's creator may not get the target (SubjectAccessReview); nothing was read. */
  PlanNotAllowed: "PlanNotAllowed",
  RetryScheduled: "RetryScheduled",
  InvalidTask: "InvalidTask",
  OutOfScope: "OutOfScope",
  InvalidToken: "InvalidToken",
  PoAExpired: "PoAExpired",
  TaskDeadlineExceeded: "TaskDeadlineExceeded",
  TargetNotFound: "TargetNotFound",
  TargetChanged: "TargetChanged",
  DryRunRejected: "DryRunRejected",
  ExecutionFailed: "ExecutionFailed",
  VerificationFailed: "VerificationFailed",
  RolloutTimeout: "RolloutTimeout",
  InternalError: "InternalError",
} as const;

/** Task-level retry: the backoff doubles from the base up to the cap; jitter keeps the upper half. */
export interface RetryPolicy {
  maxTaskAttempts: number;
  taskBackoffBaseMs: number;
  taskBackoffMaxMs: number;
}

/** The agent's free-text reason (spec.payload.reason), when it gave one, is shown here once. */
export function queued(agentReason?: string): Transition {
  const why = agentReason ? ` (reason: ${agentReason})` : "";
  return { phase: "Pending", reason: Reason.Queued, message: `Task received${why}; waiting for a worker` };
}

export function authorizing(): Transition {
  return {
    phase: "Processing",
    reason: Reason.Authorizing,
    message: "Authorizing with ATB",
    conditions: [
      { type: "Authorized", status: "Unknown", reason: Reason.Authorizing, message: "Asking the ATB broker" },
    ],
  };
}

/** Back to Processing: the change was not applied and the plan the broker judged is gone. */
export function reauthorizing(why: string): Transition {
  return {
    phase: "Processing",
    reason: Reason.Reauthorizing,
    message: `${why}; authorizing again`,
    conditions: [
      {
        type: "Authorized",
        status: "Unknown",
        reason: Reason.Reauthorizing,
        message: "authorization is asked again after a restart",
      },
    ],
  };
}

/**
 * Denied by the operator without asking the broker: the task records no requester (the
 * annotation the mutating webhook writes at creation is missing or not the webhook's form), so
 * nobody can tell whether its creator may act as spec.agentId ("token bound to its holder").
 */
export function requesterNotRecorded(): Transition {
  const message = `denied without asking ATB: requester_mismatch: no requester was recorded at admission (annotation ${ANNOTATION_REQUESTER} missing or malformed: the task was created before the operator's webhook or without it); create the task again`;
  return {
    phase: "Denied",
    reason: Reason.RequesterNotRecorded,
    message,
    atbResult: { allowed: false, reason: "requester_mismatch" },
    conditions: [
      { type: "Authorized", status: "False", reason: Reason.RequesterNotRecorded, message },
      { type: "Succeeded", status: "False", reason: Reason.RequesterNotRecorded, message },
    ],
  };
}

/** The transition a decision leads to: Denied, or Executing with the Authorized condition. */
export function decisionTransition(decision: Decision): Transition {
  const atbResult = {
    allowed: decision.allowed,
    riskTier: decision.riskTier,
    reason: decision.reason,
    requestId: decision.requestId,
    evaluateMs: decision.evaluateMs,
    ...(decision.decisionId ? { decisionId: decision.decisionId } : {}),
    ...(decision.policyRevision ? { policyRevision: decision.policyRevision } : {}),
  };
  if (!decision.allowed) {
    const message = `ATB denied the action: ${decision.reason}`;
    return {
      phase: "Denied",
      reason: Reason.PolicyDenied,
      message,
      atbResult,
      conditions: [
        { type: "Authorized", status: "False", reason: Reason.PolicyDenied, message },
        { type: "Succeeded", status: "False", reason: Reason.PolicyDenied, message },
      ],
    };
  }
  return {
    phase: "Executing",
    reason: Reason.Authorized,
    message: `ATB allowed the action (${decision.riskTier}); applying it`,
    atbResult,
    attempts: 0,
    conditions: [
      { type: "Authorized", status: "True", reason: Reason.Authorized, message: decision.reason || "allowed" },
    ],
  };
}

/** The change is written; `executedAs` is the identity that wrote it (the namespace's executor). */
export function applied(message: string, executedAs?: string): Transition {
  return {
    phase: "Executing",
    reason: Reason.Applied,
    message,
    ...(executedAs ? { executedAs } : {}),
    conditions: [{ type: "Executed", status: "True", reason: Reason.Applied, message }],
  };
}

export function completed(message: string): Transition {
  return {
    phase: "Completed",
    reason: Reason.Completed,
    message,
    conditions: [{ type: "Succeeded", status: "True", reason: Reason.Completed, message }],
  };
}

/** Authorized, and nothing to write: the target already was in the wanted state. */
export function unchanged(message: string, executedAs?: string): Transition {
  return {
    phase: "Completed",
    reason: Reason.NoChange,
    message,
    ...(executedAs ? { executedAs } : {}),
    conditions: [
      { type: "Executed", status: "True", reason: Reason.NoChange, message: "nothing to write" },
      { type: "Succeeded", status: "True", reason: Reason.NoChange, message },
    ],
  };
}

/** Terminal failure: the conditions that were still open are closed with the reason. */
export function failed(task: AgentTask, reason: string, message: string): Transition {
  const authorized = conditionOf(task, "Authorized")?.status === "True";
  const executed = conditionOf(task, "Executed")?.status === "True";
  const conditions: Transition["conditions"] = [{ type: "Succeeded", status: "False", reason, message }];
  if (!authorized) conditions.push({ type: "Authorized", status: "False", reason, message });
  else if (!executed) conditions.push({ type: "Executed", status: "False", reason, message });
  return { phase: "Failed", reason, message, conditions };
}

/**
 * A retryable error: the same phase, one more attempt, the backoff recorded in status; Failed
 * with the error's reason once the attempts are spent. `random` in [0, 1) picks the jitter.
 */
export function retryOrFail(
  task: AgentTask,
  err: AtbError,
  policy: RetryPolicy,
  at: { now: Date; random: number },
): Transition {
  const { now, random } = at;
  const attempts = (task.status?.attempts ?? 0) + 1;
  if (attempts >= policy.maxTaskAttempts) {
    return failed(task, err.reason, `${err.message} (gave up after ${attempts} attempts)`);
  }
  const base = Math.min(policy.taskBackoffMaxMs, policy.taskBackoffBaseMs * 2 ** (attempts - 1));
  const delay = Math.round(base / 2 + random * (base / 2));
  return {
    phase: task.status?.phase ?? "Processing",
    reason: Reason.RetryScheduled,
    message: `${err.message}; attempt ${attempts + 1} of ${policy.maxTaskAttempts} in ${(delay / 1000).toFixed(1)}s`,
    attempts,
    nextAttemptAt: new Date(now.getTime() + delay),
    lastError: err.code,
  };
}
