// The one place that turns an error into what happens next: a retry recorded in status, a
// requeue with nothing written, a stale view to re-plan on, or Failed with a reason. Steps hand
// their errors here with the stage they met them in; nothing else in the pipeline inspects an
// error's class or status.
import { AtbError, messageOf } from "../errors";
import { KubeError, isStaleWrite } from "../kube";
import { Reason } from "./transitions";
import { REFUSED_RECHECK_MS, REREAD_NOW_MS, TRANSIENT_RECHECK_MS } from "./timing";

/**
 * Where an error was met. authorize: reading the target, planning, the dry run. decide: the
 * broker. execute: reading the target or re-planning before the write. write: the write itself.
 * verify: checking the applied change. reconcile: anything a step did not turn into a result,
 * our own status write included. read-task: the GET of the task at the start of a reconcile.
 */
export type Stage = "read-task" | "authorize" | "decide" | "execute" | "write" | "verify" | "reconcile";

export type Verdict =
  /** One more attempt, with backoff recorded in status (Failed once the attempts are spent). */
  | { kind: "retry"; error: AtbError }
  /** Terminal failure. */
  | { kind: "fail"; reason: string; message: string }
  /** Look again after a while; nothing is written. */
  | { kind: "requeue"; afterMs: number; log?: "warn" | "error" }
  /** The target changed between read and write: re-plan, or fail if the action may not. */
  | { kind: "stale" }
  /** Not ours to judge: let the caller's caller see it (the work queue logs it). */
  | { kind: "throw" };

/** When a broker error may be retried: the PoA and the task deadline must still leave time. */
export interface DecideWindow {
  deadline: Date;
  now: Date;
}

/** A broker failure as the catalog's error (anything unexpected counts as the broker being unavailable). */
export function asBrokerError(err: unknown): AtbError {
  return err instanceof AtbError ? err : new AtbError("BROKER_UNAVAILABLE", messageOf(err));
}

const REJECTED_REASON: Partial<Record<Stage, string>> = {
  authorize: Reason.DryRunRejected,
  execute: Reason.ExecutionFailed,
  write: Reason.ExecutionFailed,
  verify: Reason.VerificationFailed,
};

export function judge(err: unknown, stage: Stage, window?: DecideWindow): Verdict {
  switch (stage) {
    case "read-task":
      if (err instanceof AtbError && err.retryable) return { kind: "requeue", afterMs: TRANSIENT_RECHECK_MS };
      // The operator's own read refused: its RBAC (fixed by whoever installs it), or an API server
      // whose RBAC caches are not filled yet right after a restart. Look again rather than wait
      // for the next sweep.
      if (err instanceof KubeError && err.status === 403)
        return { kind: "requeue", afterMs: TRANSIENT_RECHECK_MS, log: "error" };
      return { kind: "throw" };
    case "reconcile":
      return escaped(err);
    case "decide":
      return brokerVerdict(asBrokerError(err), window!);
    case "write":
      if (isStaleWrite(err)) return { kind: "stale" };
      return settle(err, stage);
    case "verify":
      // The change is applied: a blip while checking it is no reason to spend an attempt.
      if (err instanceof AtbError && err.retryable) return { kind: "requeue", afterMs: TRANSIENT_RECHECK_MS };
      return settle(err, stage);
    default:
      return settle(err, stage);
  }
}

/** Errors met while planning, writing or verifying: transient ones retry, the rest fail the task. */
function settle(err: unknown, stage: Stage): Verdict {
  if (err instanceof AtbError && err.retryable) return { kind: "retry", error: err };
  if (err instanceof KubeError) {
    const prefix =
      stage === "authorize" ? "the API server would reject this change" : "the API server rejected the change";
    const reason = err.status === 404 ? Reason.TargetNotFound : REJECTED_REASON[stage]!;
    return { kind: "fail", reason, message: `${prefix}: ${err.message}` };
  }
  if (err instanceof AtbError) return { kind: "fail", reason: err.reason, message: err.message };
  return { kind: "fail", reason: Reason.InternalError, message: `operator error: ${messageOf(err)}` };
}

/**
 * The broker client gives up on one decision after its own attempts (BROKER_DEADLINE, with the
 * last error as cause). The task tries again later while that cause was transient and the PoA
 * and the task deadline still leave time; a refusal (4xx, malformed answer) is final.
 */
function brokerVerdict(e: AtbError, w: DecideWindow): Verdict {
  const cause = (e as { cause?: unknown }).cause;
  const transient = e.retryable || (e.kind === "BROKER_DEADLINE" && cause instanceof AtbError && cause.retryable);
  const timeLeft = w.deadline.getTime() > w.now.getTime();
  return transient && timeLeft ? { kind: "retry", error: e } : { kind: "fail", reason: e.reason, message: e.message };
}

/** Errors no step turned into a result, our own status write's included. */
function escaped(err: unknown): Verdict {
  if (err instanceof KubeError && err.status === 409) return { kind: "requeue", afterMs: REREAD_NOW_MS };
  if (err instanceof AtbError && err.retryable) return { kind: "requeue", afterMs: TRANSIENT_RECHECK_MS, log: "warn" };
  if (err instanceof KubeError) return { kind: "requeue", afterMs: REFUSED_RECHECK_MS, log: "error" };
  return { kind: "fail", reason: Reason.InternalError, message: `operator error: ${messageOf(err)}` };
}
