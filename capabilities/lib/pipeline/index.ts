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
// what a step returns, and keeps the pipeline's memory (judged plans, our own last writes, locks,
// the open tasks as last seen).
//
// Transitions of one pass are stored together (docs/adr/0009-coalesced-status-writes.md): Pending
// and Processing are carried by the next write (a task is Pending until its first write), Applied
// by Completed when the change takes effect within APPLIED_SHOWN_AFTER_MS (kept in memory across
// passes meanwhile; a restart finds the marker instead). Stored on their own: the
// decision (Executing/Authorized, before the target is written, so a restart finds it), a wait
// (Applied while a rollout runs, a retry, AwaitingApproval), every terminal phase, and Pending for
// a task that has waited ATB_PENDING_CLAIM_SECONDS for its target (so other instances see it is
// served).
import type { AgentTask } from "../../../crds/agenttask";
import type { ActionModule, ActionRegistry, KubeObject, Planned } from "../action";
import { shown } from "../action/payload";
import type { BrokerClient } from "../broker/client";
import type { OperatorConfig } from "../config";
import { AtbError, messageOf } from "../errors";
import type { OperatorKube } from "../kube";
import { KubeError, resourcePath } from "../kube";
import type { InterestHandle, ObjectWatches } from "../kube/object-watch";
import { ROLLOUT_KINDS } from "../kube/rollout";
import { redactString, type Logger } from "../logger";
import type { OperatorMetrics } from "../metrics";
import { conditionOf, isTerminal, nextStatus, type Transition } from "../status/conditions";
import type { StatusWriter } from "../status/writer";
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
import {
  APPLIED_SHOWN_AFTER_MS,
  DEADLINE_SLACK_MS,
  LOCK_RECHECK_MS,
  MAX_STEPS_PER_RECONCILE,
  REFUSED_RECHECK_MS,
  REREAD_NOW_MS,
} from "./timing";
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
  /** Re-queues a task at once (a waiter whose target was released, a new version of a target it waits on). */
  wake?: (taskKey: string) => void;
  /**
   * Rollouts followed through shared watches (one per executor, kind and namespace) instead of
   * GET polling; without it, verify polls (ADR 0009).
   */
  watches?: ObjectWatches;
}

/** A task waiting for its change to take effect looks again after this long at most when a watch follows its target. */
const WATCHED_RECHECK_MS = 30_000;

/** What one pass over a task asks for: continue with the stored task, wait, or stop. */
type Next = { next: AgentTask } | { requeueAfterMs: number } | { done: true };

/** Transitions of this pass not stored yet, and the task as stored that the next write patches. */
interface Unwritten {
  stored: AgentTask;
  transitions: Transition[];
  /** The task as the pass saw it before the last of `transitions`. */
  before: AgentTask;
  /** When the last of `transitions` was made (a flush stores it with that time). */
  at?: Date;
}

/** Applied, not stored yet while the change takes effect: the next pass starts from `view`. */
interface Carried extends Unwritten {
  view: AgentTask;
  since: number;
}

/** Carried by the next write of the pass; a pass that ends waiting drops them (they are implied). */
const IMPLIED: ReadonlySet<string> = new Set([Reason.Queued, Reason.Authorizing, Reason.Reauthorizing]);
/** Carried by the next write of the pass; a pass that ends waiting stores them first. */
const CARRIED: ReadonlySet<string> = new Set([Reason.Applied]);

/** Which of two resourceVersions is newer (numeric ones compared as numbers; otherwise the second). */
function newer(a: string | undefined, b: string | undefined): boolean {
  if (a && b && /^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(b) >= BigInt(a);
  return true;
}

/** How long, and for how many tasks at most, this process remembers the tasks it finished. */
const FINISHED_MEMORY_MS = 10 * 60_000;
const FINISHED_MEMORY_MAX = 20_000;

/** A copy to keep in memory: managedFields can be larger than the task. */
function lean(task: AgentTask): AgentTask {
  if (!task.metadata?.managedFields) return task;
  const metadata = { ...task.metadata };
  delete metadata.managedFields;
  return { ...task, metadata };
}

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
  /** The target each judged plan was made on, by task UID (the write in the same pass needs no read). */
  private readonly judgedFrom = new Map<string, KubeObject | null>();
  /** The target as our write or a watch event left it, by task UID; verify uses it once instead of a GET. */
  private readonly observedTargets = new Map<string, KubeObject | null>();
  /** Open tasks as last seen (watch events, sweeps, our own writes): a reconcile needs no GET. */
  private readonly seen = new Map<string, AgentTask>();
  /**
   * Tasks this process finished: key → uid, the resourceVersion of the terminal write and when.
   * The watch may deliver a copy from before that write after it (the echo of an earlier write of
   * ours, behind a backlog of events): without this it was taken for an open task, run again, and
   * cost a status write refused with 409 and a GET. Kept FINISHED_MEMORY_MS, at most
   * FINISHED_MEMORY_MAX entries.
   */
  private readonly finishedHere = new Map<string, { uid: string; rv: string; at: number }>();
  private readonly unwritten = new Map<string, Unwritten>();
  private readonly carried = new Map<string, Carried>();
  /** The targets followed through watches while their change takes effect, by task UID. */
  private readonly following = new Map<string, InterestHandle>();
  /** When the carried transitions of the pass under way were first made. */
  private readonly carriedSince = new Map<string, number>();
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

  /**
   * A copy of a task from the watch or a listing. Open tasks are remembered (the newest copy) so a
   * reconcile starts without a GET; a stale copy costs one 409 on our status write and a re-read.
   */
  observe(task: AgentTask): void {
    const key = taskKey(task);
    if (this.predatesEnd(task)) return;
    if (isTerminal(task.status?.phase)) {
      this.seen.delete(key);
      return;
    }
    const had = this.seen.get(key);
    if (
      !had ||
      had.metadata?.uid !== task.metadata?.uid ||
      newer(had.metadata?.resourceVersion, task.metadata?.resourceVersion)
    )
      this.seen.set(key, lean(task));
  }

  /**
   * Whether this copy of a task is older than the terminal write this process made of it: a late
   * copy of a finished task, not an open one (only numeric resourceVersions are compared, as etcd
   * makes them; anything else is taken as it comes).
   */
  predatesEnd(task: AgentTask): boolean {
    const f = this.finishedHere.get(taskKey(task));
    const rv = task.metadata?.resourceVersion;
    if (!f || f.uid !== task.metadata?.uid || !rv || !/^\d+$/.test(rv) || !/^\d+$/.test(f.rv)) return false;
    return BigInt(rv) < BigInt(f.rv);
  }

  /**
   * After a sweep: the open tasks it listed. Targets held by others are released, and tasks not
   * listed (deleted, or finished unseen) are no longer remembered, so their next look reads them.
   */
  retain(open: ReadonlySet<string>): void {
    this.locks.retain(open);
    for (const key of this.seen.keys()) if (!open.has(key)) this.seen.delete(key);
    const old = this.now().getTime() - FINISHED_MEMORY_MS;
    for (const [key, f] of this.finishedHere) if (f.at < old) this.finishedHere.delete(key);
  }

  /** Runs the task as far as it can go now. Returns when to look again, if ever. */
  async reconcile(key: string): Promise<{ requeueAfterMs?: number }> {
    try {
      return await this.pass(key);
    } finally {
      this.unwritten.delete(key);
      this.carriedSince.delete(key);
    }
  }

  private async pass(key: string): Promise<{ requeueAfterMs?: number }> {
    const [namespace, name] = key.split("/");
    let task = this.seen.get(key);
    if (!task) {
      const read = await this.read(namespace, name);
      if ("requeueAfterMs" in read) return read;
      task = read.task;
    }
    if (!task) this.forget(key);
    else task = this.resume(key, task);
    for (let i = 0; task && i < MAX_STEPS_PER_RECONCILE; i++) {
      const current: AgentTask = task;
      const next = await this.step(current).catch(err => this.onError(current, err));
      if ("done" in next) break;
      if ("requeueAfterMs" in next) return this.settle(current, next.requeueAfterMs);
      task = next.next;
      if (i === MAX_STEPS_PER_RECONCILE - 1) {
        // Never reached by a sound task (a whole one is six steps); store what the pass did and look again.
        await this.flush(key);
        return { requeueAfterMs: REFUSED_RECHECK_MS };
      }
    }
    this.lastWritten.delete(key);
    return {};
  }

  /** The GET of a task not in memory; undefined when it is gone. */
  private async read(namespace: string, name: string): Promise<{ task?: AgentTask } | { requeueAfterMs: number }> {
    let task: AgentTask | undefined;
    try {
      task = await this.deps.kube.get<AgentTask>(resourcePath("AgentTask", namespace, name));
    } catch (err) {
      const v = judge(err, "read-task");
      if (v.kind === "requeue") {
        if (v.log)
          this.deps.log[v.log]("could not read the task; will look again", {
            task: `${namespace}/${name}`,
            error: messageOf(err),
          });
        return { requeueAfterMs: v.afterMs };
      }
      throw err;
    }
    if (task) this.observe(task);
    return { task };
  }

  private spend(uid: string): void {
    this.authorizedHere.delete(uid);
    this.judgedFrom.delete(uid);
  }

  /** A task that is gone (or finished): nothing of it is kept. */
  private forget(key: string, uid = this.seen.get(key)?.metadata?.uid): void {
    this.locks.release(key);
    this.seen.delete(key);
    this.unwritten.delete(key);
    this.carried.delete(key);
    this.carriedSince.delete(key);
    if (uid) {
      this.spend(uid);
      this.observedTargets.delete(uid);
      this.following.get(uid)?.cancel();
      this.following.delete(uid);
    }
  }

  /** The task as the last pass left it in memory (an Applied not stored yet), if it is still as stored. */
  private resume(key: string, stored: AgentTask): AgentTask {
    const c = this.carried.get(key);
    this.carried.delete(key);
    if (!c || c.stored.metadata?.resourceVersion !== stored.metadata?.resourceVersion) return stored;
    this.unwritten.set(key, { stored, transitions: c.transitions, before: c.before, at: c.at });
    this.carriedSince.set(key, c.since);
    return c.view;
  }

  /**
   * A pass that waits: implied transitions are dropped; Applied is kept in memory while the change
   * may still take effect soon (APPLIED_SHOWN_AFTER_MS), then stored so the wait shows.
   */
  private async settle(task: AgentTask, requeueAfterMs: number): Promise<{ requeueAfterMs?: number }> {
    const key = taskKey(task);
    const u = this.unwritten.get(key);
    const since = this.carriedSince.get(key) ?? this.now().getTime();
    this.carriedSince.delete(key);
    if (!u || u.transitions.every(t => IMPLIED.has(t.reason))) return { requeueAfterMs };
    const left = since + APPLIED_SHOWN_AFTER_MS - this.now().getTime();
    if (left > 0 && u.transitions.every(t => IMPLIED.has(t.reason) || CARRIED.has(t.reason))) {
      this.carried.set(key, { ...u, view: task, since });
      return { requeueAfterMs: Math.min(requeueAfterMs, left) };
    }
    try {
      await this.flush(key);
      return { requeueAfterMs };
    } catch (err) {
      const next = await this.onError(task, err);
      return { requeueAfterMs: "requeueAfterMs" in next ? next.requeueAfterMs : REREAD_NOW_MS };
    }
  }

  /** Stores what the pass has not stored yet (one write). */
  private async flush(key: string): Promise<void> {
    const u = this.unwritten.get(key);
    if (!u?.transitions.length) return;
    await this.store(u.before, u.transitions[u.transitions.length - 1], u, u.at);
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
        if (conditionOf(task, "Executed")?.status !== "True") return this.apply(task, await execute(s));
        // Followed through a watch: the newest version it delivered, not a GET.
        const followed = this.following.get(s.ctx.uid);
        if (s.observed === undefined && followed) s.observed = followed.latest() ?? null;
        const r = await verify(s);
        if ("requeueAfterMs" in r && followed) return { requeueAfterMs: this.watchedRecheck(task, s) };
        return this.apply(task, r);
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
  private async leavePending(task: AgentTask, now: Date): Promise<Next> {
    if (this.locks.acquire(targetKey(task), taskKey(task))) return this.write(task, authorizing());
    // Pending is not stored while a task waits. A scoped operator (WATCH_NAMESPACE) stores it
    // once the task has waited pendingClaimMs, so other scoped instances' out-of-scope check sees
    // that it is served; an operator serving every namespace has no such neighbours.
    const { watchNamespaces, pendingClaimMs } = this.deps.config;
    const claimAt =
      watchNamespaces.length > 0 && pendingClaimMs !== undefined
        ? createdAt(task) + pendingClaimMs
        : Number.POSITIVE_INFINITY;
    const key = taskKey(task);
    const stored = this.unwritten.get(key)?.stored ?? task;
    if (!stored.status?.phase && now.getTime() >= claimAt) {
      await this.flush(key);
      return { requeueAfterMs: Math.min(LOCK_RECHECK_MS, this.deadline(task) - now.getTime() + DEADLINE_SLACK_MS) };
    }
    const wake = stored.status?.phase
      ? LOCK_RECHECK_MS
      : Math.min(LOCK_RECHECK_MS, Math.max(0, claimAt - now.getTime()));
    return { requeueAfterMs: Math.min(wake, this.deadline(task) - now.getTime() + DEADLINE_SLACK_MS) };
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
      judgedFrom: this.takeJudgedFrom(m.uid!),
      observed: this.takeObserved(m.uid!),
    };
  }

  /** The target the plan was judged on, for the step right after the decision only (a later pass reads it). */
  private takeJudgedFrom(uid: string): KubeObject | null | undefined {
    const o = this.judgedFrom.get(uid);
    this.judgedFrom.delete(uid);
    return o;
  }

  /** The newest copy of the target after our write, used once (a later look needs a newer one or a GET). */
  private takeObserved(uid: string): KubeObject | null | undefined {
    const o = this.observedTargets.get(uid);
    this.observedTargets.delete(uid);
    return o;
  }

  /** What a step returned, made real: a transition written, a wait, or its error judged. */
  private apply(task: AgentTask, r: StepResult): Promise<Next> {
    if ("requeueAfterMs" in r) return Promise.resolve({ requeueAfterMs: r.requeueAfterMs });
    if ("error" in r) return this.follow(task, judge(r.error, r.stage, r.window), r.error);
    const uid = task.metadata!.uid!;
    if (r.judged) this.authorizedHere.set(uid, r.judged);
    if (r.judgedFrom !== undefined) this.judgedFrom.set(uid, r.judgedFrom);
    if (r.observed !== undefined) this.observedTargets.set(uid, r.observed);
    if (r.observed && r.since) this.watchTarget(task, r.observed, r.since);
    return this.write(task, r.transition);
  }

  /**
   * After our write of a target that rolls out: its new versions come from the namespace's
   * shared watch (as the executor), each one remembered and the task woken to judge it.
   */
  private watchTarget(task: AgentTask, written: KubeObject, since: string): void {
    const w = this.deps.watches;
    const uid = task.metadata!.uid!;
    const t = task.spec!.target;
    if (!w || this.following.has(uid) || !ROLLOUT_KINDS.includes(t.kind)) return;
    const key = taskKey(task);
    const handle = w.register(
      {
        user: executorUser(t.namespace, this.deps.config),
        kind: t.kind,
        namespace: t.namespace,
        name: t.name,
        resourceVersion: since,
        initial: written,
      },
      u => {
        if (u.type === "ERROR") return;
        this.observedTargets.set(uid, u.type === "DELETED" ? null : u.object);
        this.deps.wake?.(key);
      },
    );
    this.following.set(uid, handle);
  }

  /** When a task whose target a watch follows looks again by itself: before its rollout timeout, at the latest. */
  private watchedRecheck(task: AgentTask, s: StepScope): number {
    const now = s.clock().getTime();
    const since = Date.parse(conditionOf(task, "Executed")?.lastTransitionTime ?? "") || now;
    return Math.max(
      0,
      Math.min(WATCHED_RECHECK_MS, since + this.deps.config.rolloutTimeoutMs - now + DEADLINE_SLACK_MS),
    );
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
    // Whatever the pass carried is dropped: the next pass starts from the task as stored.
    this.unwritten.delete(taskKey(task));
    this.carried.delete(taskKey(task));
    this.carriedSince.delete(taskKey(task));
    // Our copy of the task was stale (409) or the task is gone (404): the next pass reads it.
    if (err instanceof KubeError && (err.status === 409 || err.status === 404)) this.seen.delete(taskKey(task));
    return this.follow(task, judge(err, "reconcile"), err).catch(() => ({ requeueAfterMs: REFUSED_RECHECK_MS }));
  }

  /**
   * One transition. Pending, Processing and Applied are carried by the pass's next write (see the
   * file comment); every other transition is stored through the status writer together with them,
   * as one patch of the task as stored. Each transition is logged and counted once it is stored.
   */
  private async write(task: AgentTask, t: Transition): Promise<Next> {
    const key = taskKey(task);
    // The judged plan is spent once its change is written, or gone when the task is authorized again.
    if (t.reason === Reason.Applied || t.reason === Reason.Reauthorizing) this.spend(task.metadata?.uid ?? "");
    const u = this.unwritten.get(key) ?? { stored: task, transitions: [], before: task };
    if (IMPLIED.has(t.reason) || CARRIED.has(t.reason)) {
      u.transitions.push(t);
      u.before = task;
      u.at = this.now();
      this.unwritten.set(key, u);
      return { next: { ...task, status: nextStatus(task, t, u.at) } };
    }
    u.transitions.push(t);
    return this.store(task, t, u);
  }

  /** The status writer's one patch for the transitions of `u` (the last is `t`, applied on `task`). */
  private async store(task: AgentTask, t: Transition, u: Unwritten, at?: Date): Promise<Next> {
    const key = taskKey(task);
    const updated = await this.deps.status.transition(task, t, { stored: u.stored, ...(at ? { at } : {}) });
    this.unwritten.delete(key);
    const uid = updated.metadata?.uid ?? "";
    if (updated.metadata?.resourceVersion) this.lastWritten.set(key, updated.metadata.resourceVersion);
    for (const x of u.transitions) {
      logTransition(this.deps.log, updated, x);
      countTransition(this.deps.metrics, updated, x);
    }
    if (!isTerminal(t.phase)) {
      this.seen.set(key, lean(updated));
      // Waiting for approvals can last until the PoA's exp or the deadline: the target is not held meanwhile.
      if (t.phase === "AwaitingApproval") this.locks.release(key);
      return { next: updated };
    }
    this.forget(key, uid);
    const rv = updated.metadata?.resourceVersion;
    if (uid && rv) {
      this.finishedHere.delete(key); // re-inserted last: the oldest come first when the map is full
      this.finishedHere.set(key, { uid, rv, at: this.now().getTime() });
      if (this.finishedHere.size > FINISHED_MEMORY_MAX)
        this.finishedHere.delete(this.finishedHere.keys().next().value as string);
    }
    return { done: true };
  }
}
