// One task at a time per target. A task leaves Pending only when no other task of this process
// holds its target, so each task is planned and judged on the state its predecessor left (a
// patch is not refused because an earlier scale bumped the object; "rollback to previous" means
// what the agent saw). Locks live in memory: after a restart, the operator's first sweep re-takes
// the targets of tasks already past Pending (they carry on; the marker keeps them at most once)
// before any task runs. A holder that finishes, disappears, or is no longer open in a sweep
// releases its target to the longest waiter, which alone is woken.

export class TargetLocks {
  private readonly holders = new Map<string, string>();
  private readonly waiters = new Map<string, Set<string>>();

  constructor(private readonly wake: (taskKey: string) => void = () => undefined) {}

  /** Takes the target for the task, or records it as a waiter; true when the task may go on. */
  acquire(target: string, task: string): boolean {
    const holder = this.holders.get(target);
    if (holder === undefined || holder === task) {
      this.holders.set(target, task);
      return true;
    }
    let set = this.waiters.get(target);
    if (!set) this.waiters.set(target, (set = new Set()));
    set.add(task);
    return false;
  }

  /** Takes the target if it is free (tasks that were already past Pending before a restart). */
  claim(target: string, task: string): void {
    if (!this.holders.has(target)) this.holders.set(target, task);
  }

  holder(target: string): string | undefined {
    return this.holders.get(target);
  }

  /**
   * Releases every target the task holds (and any wait of the task) and hands each target to its
   * longest waiter, which is woken alone: waiters run in the order they queued up, and a release
   * costs one reconcile, not one per waiter. A waiter that has gone away gives the target back when
   * it is next looked at (the task is not found) or at the next sweep (`retain`).
   */
  release(task: string): void {
    for (const set of this.waiters.values()) set.delete(task);
    for (const [target, holder] of [...this.holders]) {
      if (holder !== task) continue;
      this.holders.delete(target);
      const set = this.waiters.get(target);
      const next = set?.values().next();
      if (!set || !next || next.done) {
        this.waiters.delete(target);
        continue;
      }
      set.delete(next.value);
      if (set.size === 0) this.waiters.delete(target);
      this.holders.set(target, next.value);
      this.wake(next.value);
    }
  }

  /** Forgets waiters and releases holders that are not among the open tasks (deleted, or finished unseen). */
  retain(open: ReadonlySet<string>): void {
    for (const [target, set] of this.waiters) {
      for (const w of set) if (!open.has(w)) set.delete(w);
      if (set.size === 0) this.waiters.delete(target);
    }
    for (const holder of new Set(this.holders.values())) if (!open.has(holder)) this.release(holder);
  }
}
