// Watcher shards (docs/deployment.md, "Shards"): with ATB_SHARDS=n the mutating webhook stamps
// every new task with the label atb.siemens.com/shard = a stable hash of the task's target
// modulo n, and a watcher started with ATB_SHARD=i watches, sweeps and works only the tasks
// labelled i. The hash is of the target (kind/namespace/name), not of the task's own name: the
// operator runs one task at a time per target (pipeline/target-locks.ts), and those locks live in
// one process's memory, so every task of one target must land on the same shard. The label, not
// the hash, decides ownership: it is stamped once and never changes (admission refuses a change),
// so a task never moves between shards while one of them works on it. Tasks without a valid
// shard label (created before sharding, with the webhooks out of the way, or labelled for a
// larger ATB_SHARDS than now) belong to shard 0. Pure: no I/O, no environment.
import { createHash } from "node:crypto";
import { LABEL_SHARD, type AgentTask } from "../../crds/agenttask";

export { MAX_SHARDS } from "./config";

/** The parts of the operator's configuration that decide which tasks a watcher owns. */
export interface ShardScope {
  /** How many shards tasks are spread over (ATB_SHARDS, 1: no sharding). */
  shards: number;
  /** This watcher's shard (ATB_SHARD); undefined: it serves every task. */
  shard?: number;
}

/**
 * What the hash is taken of: the target's kind, namespace and name (the key of the target
 * locks), or the task's own namespace/name when its target is not three strings (such a task
 * is refused by validation; the mutating webhook runs first and must not throw on it).
 */
export function shardKey(task: Pick<AgentTask, "metadata" | "spec"> | undefined): string {
  const t = (task?.spec?.target ?? {}) as unknown as Record<string, unknown>;
  const parts = [t.kind, t.namespace, t.name];
  if (parts.every(p => typeof p === "string")) return parts.join("/");
  const m = task?.metadata ?? {};
  return `task/${m.namespace ?? ""}/${m.name ?? ""}`;
}

/** A stable hash of the key (the first 32 bits of its SHA-256) modulo the shard count. */
export function shardOfKey(key: string, shards: number): number {
  if (shards <= 1) return 0;
  return createHash("sha256").update(key, "utf8").digest().readUInt32BE(0) % shards;
}

/** The shard a task belongs to by its target, as the mutating webhook stamps it. */
export function shardOf(task: Pick<AgentTask, "metadata" | "spec"> | undefined, shards: number): string {
  return String(shardOfKey(shardKey(task), shards));
}

/** Whether a label value names one of the shards 0..shards-1 (canonical decimal only). */
export function isShardValue(value: unknown, shards: number): value is string {
  return typeof value === "string" && /^(0|[1-9]\d{0,3})$/.test(value) && Number(value) < shards;
}

const labelOf = (task: AgentTask | undefined, key: string): string | undefined => task?.metadata?.labels?.[key];

/** Whether this watcher owns the task: always when unsharded; else by its label (shard 0 also owns the unlabelled). */
export function owns(task: AgentTask | undefined, s: ShardScope): boolean {
  if (s.shard === undefined) return true;
  const label = labelOf(task, LABEL_SHARD);
  if (isShardValue(label, s.shards)) return Number(label) === s.shard;
  return s.shard === 0;
}

/** Whether the task is one shard 0 owns only because it has no valid shard label. */
export function isOrphan(task: AgentTask | undefined, s: ShardScope): boolean {
  return s.shard !== undefined && !isShardValue(labelOf(task, LABEL_SHARD), s.shards);
}

/**
 * The label selectors whose union is this watcher's tasks, one listing each: everything when
 * unsharded (one listing without a selector); its own label; for shard 0 also every task whose
 * label is missing or names no shard (`notin` matches a missing label too).
 */
export function ownedSelectors(s: ShardScope): (string | undefined)[] {
  if (s.shard === undefined) return [undefined];
  const own = `${LABEL_SHARD}=${s.shard}`;
  if (s.shard !== 0) return [own];
  const all = Array.from({ length: s.shards }, (_, i) => String(i)).join(",");
  return [own, `${LABEL_SHARD} notin (${all})`];
}

/**
 * The labels the watch selects on the API server besides the open tasks' field selector
 * (crds/agenttask.ts, OPEN_SELECTOR): this shard's when sharded, none otherwise.
 */
export function watchLabels(s: ShardScope): [string, string][] {
  return s.shard === undefined ? [] : [[LABEL_SHARD, String(s.shard)]];
}

/** How this watcher names itself in logs and in the API server's audit log (User-Agent suffix). */
export function shardName(s: ShardScope): string | undefined {
  return s.shard === undefined ? undefined : `shard ${s.shard}/${s.shards}`;
}
