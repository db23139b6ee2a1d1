// A watch on the tasks of one namespace that records, per task, when the benchmark sent it, when
// the watch first saw it in each phase, and when it became terminal: the latencies and the
// per-stage times of the end-to-end runs come from here (millisecond clock; creationTimestamp has
// only second precision).
import type { Api, TaskObject } from "./api";
import { sleep } from "./measure";

export const TERMINAL = ["Completed", "Denied", "Failed"];

export interface TaskTimes {
  sentAt?: number;
  createdAt?: number;
  /** First time the watch saw the task in each phase (and "Applied": Executed=True). */
  seen: Record<string, number>;
  /** The terminal phase, or CreateFailed when the create was refused. */
  terminal?: string;
  doneAt?: number;
  message?: string;
}

export class Tracker {
  readonly tasks = new Map<string, TaskTimes>();
  private stop?: () => void;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly api: Api,
    readonly namespace: string,
  ) {}

  async start(): Promise<void> {
    const path = `/apis/atb.siemens.com/v1alpha1/namespaces/${this.namespace}/agenttasks`;
    const list = await this.api.ok<{ metadata: { resourceVersion: string } }>("GET", `${path}?limit=1`);
    this.stop = this.api.watch(path, list.metadata.resourceVersion, (type, obj) => this.onEvent(type, obj));
  }

  entry(name: string): TaskTimes {
    let t = this.tasks.get(name);
    if (!t) this.tasks.set(name, (t = { seen: {} }));
    return t;
  }

  private onEvent(type: string, obj: TaskObject): void {
    if (type === "DELETED") return;
    const now = Date.now();
    const t = this.entry(obj.metadata.name);
    const phase = obj.status?.phase ?? "New";
    t.seen[phase] ??= now;
    if (obj.status?.conditions?.some(c => c.type === "Executed" && c.reason === "Applied")) t.seen.Applied ??= now;
    if (TERMINAL.includes(phase) && t.doneAt === undefined) this.finish(t, phase, now, obj.status?.message);
  }

  private finish(t: TaskTimes, phase: string, now: number, message: string | undefined): void {
    t.doneAt = now;
    t.terminal = phase;
    t.message = message;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when every named task is terminal; rejects after timeoutMs. */
  async waitTerminal(names: string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const open = names.filter(n => this.tasks.get(n)?.doneAt === undefined).length;
      if (open === 0) return;
      if (Date.now() > deadline)
        throw new Error(
          `${open} of ${names.length} tasks in ${this.namespace} not terminal after ${timeoutMs / 1000}s`,
        );
      await Promise.race([new Promise<void>(r => this.waiters.push(r)), sleep(1000)]);
    }
  }

  forget(): void {
    this.tasks.clear();
  }

  close(): void {
    this.stop?.();
  }
}
