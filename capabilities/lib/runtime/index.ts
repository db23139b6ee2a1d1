// Start-up wiring of the watcher side: the kube adapter, the broker client, the status writer,
// the pipeline behind a bounded work queue, the periodic sweep, and the metrics/health server.
// Pepr's Reconcile only feeds keys in (onEvent); everything after that is ours, because Pepr
// neither retries nor resyncs (see docs/adr/0001-one-watch-and-a-registry.md).
import type { Server } from "node:http";
import type { AgentTask } from "../../../crds/agenttask";
import type { AgentTaskApproval } from "../../../crds/agenttaskapproval";
import type { ActionRegistry } from "../action";
import { createBrokerClient, type BrokerClient } from "../broker/client";
import type { OperatorConfig } from "../config";
import { messageOf } from "../errors";
import { isUnsupportedFieldSelector, KubeClient, resourcePath, type OperatorKube } from "../kube";
import { ObjectWatches } from "../kube/object-watch";
import { createLogger, type Logger } from "../logger";
import { OperatorMetrics, serveMetrics } from "../metrics";
import { Pipeline, taskKey } from "../pipeline";
import { unclaimed } from "../pipeline/out-of-scope";
import { watches } from "../scope";
import { isOrphan, owns, ownedSelectors, shardName } from "../shard";
import { isTerminal } from "../status/conditions";
import { createStatusWriter } from "../status/writer";
import { FollowUps } from "./follow-ups";
import { WorkQueue } from "./work-queue";
import { ExpiredBatch, expired, TtlReaper } from "./ttl";
import { OPEN_FIELD, OPEN_SELECTOR, PHASES, type Phase } from "../../../crds/agenttask";
import { lighten } from "./memory";

/** A task counts as missed by the watch only once it and this process are older than this many sweeps plus WATCH_GRACE_MS. */
const WATCH_GRACE_SWEEPS = 2;
const WATCH_GRACE_MS = 10_000;
/** The first wait before a failed sweep is tried again (then doubled, up to the sweep interval). */
const SWEEP_RETRY_FIRST_MS = 1_000;
/** Not ready once this many sweep intervals passed without a successful sweep. */
const STALE_SWEEPS = 3;
/** How long a stopping process waits for the follow-ups (the Events) under way. */
const FOLLOW_UPS_DRAIN_MS = 5_000;
/** The field selector of the tasks whose phase is not terminal (no phase yet included). */

/** The runtime's connections to the outside, made at start(); tests pass in-memory fakes. */
export interface RuntimePorts {
  kube(): Promise<OperatorKube & { close(): Promise<void> }>;
  broker(log: Logger): BrokerClient;
}

/** What one sweep gathers from its listing. */
interface Tally {
  counts: Map<string, number>;
  open: Set<string>;
  missed: number;
  /** Finished tasks past their TTL, deleted after the listing (the oldest expiries, bounded). */
  expired: ExpiredBatch;
  /** The sweep's clock for the TTLs. */
  now: Date;
}

interface AgentTaskList {
  items?: AgentTask[];
  metadata?: { continue?: string };
}

export class OperatorRuntime {
  readonly log: Logger;
  readonly metrics = new OperatorMetrics();
  private pipeline?: Pipeline;
  private watches?: ObjectWatches;
  private reaper?: TtlReaper;
  private queue?: WorkQueue;
  private followUps?: FollowUps;
  private readonly early = new Set<string>();
  private sweptOnce = false;
  private sweepTimer?: NodeJS.Timeout;
  /** The sweep under way, if any. */
  private sweepInFlight?: Promise<void>;
  /** The retry after a failed sweep, and the wait before the next one. */
  private retryTimer?: NodeJS.Timeout;
  private retryBackoffMs = SWEEP_RETRY_FIRST_MS;
  private stopped = false;
  private server?: Server;
  private broker?: BrokerClient;
  private kube?: OperatorKube & { close(): Promise<void> };
  private lastSweep = 0;
  private readonly startedAt = Date.now();
  private sweepError = "no sweep yet";
  /**
   * Non-terminal tasks the watch has delivered (key → when last delivered); the sweep compares it
   * with what it lists, and forgets keys it no longer lists (tasks deleted while open).
   */
  private readonly watched = new Map<string, number>();
  /** Open tasks this watcher owns, as of the last sweep (a sharded watcher takes approvals for these and the watched). */
  private owned = new Set<string>();
  /** Non-terminal tasks the last sweep found that the watch never delivered. */
  private missed = 0;
  /** When the sweep last looked for tasks outside WATCH_NAMESPACE that nobody picked up. */
  private outOfScopeCheckedAt = 0;
  /** Successful sweeps so far (every ATB_SWEEP_FINISHED_EVERY-th lists the finished tasks too). */
  private sweeps = 0;
  /** Whether the API server selects AgentTasks by status.finishedAt (else the sweep lists them all). */
  private openSelectable = true;

  constructor(
    readonly config: Readonly<OperatorConfig>,
    private readonly actions: ActionRegistry,
    log?: Logger,
    private readonly ports: RuntimePorts = realPorts(config),
  ) {
    this.log = log ?? createLogger(config.logLevel, "operator");
  }

  async start(): Promise<void> {
    const c = this.config;
    if (c.broker.insecure)
      this.log.warn("ATB_INSECURE=true: the broker's server certificate is NOT verified; never use this in production");
    this.kube = await this.ports.kube();
    this.broker = this.ports.broker(this.log.child({ component: "broker-client" }));
    // Events run beside the workers, as many at a time as there are workers.
    this.followUps = new FollowUps(c.workers, err =>
      this.log.error("follow-up request failed", { error: messageOf(err) }),
    );
    const defer = (job: () => Promise<void>) => this.followUps!.run(job);
    const status = createStatusWriter({
      kube: this.kube,
      log: this.log,
      onEventError: () => this.metrics.eventErrors.inc(),
      defer,
    });
    this.reaper = new TtlReaper({ kube: this.kube, status, log: this.log, metrics: this.metrics });
    this.watches = c.rolloutWatch
      ? new ObjectWatches(this.kube, {
          log: this.log.child({ component: "rollout-watch" }),
          silentMs: c.watchSilenceMs,
        })
      : undefined;
    this.pipeline = new Pipeline({
      kube: this.kube,
      broker: this.broker,
      actions: this.actions,
      config: c,
      log: this.log,
      metrics: this.metrics,
      status,
      // A task waiting in Pending for its target is queued as soon as the holder hands it over
      // (the benchmark found that waiters polling every 5 s and all woken at once halved throughput).
      wake: key => this.queue?.add(key, true),
      ...(this.watches ? { watches: this.watches } : {}),
    });
    this.queue = new WorkQueue(
      c.workers,
      key => this.work(key),
      (key, err) => this.log.error("worker error", { task: key, error: messageOf(err) }),
    );
    this.server = await serveMetrics(
      this.metrics,
      { live: () => true, ready: () => this.readiness() },
      c.metricsHost,
      c.metricsPort,
    );
    // The first sweep runs before any task: it re-takes the targets of tasks that were past
    // Pending when the process stopped, so a Pending task cannot start on a target whose task is
    // still being applied or verified. Keys the watch delivered meanwhile wait in `early`.
    await this.sweep();
    this.sweptOnce = true;
    for (const key of this.early) this.queue.add(key);
    this.early.clear();
    this.sweepTimer = setInterval(() => this.tick(), c.sweepIntervalMs);
    this.sweepTimer.unref();
    this.log.info("operator runtime started", {
      workers: c.workers,
      apiQps: c.apiQps,
      watchNamespaces: c.watchNamespaces,
      shard: shardName(c) ?? "all",
      reconcileStrategy: c.reconcileStrategy,
      metricsPort: this.metricsPort(),
    });
    if (c.reconcileStrategy === "kindNsName")
      this.log.warn(
        "PEPR_RECONCILE_STRATEGY=kindNsName: Pepr keeps one reconcile queue per task name for the life of the process",
      );
  }

  metricsPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === "object" ? a.port : undefined;
  }

  /**
   * Pepr's Reconcile callback: terminal tasks, echoes of our own writes and tasks outside
   * WATCH_NAMESPACE cost nothing. Pepr's watch is cluster-wide even for a scoped operator; a task
   * in another namespace is another instance's, and the sweep's out-of-scope check finds the
   * ones nobody picks up.
   */
  onEvent(task: AgentTask): void {
    this.metrics.watchEvents.inc({ kind: "AgentTask" });
    // The same object stays in kfc's watch cache until the task leaves the watch.
    lighten(task);
    const key = taskKey(task);
    // The API server already selects this shard's tasks; a label that says otherwise is not ours.
    if (!watches(task.metadata?.namespace ?? "", this.config) || !owns(task, this.config)) return;
    // A copy from before this process finished the task (the echo of an earlier write of ours,
    // delivered late): nothing to do.
    if (this.pipeline?.predatesEnd(task)) return;
    this.pipeline?.observe(task);
    if (isTerminal(task.status?.phase)) {
      this.watched.delete(key);
      return;
    }
    this.watched.set(key, Date.now());
    if (this.pipeline?.lastWritten.get(key) === task.metadata?.resourceVersion) return;
    if (!this.sweptOnce) this.early.add(key);
    else this.queue!.add(key);
  }

  /** An AgentTaskApproval was created or changed: the task it names is looked at (lib/pipeline/await-approval.ts). */
  onApproval(approval: AgentTaskApproval): void {
    this.metrics.watchEvents.inc({ kind: "AgentTaskApproval" });
    lighten(approval);
    const ns = approval.metadata?.namespace ?? "";
    const name = approval.spec?.taskRef?.name;
    if (typeof name !== "string" || !name || !watches(ns, this.config)) return;
    const key = `${ns}/${name}`;
    // The approval watch is not sharded (approvals carry no shard): a shard takes approvals of
    // the tasks it owns (its watch delivered them, or its last sweep listed them) and leaves the
    // rest to theirs. An approval that arrives before either is seen by the next sweep's pass.
    if (this.config.shard !== undefined && !this.watched.has(key) && !this.owned.has(key)) return;
    if (!this.sweptOnce) this.early.add(key);
    else this.queue!.add(key, true);
  }

  private async work(key: string): Promise<void> {
    const r = await this.pipeline!.reconcile(key);
    if (r.requeueAfterMs !== undefined) this.queue!.addAfter(key, r.requeueAfterMs);
    // Finished (or gone): a timer an earlier pass set would read the task once more (a GET of
    // nearly every scale task, 3 s after its end, in the benchmark).
    else this.queue!.cancelDelayed(key);
    this.metrics.queueDepth.set(this.queue!.length);
  }

  /**
   * Finds every non-terminal task (the watch may have missed it) and counts tasks by phase; every
   * ATB_SWEEP_FINISHED_EVERY-th sweep also lists the finished tasks, counts them and deletes
   * those whose TTL has passed (lib/runtime/ttl.ts). The others, and the first sweep, which runs
   * before any task, list only the open tasks: with a hundred thousand finished tasks a restart
   * then lists what it must drive, not the history (the field selector `status.finishedAt=`).
   *
   * One sweep at a time: a call while one runs waits for it, then sweeps (the timers skip a turn
   * instead). A failed sweep is tried again after 1 s, 2 s, 4 s... up to the sweep interval: a
   * CRD's storage answers 429 "storage is (re)initializing" for a moment after the CRD is
   * created or changed, and readiness should not wait a whole interval for that.
   */
  async sweep(): Promise<void> {
    while (this.sweepInFlight) await this.sweepInFlight;
    this.sweepInFlight = this.sweepOnce().finally(() => (this.sweepInFlight = undefined));
    return this.sweepInFlight;
  }

  /** A timer's turn: skipped while a sweep runs. */
  private tick(): void {
    if (!this.sweepInFlight) void this.sweep();
  }

  private async sweepOnce(): Promise<void> {
    try {
      const namespaces = this.config.watchNamespaces.length ? this.config.watchNamespaces : [undefined];
      // The first sweep after the start-up one lists them, then every ATB_SWEEP_FINISHED_EVERY-th.
      const finished = this.sweeps > 0 && (this.sweeps - 1) % this.config.sweepFinishedEvery === 0;
      const tally: Tally = {
        counts: new Map<string, number>(PHASES.map(p => [p, 0])),
        open: new Set<string>(),
        missed: 0,
        expired: new ExpiredBatch(),
        now: new Date(),
      };
      const started = Date.now();
      for (const ns of namespaces) await this.listOwned(ns, tally, finished);
      // A listing of the open tasks sees no finished one: their counts stay those of the last
      // full listing.
      for (const [phase, n] of tally.counts)
        if (finished || !isTerminal(phase as Phase)) this.metrics.tasksByPhase.set({ phase }, n);
      // Tasks the watch delivered after the listing began are open too, though it could not list
      // them: without them, their target locks would be released and their waits dropped (a
      // second task on a target still being changed, a waiter left to its one-minute recheck).
      this.pipeline!.retain(this.openSince(tally.open, started));
      this.forgetUnlisted(tally.open, started);
      if (tally.missed > 0)
        this.log.warn("the watch has not delivered some tasks; the sweep is driving them", { missed: tally.missed });
      this.missed = tally.missed;
      await this.reaper!.reap(tally.expired.take(), tally.expired.found);
      await this.sweepOutOfScope();
      this.lastSweep = Date.now();
      this.sweeps++;
      this.retryBackoffMs = SWEEP_RETRY_FIRST_MS;
      this.metrics.sweeps.inc({ result: "ok" });
    } catch (err) {
      this.sweepError = messageOf(err);
      this.metrics.sweeps.inc({ result: "error" });
      this.log.warn("sweep failed", { error: this.sweepError, retryInMs: this.retryBackoffMs });
      this.retryLater();
    }
  }

  /** One retry timer at a time, each wait twice the last, never longer than the sweep interval. */
  private retryLater(): void {
    if (this.retryTimer || this.stopped) return;
    const delay = Math.min(this.retryBackoffMs, this.config.sweepIntervalMs);
    this.retryBackoffMs = Math.min(this.retryBackoffMs * 2, this.config.sweepIntervalMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.tick();
    }, delay);
    this.retryTimer.unref();
  }

  /**
   * The backstop for tasks admission should have refused (lib/pipeline/out-of-scope.ts): a scoped
   * operator lists the tasks outside its namespaces (all of them, by a field selector, or the
   * namespaces ATB_OUT_OF_SCOPE_NAMESPACES names) and queues those nobody picked up within the
   * grace; the pipeline re-reads each and marks it Failed/OutOfScope. An operator serving all
   * namespaces has none (its own listing holds the protected ones).
   */
  private async sweepOutOfScope(): Promise<void> {
    const c = this.config;
    if (!c.watchNamespaces.length || c.outOfScopeGraceMs <= 0) return;
    // At most every half grace: a task is then marked within 1.5 graces (plus a sweep interval)
    // of its creation, and a short sweep interval does not multiply the cluster-wide lists.
    if (Date.now() - this.outOfScopeCheckedAt < c.outOfScopeGraceMs / 2) return;
    const where = c.outOfScopeNamespaces.length
      ? c.outOfScopeNamespaces.map(ns => ({ ns, query: {} }))
      : [
          {
            ns: undefined,
            query: { fieldSelector: c.watchNamespaces.map(ns => `metadata.namespace!=${ns}`).join(",") },
          },
        ];
    const now = new Date();
    try {
      for (const { ns, query } of where)
        for (const q of this.ownedQueries(query)) await this.queueUnclaimed(ns, q, now);
    } catch (err) {
      throw new Error(`out-of-scope check: ${messageOf(err)}`);
    }
    this.outOfScopeCheckedAt = now.getTime();
  }

  private async queueUnclaimed(ns: string | undefined, query: Record<string, string>, now: Date): Promise<void> {
    for await (const items of this.pages(ns, query))
      for (const t of items) if (unclaimed(t, this.config, now)) this.requeue(taskKey(t));
  }

  /**
   * Visits the tasks of this watcher in one namespace (or all), one paged listing per selector:
   * every task when `finished`; else the open ones, selected on the API server by the field
   * selector the watch uses (`status.finishedAt=`: no terminal write yet; Kubernetes 1.31+).
   * Where the API server refuses that field selector (an older server, or the CRD applied
   * without its selectableFields), every task is listed and filtered here; said once in the log.
   */
  private async listOwned(ns: string | undefined, tally: Tally, finished: boolean): Promise<void> {
    if (finished || !this.openSelectable) {
      for (const query of this.ownedQueries({}))
        for await (const items of this.pages(ns, query)) this.visit(items, tally);
      return;
    }
    try {
      for (const query of this.ownedQueries({ fieldSelector: OPEN_SELECTOR }))
        for await (const items of this.pages(ns, query)) this.visit(items, tally);
    } catch (err) {
      if (!isUnsupportedFieldSelector(err)) throw err;
      this.openSelectable = false;
      this.log.warn(
        `the API server cannot select AgentTasks by ${OPEN_FIELD} (Kubernetes 1.31+ with the CRD's selectableFields): the sweep lists every task, and the watch delivers none`,
        { error: messageOf(err) },
      );
      await this.listOwned(ns, tally, true);
    }
  }

  /** The query for each label selector of this watcher's tasks (lib/shard.ts): one listing each. */
  private ownedQueries(query: Record<string, string>): Record<string, string>[] {
    return ownedSelectors(this.config).map(sel => (sel ? { ...query, labelSelector: sel } : query));
  }

  /** The listing's open tasks plus those the watch delivered since `started`. */
  private openSince(listed: Set<string>, started: number): Set<string> {
    const open = new Set(listed);
    for (const [key, at] of this.watched) if (at >= started) open.add(key);
    return open;
  }

  /**
   * Keys of open tasks the watch delivered that this sweep did not list and that were not
   * delivered again since it started: deleted while open (the watch passes no deletions on).
   */
  private forgetUnlisted(open: Set<string>, started: number): void {
    for (const [key, at] of this.watched) if (!open.has(key) && at < started) this.watched.delete(key);
    this.owned = open;
  }

  /** One collection of tasks, in pages of ATB_SWEEP_PAGE_SIZE. */
  private async *pages(ns: string | undefined, query: Record<string, string>): AsyncGenerator<AgentTask[]> {
    // With tens of thousands of finished tasks one unpaginated list would be parsed into memory
    // at once on every sweep; pages of 100 keep each response short-lived (config.ts,
    // sweepPageSize). A continue token that expires fails this sweep; the next one starts over.
    let cont: string | undefined;
    do {
      const page: AgentTaskList = await this.kube!.request<AgentTaskList>({
        method: "GET",
        path: resourcePath("AgentTask", ns),
        query: { ...query, limit: String(this.config.sweepPageSize), ...(cont ? { continue: cont } : {}) },
      });
      yield page.items ?? [];
      cont = page.metadata?.continue || undefined;
    } while (cont);
  }

  /** Queues the open tasks of one listing and counts phases and tasks the watch never delivered. */
  private visit(items: AgentTask[], tally: Tally): void {
    // A task counts as missed by the watch only when both it and this process are older than the
    // grace: right after a start the watch's initial list has not been delivered yet.
    const grace = Date.now() - WATCH_GRACE_SWEEPS * this.config.sweepIntervalMs - WATCH_GRACE_MS;
    const judgeWatch = this.startedAt <= grace;
    for (const t of items) {
      const phase = t.status?.phase ?? "Pending";
      tally.counts.set(phase, (tally.counts.get(phase) ?? 0) + 1);
      if (isTerminal(t.status?.phase)) {
        this.visitFinished(t, tally);
        continue;
      }
      const key = taskKey(t);
      // Listed from the API server's cache before our terminal write reached it: finished.
      if (this.pipeline!.predatesEnd(t)) continue;
      tally.open.add(key);
      this.pipeline!.observe(t);
      this.pipeline!.holdTargetIfStarted(t);
      this.requeue(key);
      if (judgeWatch && this.missedByWatch(t, key, grace)) tally.missed++;
    }
  }

  /** A finished task: deleted when its TTL has passed. */
  private visitFinished(t: AgentTask, tally: Tally): void {
    const due = expired(t, this.config.ttlSecondsAfterFinished, tally.now);
    if (due) tally.expired.add(due);
  }

  /**
   * Whether the watch should have delivered this open task by now and did not. Only a task the
   * watch selects can be missed by it: not one whose status has a finishedAt while its phase is
   * open (a status written by hand) nor, on shard 0, one without a valid shard label; the sweep
   * alone drives those.
   */
  private missedByWatch(t: AgentTask, key: string, grace: number): boolean {
    if (t.status?.finishedAt !== undefined || isOrphan(t, this.config) || this.watched.has(key)) return false;
    return Date.parse(String(t.metadata?.creationTimestamp)) < grace;
  }

  /**
   * The sweep's add: a task the queue already tracks (queued, running, or due on a timer: rollout
   * polls, retries, lock waits) runs anyway, so only the others are queued. A burst of a thousand
   * open tasks is then not queued a second time on every sweep.
   */
  private requeue(key: string): void {
    if (!this.sweptOnce) this.early.add(key);
    else if (!this.queue!.tracks(key)) this.queue!.add(key);
  }

  private readiness(): { ok: boolean; reason: string } {
    if (!this.queue) return { ok: false, reason: "starting" };
    if (Date.now() - this.lastSweep > STALE_SWEEPS * this.config.sweepIntervalMs)
      return { ok: false, reason: `sweep failing: ${this.sweepError}` };
    if (this.missed > 0)
      return { ok: false, reason: `watch not delivering: ${this.missed} open tasks seen only by the sweep` };
    return { ok: true, reason: "ok" };
  }

  /** Waits until no task is queued or being worked on and no follow-up (an Event) runs. */
  async idle(): Promise<void> {
    await this.queue?.idle();
    await this.followUps?.idle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.queue?.stop();
    // Events already started end before the connections close (bounded).
    await this.followUps?.drain(FOLLOW_UPS_DRAIN_MS);
    await this.watches?.close();
    await new Promise<void>(r => (this.server ? this.server.close(() => r()) : r()));
    await this.broker?.close();
    await this.kube?.close();
  }
}

/** The real connections: the kubeconfig's (or the pod's) API server and the broker over mTLS. */
function realPorts(c: Readonly<OperatorConfig>): RuntimePorts {
  return {
    kube: () => KubeClient.fromEnvironment({ qps: c.apiQps, userAgentSuffix: shardName(c) }),
    broker: log =>
      createBrokerClient(
        {
          brokerUrl: c.broker.url,
          tls: c.broker.tls,
          insecure: c.broker.insecure,
          attemptTimeoutMs: c.broker.attemptTimeoutMs,
          maxAttempts: c.broker.maxAttempts,
          baseBackoffMs: c.broker.baseBackoffMs,
          maxBackoffMs: c.broker.maxBackoffMs,
          connections: c.broker.connections,
        },
        log,
      ),
  };
}
