// A bounded worker pool with per-key de-duplication, after client-go's workqueue: a key is
// processed by at most one worker at a time; adding a key that is queued is a no-op; adding a
// key that is being processed marks it dirty so it runs once more afterwards. Delayed adds
// (retries, rollout polling) keep at most one timer per key, the earliest. A burst of a thousand
// new tasks therefore becomes a queue, not a thousand concurrent pipelines. Work already under
// way (a timer that fires, a task handed its target) goes ahead of keys that are merely new, so
// started tasks finish before more are started.

export type Handler = (key: string) => Promise<void>;

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Keys of work under way; served before `queue`. */
  private readonly urgent: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly workers: number,
    private readonly handler: Handler,
    private readonly onError: (key: string, err: unknown) => void,
  ) {}

  /** Queues the key (de-duplicated); `urgent` for work already under way. */
  add(key: string, urgent = false): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) {
      if (urgent && !this.urgent.includes(key)) {
        this.queue.splice(this.queue.indexOf(key), 1);
        this.urgent.push(key);
      }
      return;
    }
    this.queued.add(key);
    (urgent ? this.urgent : this.queue).push(key);
    this.pump();
  }

  /** Adds the key after delayMs; an earlier pending timer for the key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key, true);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /**
   * Drops the key's pending timer: its work is done, and a timer an earlier pass set (a rollout
   * poll, the recheck before Applied is shown) would only cost a look at a finished task.
   */
  cancelDelayed(key: string): void {
    const t = this.timers.get(key);
    if (!t) return;
    clearTimeout(t.timer);
    this.timers.delete(key);
  }

  /** True when the key will run without another add: queued, running, or waiting on a timer. */
  tracks(key: string): boolean {
    return this.queued.has(key) || this.active.has(key) || this.timers.has(key);
  }

  get length(): number {
    return this.urgent.length + this.queue.length;
  }

  /** Resolves when nothing is queued or running (timers may still be pending). */
  idle(): Promise<void> {
    if (this.running === 0 && this.length === 0) return Promise.resolve();
    return new Promise(r => this.idleWaiters.push(r));
  }

  stop(): void {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.urgent.length = 0;
    this.queued.clear();
  }

  private pump(): void {
    while (this.running < this.workers && this.length > 0) {
      const key = (this.urgent.length > 0 ? this.urgent : this.queue).shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      void this.run(key);
    }
    if (this.running === 0 && this.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async run(key: string): Promise<void> {
    try {
      await this.handler(key);
    } catch (err) {
      this.onError(key, err);
    } finally {
      this.active.delete(key);
      this.running--;
      if (this.dirty.delete(key)) this.add(key, true);
      this.pump();
    }
  }
}
