// Finished tasks go away (issue 14): a task in Completed, Denied or Failed is deleted once
// spec.ttlSecondsAfterFinished (or ATB_TTL_SECONDS_AFTER_FINISHED when the task sets none) has
// passed since status.finishedAt, the time the status writer recorded its terminal transition;
// 0 keeps it (unlike a Job's ttlSecondsAfterFinished, where 0 deletes at once). The token and
// the payload go with it. The periodic sweep finds the expired tasks in the listing it makes
// anyway (no list of its own) and hands them here. Each deletion is announced by an Event
// (reason Expired, through the status writer: Events outlive the task), then made with the
// uid and resourceVersion the sweep saw as preconditions, so a task recreated under the same
// name, or changed since the listing, is never deleted by mistake. A failed deletion (403, 409,
// network) is logged and counted and tried again by the next sweep; it never fails the sweep.
import type { AgentTask } from "../../../crds/agenttask";
import { messageOf } from "../errors";
import { errorClass, KubeError, resourcePath, type KubeApi } from "../kube";
import type { Logger } from "../logger";
import type { OperatorMetrics } from "../metrics";
import { isTerminal } from "../status/conditions";
import type { StatusWriter } from "../status/writer";

/** Deletions per sweep at most (oldest expiry first); the rest wait for the next sweep. */
export const MAX_TTL_DELETES_PER_SWEEP = 100;

/** A finished task whose TTL has passed, as the sweep saw it. */
export interface ExpiredTask {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  phase: string;
  ttlSeconds: number;
  finishedAt: Date;
  expiresAt: Date;
  /** The task's identity as listed (the Event's involved object); not the whole object. */
  task: AgentTask;
}

const byExpiry = (a: ExpiredTask, b: ExpiredTask) => a.expiresAt.getTime() - b.expiresAt.getTime();

/**
 * What one sweep collects of the expired tasks: the MAX_TTL_DELETES_PER_SWEEP it deletes (the
 * oldest expiries) and how many it found. A listing of 100,000 expired tasks keeps at most twice
 * the batch in memory, not every task it pages through.
 */
export class ExpiredBatch {
  private items: ExpiredTask[] = [];
  found = 0;

  add(t: ExpiredTask): void {
    this.found++;
    this.items.push(t);
    if (this.items.length >= 2 * MAX_TTL_DELETES_PER_SWEEP) this.trim();
  }

  /** The oldest expiries, at most MAX_TTL_DELETES_PER_SWEEP. */
  take(): ExpiredTask[] {
    this.trim();
    return this.items;
  }

  private trim(): void {
    this.items.sort(byExpiry);
    if (this.items.length > MAX_TTL_DELETES_PER_SWEEP) this.items.length = MAX_TTL_DELETES_PER_SWEEP;
  }
}

/**
 * When a task finished: status.finishedAt, which the status writer sets on the terminal
 * transition; for a terminal status written without it, its conditions' latest transition.
 */
export function finishedAt(task: AgentTask): Date | undefined {
  const at = Date.parse(String(task.status?.finishedAt ?? ""));
  if (Number.isFinite(at)) return new Date(at);
  const times = (task.status?.conditions ?? [])
    .map(c => Date.parse(String(c.lastTransitionTime)))
    .filter(Number.isFinite);
  return times.length ? new Date(Math.max(...times)) : undefined;
}

/** The task's TTL in seconds: its own spec.ttlSecondsAfterFinished, else the configured default. */
export function ttlSeconds(task: AgentTask, defaultTtlSeconds: number): number {
  const own = task.spec?.ttlSecondsAfterFinished;
  return typeof own === "number" && Number.isInteger(own) && own >= 0 ? own : defaultTtlSeconds;
}

/**
 * The task, when it is due for deletion at `now`: terminal, a TTL other than 0, a known finish
 * time, and finish + TTL not after now. Undefined otherwise (open tasks are never due).
 */
export function expired(task: AgentTask, defaultTtlSeconds: number, now: Date): ExpiredTask | undefined {
  if (!isTerminal(task.status?.phase)) return undefined;
  const ttl = ttlSeconds(task, defaultTtlSeconds);
  if (ttl === 0) return undefined;
  const finished = finishedAt(task);
  const m = task.metadata;
  if (!finished || !m?.name || !m.namespace || !m.uid || !m.resourceVersion) return undefined;
  const expiresAt = new Date(finished.getTime() + ttl * 1000);
  if (expiresAt.getTime() > now.getTime()) return undefined;
  return {
    namespace: m.namespace,
    name: m.name,
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    phase: task.status!.phase!,
    ttlSeconds: ttl,
    finishedAt: finished,
    expiresAt,
    task: {
      apiVersion: task.apiVersion,
      kind: task.kind,
      metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion },
    } as AgentTask,
  };
}

/** A bounded label for a failed deletion. */
export const deleteErrorCode = errorClass;

export interface TtlReaperDeps {
  kube: KubeApi;
  status: StatusWriter;
  log: Logger;
  metrics: OperatorMetrics;
}

/** Deletes the expired tasks a sweep found. */
export class TtlReaper {
  /** Uids whose Expired Event was recorded by this process (one Event per task, however often a deletion is retried). */
  private readonly announced = new Set<string>();

  constructor(private readonly deps: TtlReaperDeps) {}

  /** Deletes up to MAX_TTL_DELETES_PER_SWEEP of them, oldest expiry first; never throws. */
  async reap(tasks: readonly ExpiredTask[], found = tasks.length): Promise<void> {
    const batch = [...tasks].sort(byExpiry).slice(0, MAX_TTL_DELETES_PER_SWEEP);
    if (found > batch.length)
      this.deps.log.info("more finished tasks are past their TTL than one sweep deletes; the next sweep goes on", {
        expired: found,
        deleting: batch.length,
      });
    for (const t of batch) await this.reapOne(t);
  }

  private async reapOne(t: ExpiredTask): Promise<void> {
    const { kube, status, log, metrics } = this.deps;
    const key = `${t.namespace}/${t.name}`;
    const fields = {
      task: key,
      uid: t.uid,
      phase: t.phase,
      ttlSeconds: t.ttlSeconds,
      finishedAt: t.finishedAt.toISOString(),
    };
    try {
      if (!this.announced.has(t.uid)) {
        if (this.announced.size >= 10_000) this.announced.clear();
        this.announced.add(t.uid);
        // The reason is listed in docs/reasons.md (tests/unit/reasons-doc.test.ts finds it here).
        await status.event(t.task, {
          reason: "Expired",
          message:
            `deleting the task: it finished (${t.phase}) at ${t.finishedAt.toISOString()} and its ` +
            `ttlSecondsAfterFinished of ${t.ttlSeconds} s has passed`,
          action: "Delete",
        });
      }
      await kube.request({
        method: "DELETE",
        path: resourcePath("AgentTask", t.namespace, t.name),
        body: {
          apiVersion: "v1",
          kind: "DeleteOptions",
          preconditions: { uid: t.uid, resourceVersion: t.resourceVersion },
        },
      });
      this.announced.delete(t.uid);
      metrics.tasksDeleted.inc({ reason: "ttl" });
      log.info("deleted a finished task after its TTL", fields);
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) {
        this.announced.delete(t.uid);
        log.debug("an expired task was already gone", fields);
        return;
      }
      const code = deleteErrorCode(err);
      metrics.taskDeleteErrors.inc({ reason: "ttl", code });
      log.warn("could not delete a finished task after its TTL; the next sweep tries again", {
        ...fields,
        code,
        error: messageOf(err),
      });
    }
  }
}
