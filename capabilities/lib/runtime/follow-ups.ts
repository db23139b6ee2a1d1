// Follow-ups: the requests that report a step already stored and decide nothing: the Event of a
// terminal (or waiting) transition. It used to run on the worker, after the terminal status
// write, while the task still held its worker and its target: one more round trip in every
// task's chain. Here it runs beside the workers, at most `limit` at a time; a caller waits only
// for a free slot (so a burst cannot pile up requests without bound), never for the request.
//
// Nothing a task's outcome depends on is deferred: the status write that ends the task is made
// and stored before its follow-ups start. Events were best-effort already, as with client-go's
// recorder: a failed one is logged and counted (lib/status/writer.ts). A process that stops with
// follow-ups in flight waits for them (a bounded time) before it closes its connections.

export type FollowUp = () => Promise<unknown>;

export class FollowUps {
  private running = 0;
  private readonly slots: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];

  /** `onError`: a follow-up that threw (they log their own failures; this is the last resort). */
  constructor(
    private readonly limit: number,
    private readonly onError: (err: unknown) => void,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`FollowUps: limit must be >= 1 (got ${limit})`);
  }

  /** Follow-ups under way. */
  get inFlight(): number {
    return this.running;
  }

  /** Starts `job` as soon as fewer than `limit` run; resolves once it has started, not when it ends. */
  async run(job: FollowUp): Promise<void> {
    // A full lane hands the slot of the next follow-up that ends to the first caller waiting.
    if (this.running >= this.limit) await new Promise<void>(r => this.slots.push(r));
    else this.running++;
    let started: Promise<unknown>;
    try {
      started = job();
    } catch (err) {
      started = Promise.reject(err);
    }
    void started.catch(this.onError).finally(() => this.done());
  }

  /** Resolves when no follow-up runs. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise(r => this.idleWaiters.push(r));
  }

  /** Like idle(), but gives up after `ms`; true when every follow-up ended. */
  async drain(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>(r => {
      timer = setTimeout(() => r(false), ms);
      timer.unref();
    });
    const ended = await Promise.race([this.idle().then(() => true as const), timeout]);
    clearTimeout(timer);
    return ended;
  }

  private done(): void {
    const next = this.slots.shift();
    if (next) return next(); // the slot passes on: as many run as before
    this.running--;
    if (this.running) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
