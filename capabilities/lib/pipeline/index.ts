// The pipeline every action runs through: a level-based state machine over the task's stored
// status. Each run re-reads the task, decides from its phase and conditions (never from the
// event that woke it), makes one transition through the status writer, and continues with the
// stored result until the task is terminal or must wait (retry backoff, rollout polling).
//
//   (none) → Pending → Processing ─ dry run, broker decide ─┬→ Denied
//                                                          └→ Executing ─ write + marker ─ verify ─┬→ Completed
//   any error: retryable → same phase with attempts/nextAttemptAt; terminal → Failed        └→ Failed
import type { AgentTask } from "../../../crds/agenttask";
import type { ActionModule, ActionRegistry, Plan, TaskContext } from "../action";
import type { BrokerClient } from "../broker/client";
import type { OperatorConfig } from "../config";
import { AtbError, messageOf } from "../errors";
import { KubeError, resourcePath, type KubeApi } from "../kube";
import type { Logger } from "../logger";
import type { OperatorMetrics } from "../metrics";
import { conditionOf, isTerminal, type Transition } from "../status/conditions";
import type { StatusWriter } from "../status/writer";
import { authorize, execute, verify } from "./steps";
import { TargetLocks } from "../runtime/target-locks";

export interface PipelineDeps {
  kube: KubeApi;
  broker: BrokerClient;
  actions: ActionRegistry;
  config: Readonly<OperatorConfig>;
  log: Logger;
  metrics: OperatorMetrics;
  status: StatusWriter;
  now?: () => Date;
  /** Re-queues a task at once (a waiter whose target was released). */
  wake?: (taskKey: string) => void;
}

/** How long a task waiting for its target sleeps at most before it looks again by itself. */
const LOCK_RECHECK_MS = 60_000;

/** What a step asks for: continue with the stored task, wait, or stop. */
export type Step = { next: AgentTask } | { requeueAfterMs: number } | { done: true };

export const taskKey = (t: AgentTask): string => `${t.metadata?.namespace}/${t.metadata?.name}`;
const targetKey = (t: AgentTask): string => {
  const x = t.spec!.target;
  return `${x.kind}/${x.namespace}/${x.name}`;
};

export class Pipeline {
  /** Plans the broker allowed, by task UID, not yet applied; empty after a restart. */
  readonly authorizedHere = new Map<string, Plan>();
  /** The resourceVersion of our own last status write per task: its echo needs no work. */
  readonly lastWritten = new Map<string, string>();
  readonly now: () => Date;
  readonly locks: TargetLocks;

  constructor(readonly deps: PipelineDeps) {
    this.now = deps.now ?? (() => new Date());
    this.locks = new TargetLocks(deps.wake);
  }

  /** Runs the task as far as it can go now. Returns when to look again, if ever. */
  async reconcile(key: string): Promise<{ requeueAfterMs?: number }> {
    const [namespace, name] = key.split("/");
    let task: AgentTask | undefined;
    try {
      task = await this.deps.kube.get<AgentTask>(resourcePath("AgentTask", namespace, name));
    } catch (err) {
      // The API server is unreachable or busy: look again soon rather than wait for the sweep.
      if (err instanceof AtbError && err.retryable) return { requeueAfterMs: 2_000 };
      throw err;
    }
    if (!task) this.locks.release(key);
    for (let i = 0; task && i < 12; i++) {
      const step = await this.step(task).catch(err => this.onStepError(task!, err));
      if ("done" in step) break;
      if ("requeueAfterMs" in step) return { requeueAfterMs: step.requeueAfterMs };
      task = step.next;
    }
    this.lastWritten.delete(key);
    return {};
  }

  private async step(task: AgentTask): Promise<Step> {
    const phase = task.status?.phase;
    if (isTerminal(phase)) return { done: true };
    if (!this.inScope(task)) return { done: true };
    const module = this.deps.actions[task.spec!.action];
    if (!module)
      return this.fail(task, "InvalidTask", `action ${String(task.spec?.action)} has no module in this operator`);
    const now = this.now();
    const created = Date.parse(task.metadata!.creationTimestamp as unknown as string);
    if (now.getTime() - created > this.deps.config.taskDeadlineMs) {
      return this.fail(
        task,
        "TaskDeadlineExceeded",
        `the task did not finish within ${this.deps.config.taskDeadlineMs / 1000}s of its creation`,
      );
    }
    const due = task.status?.nextAttemptAt ? Date.parse(task.status.nextAttemptAt) - now.getTime() : 0;
    if (due > 0) return { requeueAfterMs: due };
    const ctx = this.context(task);
    this.holdTargetIfStarted(task);
    switch (phase) {
      case undefined:
        return this.to(task, { phase: "Pending", reason: "Queued", message: "Task received; waiting for a worker" });
      case "Pending":
        // Waiting for the target: the holder's release hands it over and wakes this task. The
        // timer only makes sure the deadline is enforced and that a lost wake costs at most a minute.
        if (!this.locks.acquire(targetKey(task), taskKey(task)))
          return {
            requeueAfterMs: Math.min(
              LOCK_RECHECK_MS,
              created + this.deps.config.taskDeadlineMs - now.getTime() + 1_000,
            ),
          };
        return this.to(task, {
          phase: "Processing",
          reason: "Authorizing",
          message: "Authorizing with ATB",
          conditions: [
            { type: "Authorized", status: "Unknown", reason: "Authorizing", message: "Asking the ATB broker" },
          ],
        });
      case "Processing":
        return authorize(this, task, module, ctx);
      case "Executing":
        return conditionOf(task, "Executed")?.status === "True"
          ? verify(this, task, module, ctx)
          : execute(this, task, module, ctx);
    }
    return { done: true };
  }

  /**
   * A task past Pending holds its target. Locks live in memory, so after a restart they are
   * rebuilt from the tasks: by the first sweep, then by each task as it runs (never stealing).
   */
  holdTargetIfStarted(task: AgentTask): void {
    const phase = task.status?.phase;
    if ((phase === "Processing" || phase === "Executing") && task.spec?.target)
      this.locks.claim(targetKey(task), taskKey(task));
  }

  inScope(task: AgentTask): boolean {
    const ns = this.deps.config.watchNamespaces;
    return ns.length === 0 || ns.includes(task.metadata?.namespace ?? "");
  }

  context(task: AgentTask): TaskContext {
    const m = task.metadata!;
    return {
      task,
      spec: task.spec!,
      uid: m.uid!,
      kube: this.deps.kube,
      config: this.deps.config,
      log: this.deps.log.child({ task: `${m.namespace}/${m.name}`, uid: m.uid, action: task.spec?.action }),
    };
  }

  /** One transition through the status writer; logs it and moves the metrics. */
  async to(task: AgentTask, t: Transition): Promise<Step> {
    const updated = await this.deps.status.transition(task, t);
    const key = taskKey(updated);
    if (updated.metadata?.resourceVersion) this.lastWritten.set(key, updated.metadata.resourceVersion);
    this.record(updated, t);
    if (!isTerminal(t.phase)) return { next: updated };
    this.locks.release(key);
    return { done: true };
  }

  /** Terminal failure: the conditions that were still open are closed with the reason. */
  fail(task: AgentTask, reason: string, message: string): Promise<Step> {
    const authorized = conditionOf(task, "Authorized")?.status === "True";
    const executed = conditionOf(task, "Executed")?.status === "True";
    const conditions: Transition["conditions"] = [{ type: "Succeeded", status: "False", reason, message }];
    if (!authorized) conditions.push({ type: "Authorized", status: "False", reason, message });
    else if (!executed) conditions.push({ type: "Executed", status: "False", reason, message });
    this.authorizedHere.delete(task.metadata?.uid ?? "");
    return this.to(task, { phase: "Failed", reason, message, conditions });
  }

  /** A retryable error: same phase, one more attempt, backoff recorded in status; Failed when spent. */
  retry(task: AgentTask, err: AtbError): Promise<Step> {
    const cfg = this.deps.config;
    const attempts = (task.status?.attempts ?? 0) + 1;
    if (attempts >= cfg.maxTaskAttempts) {
      return this.fail(task, err.reason, `${err.message} (gave up after ${attempts} attempts)`);
    }
    const base = Math.min(cfg.taskBackoffMaxMs, cfg.taskBackoffBaseMs * 2 ** (attempts - 1));
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.deps.metrics.retries.inc({ reason: err.reason });
    const phase = task.status?.phase ?? "Processing";
    return this.to(task, {
      phase,
      reason: "RetryScheduled",
      message: `${err.message}; attempt ${attempts + 1} of ${cfg.maxTaskAttempts} in ${(delay / 1000).toFixed(1)}s`,
      attempts,
      nextAttemptAt: new Date(this.now().getTime() + delay),
      lastError: err.code,
    });
  }

  /** Errors a step did not turn into a transition. */
  private async onStepError(task: AgentTask, err: unknown): Promise<Step> {
    if (err instanceof KubeError && err.status === 409) return { requeueAfterMs: 0 }; // stale view: re-read
    if (err instanceof AtbError && err.retryable) {
      this.deps.log.warn("transient error, will look again", {
        task: taskKey(task),
        code: err.code,
        error: err.message,
      });
      return { requeueAfterMs: 2_000 };
    }
    this.deps.log.error("step failed", { task: taskKey(task), error: messageOf(err) });
    if (err instanceof KubeError) return { requeueAfterMs: 10_000 }; // e.g. our own status write refused
    return this.fail(task, "InternalError", `operator error: ${messageOf(err)}`).catch(() => ({
      requeueAfterMs: 10_000,
    }));
  }

  private record(task: AgentTask, t: Transition): void {
    const m = this.deps.metrics;
    const action = task.spec?.action ?? "unknown";
    const atb = task.status?.atbResult;
    this.deps.log.info("transition", {
      uid: task.metadata?.uid,
      name: task.metadata?.name,
      namespace: task.metadata?.namespace,
      agentId: task.spec?.agentId,
      action,
      target: task.spec ? `${task.spec.target.kind}/${task.spec.target.namespace}/${task.spec.target.name}` : undefined,
      phase: t.phase,
      reason: t.reason,
      detail: t.message,
      requestId: atb?.requestId,
      riskTier: atb?.riskTier,
      attempt: task.status?.attempts ?? 0,
      ageMs: Date.now() - Date.parse(String(task.metadata?.creationTimestamp)),
    });
    if (t.phase === "Executing" && t.reason === "Authorized")
      m.tasksAllowed.inc({ action, risk_tier: atb?.riskTier ?? "UNKNOWN" });
    if (!isTerminal(t.phase)) return;
    m.tasksTotal.inc({ action, phase: t.phase });
    const seconds = (Date.now() - Date.parse(String(task.metadata?.creationTimestamp))) / 1000;
    m.processingSeconds.observe({ action, phase: t.phase }, Math.max(0, seconds));
    if (t.phase === "Denied")
      m.tasksDenied.inc({ action, risk_tier: atb?.riskTier ?? "UNKNOWN", reason: reasonLabel(atb?.reason) });
    if (t.phase === "Failed") m.tasksFailed.inc({ action, reason: t.reason });
  }
}

/** Policy reason codes are short snake_case words; anything else is bucketed to keep labels bounded. */
export function reasonLabel(reason: string | undefined): string {
  return reason && /^[a-z0-9_]{1,64}$/.test(reason) ? reason : "other";
}

export type { ActionModule };
