// The parts of the limit (bench/limit/worker.ts) that hold no connection: its worker slots, its
// one-task-per-target hand-off, and the body of its one write of a target.
import { markerMetadata } from "../../capabilities/lib/action/marker";
import type { KubeObject } from "../../capabilities/lib/action";

/** Worker slots; like the operator's work queue, work under way (`urgent`) goes before new tasks. */
export class Semaphore {
  private waiting: (() => void)[] = [];
  private urgent: (() => void)[] = [];
  constructor(private free: number) {}
  async take(urgent = false): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>(r => (urgent ? this.urgent : this.waiting).push(r));
  }
  give(): void {
    const next = this.urgent.shift() ?? this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** One task per target; release hands the target to the next waiter at once. */
export class TargetFifo {
  private readonly held = new Map<string, (() => void)[]>();
  tryAcquire(key: string): boolean {
    if (this.held.has(key)) return false;
    this.held.set(key, []);
    return true;
  }
  acquire(key: string): Promise<void> {
    if (this.tryAcquire(key)) return Promise.resolve();
    return new Promise(r => this.held.get(key)!.push(r));
  }
  release(key: string): void {
    const q = this.held.get(key);
    const next = q?.shift();
    if (next) next();
    else this.held.delete(key);
  }
}

export interface Task {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; generation?: number };
  spec: {
    action: string;
    target: { kind: string; name: string; namespace: string };
    payload?: Record<string, unknown>;
  };
  status?: { phase?: string };
}

/** The change of one task as a merge patch body, with the product's marker metadata. */
export function patchBody(task: Task, target: KubeObject): Record<string, unknown> {
  const metadata = markerMetadata(target, task.metadata.uid);
  const p = task.spec.payload ?? {};
  if (task.spec.action === "scale") return { metadata, spec: { replicas: p.replicas } };
  if (task.spec.action === "update-config" && task.spec.target.kind === "ConfigMap") {
    const data: Record<string, string | null> = { ...(p.data as Record<string, string> | undefined) };
    for (const k of (p.remove as string[] | undefined) ?? [])
      if (target.data && Object.hasOwn(target.data, k)) data[k] = null;
    return { metadata, data };
  }
  throw new Error(
    `the limit does ${task.spec.action} of ${task.spec.target.kind} only for scale and update-config of a ConfigMap`,
  );
}
