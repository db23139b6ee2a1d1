// The pipeline every action runs through: a level-based state machine over the task's stored
// status. Each run re-reads the task, decides from its phase and conditions (never from the
// event that woke it), makes one transition through the status writer, and continues with the
// stored result until the task is terminal or must wait (retry backoff, rollout polling).
//
//   (none) → Pending → Processing ─ dry run, broker decide ─┬→ Denied
//                                                          └→ Executing ─ write + marker ─ verify ─┬→ Completed
//   any error: retryable → same phase with attempts/nextAttemptAt; terminal → Failed        └→ Failed
//
// The steps live in their own files (authorize, execute, verify) and get a StepScope; errors go
// to outcome.ts, transitions come from transitions.ts. This file dispatches on the phase, applies
// what a step returns, and keeps the pipeline's memory (judged plans, our own last writes, locks).
import type { AgentTask } from "../../../crds/agenttask";
import type { ActionModule, ActionRegistry, Planned } from "../action";
import { shown } from "../action/payload";
import type { BrokerClient } from "../broker/client";
import type { OperatorConfig } from "../config";
import { AtbError, messageOf } from "../errors";
import type { OperatorKube } from "../kube";
import { resourcePath } from "../kube";
import { redactString, type Logger } from "../logger";
import type { OperatorMetrics } from "../metrics";
import { conditionOf, isTerminal, type Transition } from "../status/conditions";
import type { StatusWriter } from "../status/writer";
import { closeTask } from "../status/close";
import { approvalTimeout } from "./approvals";
import { awaitApproval } from "./await-approval";
import { authorize } from "./authorize";
import { execute } from "./execute";
import { ExecutorCheck, executorApi, executorUser } from "./executor";
import { SubjectAccessReviews, type AccessReview } from "./access-review";
import { judge, type Verdict } from "./outcome";
import { countTransition, logTransition } from "./observe";
import { outOfScope } from "./out-of-scope";
import type { StepResult, StepScope } from "./scope";
import { TargetLocks } from "./target-locks";
import { DEADLINE_SLACK_MS, LOCK_RECHECK_MS, MAX_STEPS_PER_RECONCILE, REFUSED_RECHECK_MS } from "./timing";
import { authorizing, failed, queued, Reason, retryOrFail } from "./transitions";
import { verify } from "./verify";

export { decideRequest } from "./authorize";
export { reasonLabel } from "./observe";
export { decisionTransition, Reason } from "./transitions";

export interface PipelineDeps {
  /** The operator's own identity (tasks, status, Events); targets only through `as(executor)`. */
  kube: OperatorKube;
  broker: BrokerClient;
  actions: ActionRegistry;
  config: Readonly<OperatorConfig>;
  log: Logger;
  metrics: OperatorMetrics;
  status: StatusWriter;
  now?: () => Date;
  /** Jitter source for retry backoff, in [0, 1). */
  random?: () => number;
  /** Waits (the executor's second ask after a 403); tests move a fake clock instead. */
  sleep?: (ms: number) => Promise<void>;
  /** Re-queues a task at once (a waiter whose target was released). */
  wake?: (taskKey: string) => void;
}

/** What one pass over a task asks for: continue with the stored task, wait, or stop. */
type Next = { next: AgentTask } | { requeueAfterMs: number } | { done: true };

export const taskKey = (t: AgentTask): string => `${t.metadata?.namespace}/${t.metadata?.name}`;
const targetKey = (t: AgentTask): string => {
  const x = t.spec!.target;
  return `${x.kind}/${x.namespace}/${x.name}`;
};
const createdAt = (t: AgentTask): number => Date.parse(String(t.metadata!.creationTimestamp));
/** The agent's reason as shown in status and Events: quoted, bounded, with token-shaped text redacted. */
const agentReason = (t: AgentTask): string | undefined => {
  const r = t.spec?.payload?.reason;
  return typeof r === "string" && r ? shown(redactString(r), 200) : undefined;
};

export class Pipeline {
  /** Plans the broker allowed, by task UID, not yet applied; empty after a restart. */
  readonly authorizedHere = new Map<string, Planned>();
  /** The resourceVersion of our own last status write per task: its echo needs no work. */
  readonly lastWritten = new Map<string, string>();
  readonly locks: TargetLocks;
  private readonly executors: ExecutorCheck;
  private readonly access: AccessReview;
  private readonly now: () => Date;
  private readonly random: () => number;

  constructor(readonly deps: PipelineDeps) {
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
    this.locks = new TargetLocks(deps.wake);
    this.executors = new ExecutorCheck(deps.kube, deps.config, () => this.now().getTime(), deps.sleep);
    this.access = new SubjectAccessReviews(deps.kube, deps.sleep);
  }

  /** Runs the task as far as it can go now. Returns when to look again, if ever. */
  async reconcile(key: string): Promise<{ requeueAfterMs?: number }> {
    const [namespace, name] = key.split("/");
    let task: AgentTask | undefined;
    try {
      task = await this.deps.kube.get<AgentTask>(resourcePath("AgentTask", namespace, name));
    } catch (err) {
      const v = judge(err, "read-task");
      if (v.kind === "requeue") {
        if (v.log)
          this.deps.log[v.log]("could not read the task; will look again", { task: key, error: messageOf(err) });
        return { requeueAfterMs: v.afterMs };
      }
      throw err;
    }
    if (!task) this.locks.release(key);
    for (let i = 0; task && i < MAX_STEPS_PER_RECONCILE; i++) {
      const current: AgentTask = task;
      const next = await this.step(current).catch(err => this.onError(current, err));
      if ("done" in next) break;
      if ("requeueAfterMs" in next) return { requeueAfterMs: next.requeueAfterMs };
      task = next.next;
    }
    this.lastWritten.delete(key);
    return {};
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

  private async step(task: AgentTask): Promise<Next> {
    if (isTerminal(task.status?.phase)) return { done: true };
    const outside = outOfScope(task, this.deps.config, this.now());
    if (outside) return outside === "leave" ? { done: true } : this.write(task, outside);
    const module = this.moduleOf(task);
    if (!module) {
      const message = `action ${String(task.spec?.action)} has no module in this operator`;
      return this.write(task, failed(task, Reason.InvalidTask, message));
    }
    const now = this.now();
    const stop = this.gate(task, now);
    if (stop) return stop;
    this.holdTargetIfStarted(task);
    return this.dispatch(task, module, now);
  }

  /** The step for the task's phase. */
  private async dispatch(task: AgentTask, module: ActionModule, now: Date): Promise<Next> {
    switch (task.status?.phase) {
      case undefined:
        return this.write(task, queued(agentReason(task)));
      case "Pending":
        return this.leavePending(task, now);
      case "Processing":
        return this.apply(task, await authorize(this.scope(task, module, now)));
      case "AwaitingApproval":
        // A waiting task does not hold its target (other tasks on it go on); it takes the target
        // again, in turn, only to be decided once more when a new approval arrives.
        return this.apply(
          task,
          await awaitApproval(this.scope(task, module, now), this.deps.kube, () =>
            this.locks.acquire(targetKey(task), taskKey(task)),
          ),
        );
      case "Executing": {
        const s = this.scope(task, module, now);
        const applied = conditionOf(task, "Executed")?.status === "True";
        return this.apply(task, await (applied ? verify(s) : execute(s)));
      }
    }
    return { done: true };
  }

  /** The task's action module; own keys only, so "constructor" or "__proto__" find nothing. */
  private moduleOf(task: AgentTask): ActionModule | undefined {
    const action = String(task.spec?.action);
    return Object.hasOwn(this.deps.actions, action) ? this.deps.actions[action] : undefined;
  }

  /** Why a task must not take a step now: too old, or backing off after a failed attempt. */
  private gate(task: AgentTask, now: Date): Promise<Next> | Next | undefined {
    if (now.getTime() > this.deadline(task)) {
      if (task.status?.phase === "AwaitingApproval") return this.write(task, approvalTimeout("the task's deadline"));
      const message = `the task did not finish within ${this.deps.config.taskDeadlineMs / 1000}s of its creation`;
      return this.write(task, failed(task, Reason.TaskDeadlineExceeded, message));
    }
    const due = task.status?.nextAttemptAt ? Date.parse(task.status.nextAttemptAt) - now.getTime() : 0;
    return due > 0 ? { requeueAfterMs: due } : undefined;
  }

  /**
   * Waiting for the target: the holder's release hands it over and wakes this task. The timer
   * only makes sure the deadline is enforced and that a lost wake costs at most a minute.
   */
  private leavePending(task: AgentTask, now: Date): Promise<Next> | Next {
    if (this.locks.acquire(targetKey(task), taskKey(task))) return this.write(task, authorizing());
    return { requeueAfterMs: Math.min(LOCK_RECHECK_MS, this.deadline(task) - now.getTime() + DEADLINE_SLACK_MS) };
  }

  private deadline(task: AgentTask): number {
    return createdAt(task) + this.deps.config.taskDeadlineMs;
  }

  private scope(task: AgentTask, module: StepScope["module"], now: Date): StepScope {
    const m = task.metadata!;
    const d = this.deps;
    // Every read, dry run and write of the target is made as the task namespace's executor.
    const executedAs = executorUser(m.namespace!, d.config);
    return {
      task,
      module,
      executor: this.executors,
      access: this.access,
      executedAs,
      ctx: {
        task,
        spec: task.spec!,
        uid: m.uid!,
        kube: executorApi(d.kube, executedAs, d.sleep),
        config: d.config,
        log: d.log.child({ task: `${m.namespace}/${m.name}`, uid: m.uid, action: task.spec?.action }),
      },
      config: d.config,
      broker: d.broker,
      metrics: d.metrics,
      now,
      clock: this.now,
      judged: this.authorizedHere.get(m.uid!),
    };
  }

  /** What a step returned, made real: a transition written, a wait, or its error judged. */
  private apply(task: AgentTask, r: StepResult): Promise<Next> {
    if ("requeueAfterMs" in r) return Promise.resolve({ requeueAfterMs: r.requeueAfterMs });
    if ("error" in r) return this.follow(task, judge(r.error, r.stage, r.window), r.error);
    if (r.judged) this.authorizedHere.set(task.metadata!.uid!, r.judged);
    return this.write(task, r.transition);
  }

  /** Carries out a verdict on an error. */
  private follow(task: AgentTask, v: Verdict, err: unknown): Promise<Next> {
    switch (v.kind) {
      case "retry": {
        const t = retryOrFail(task, v.error, this.deps.config, { now: this.now(), random: this.random() });
        // Counted only when a retry is scheduled, not for the attempt that gives up.
        if (t.reason === Reason.RetryScheduled) this.deps.metrics.retries.inc({ reason: v.error.reason });
        return this.write(task, t);
      }
      case "fail":
        return this.write(task, failed(task, v.reason, v.message));
      case "requeue":
        if (v.log === "warn") this.deps.log.warn("transient error, will look again", this.errorFields(task, err));
        if (v.log === "error") this.deps.log.error("step failed", this.errorFields(task, err));
        return Promise.resolve({ requeueAfterMs: v.afterMs });
      default:
        return Promise.reject(err);
    }
  }

  private errorFields(task: AgentTask, err: unknown): Record<string, unknown> {
    return { task: taskKey(task), code: err instanceof AtbError ? err.code : undefined, error: messageOf(err) };
  }

  /** Errors a step did not turn into a result (our own status write's included). */
  private onError(task: AgentTask, err: unknown): Promise<Next> {
    return this.follow(task, judge(err, "reconcile"), err).catch(() => ({ requeueAfterMs: REFUSED_RECHECK_MS }));
  }

  /** One transition through the status writer; logs it, moves the metrics, updates the memory. */
  private async write(task: AgentTask, t: Transition): Promise<Next> {
    const updated = await this.deps.status.transition(task, t);
    const key = taskKey(updated);
    const uid = updated.metadata?.uid ?? "";
    if (updated.metadata?.resourceVersion) this.lastWritten.set(key, updated.metadata.resourceVersion);
    logTransition(this.deps.log, updated, t);
    countTransition(this.deps.metrics, updated, t);
    if (isTerminal(t.phase) || t.reason === Reason.Applied || t.reason === Reason.Reauthorizing)
      this.authorizedHere.delete(uid);
    // Waiting for approvals can last until the PoA's exp or the deadline: the target is not held meanwhile.
    if (t.phase === "AwaitingApproval") this.locks.release(key);
    if (!isTerminal(t.phase)) return { next: updated };
    this.locks.release(key);
    // A finished task leaves the watch (its open label goes; a failure is logged, the sweep retries).
    await closeTask(this.deps, updated);
    return { done: true };
  }
}
