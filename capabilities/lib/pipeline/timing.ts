// The pipeline's fixed timings and bounds, named. Task-level retry backoff, deadlines and the
// rollout timeout are configuration (lib/config.ts); these are the operator's own pacing.

/** Our own status write met a stale view (409): read the task again at once. */
export const REREAD_NOW_MS = 0;
/** The API server or the broker was briefly unavailable outside a recorded retry: look again soon. */
export const TRANSIENT_RECHECK_MS = 2_000;
/** Our own status write was refused for good (RBAC, validation): look again later; the sweep will too. */
export const REFUSED_RECHECK_MS = 10_000;
/** Longest sleep of a task waiting for its target before it looks again by itself (a release wakes it). */
export const LOCK_RECHECK_MS = 60_000;
/** A waiter wakes this long after the task deadline, so it fails with TaskDeadlineExceeded then. */
export const DEADLINE_SLACK_MS = 1_000;
/** Most steps one reconcile makes before it gives the worker back (a whole task is six). */
export const MAX_STEPS_PER_RECONCILE = 12;
/** Writes tried in one execute step while the target keeps changing between read and write (409). */
export const MAX_WRITE_ATTEMPTS = 4;

/**
 * A change that has not taken effect this long after its write gets Applied stored (a rollout
 * under way); one that takes effect sooner is stored once, as Completed (ADR 0009). 5 s: under a
 * burst, rollouts of 2 to 5 s are common, and at 2 s the Applied write was nearly a third of the
 * status writes of a scale task (docs/benchmarks.md).
 */
export const APPLIED_SHOWN_AFTER_MS = 5_000;

/** How often a rollout is polled: every 500 ms in the first 10 s, every 2 s up to a minute, then 5 s. */
export function rolloutPollMs(waitedMs: number): number {
  if (waitedMs < 10_000) return 500;
  return waitedMs < 60_000 ? 2_000 : 5_000;
}
