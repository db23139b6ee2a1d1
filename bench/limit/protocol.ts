// The messages between the benchmark (bench/limit/driver.ts) and the limit process
// (bench/limit/worker.ts), over the IPC channel of a forked child. The limit learns of tasks from
// its own watch, not from these messages.

export interface LimitInit {
  type: "init";
  /** The limit's own identity (bench/limit/identity.ts): a token kubeconfig. */
  kubeconfig: string;
  /** Where its tasks and targets are. */
  namespace: string;
  /** The user it writes targets as (Impersonate-User): the namespace's executor. */
  executor: string;
  /** Tasks worked on at once: the operator's ATB_WORKERS. */
  workers: number;
}

export type ToLimit = LimitInit | { type: "stats" } | { type: "exit" };

/** What the limit counted itself (the benchmark's figures come from the API server's audit log). */
export interface LimitStats {
  /** Tasks it finished (Completed or Failed). */
  tasks: number;
  /** Its requests by "verb resource", watches and their lists included. */
  requests: Record<string, number>;
  /** Target writes refused with 409 (its cached resourceVersion was stale) and done again. */
  conflicts: number;
}

export type FromLimit =
  | { type: "ready" }
  | { type: "done"; name: string; phase: string; error?: string }
  | { type: "stats"; stats: LimitStats };
