// The messages between the benchmark (bench/limit/driver.ts) and the limit process
// (bench/limit/worker.ts), over the IPC channel of a forked child.

export interface LimitInit {
  type: "init";
  kubeconfig: string;
  brokerUrl: string;
  tls: { certFile: string; keyFile: string; caFile: string };
  workers: number;
  qps: number;
  pollMs: number;
  logFile: string;
}

export type ToLimit =
  | LimitInit
  /** A task the benchmark just created: the limit handles it as the operator would. */
  | { type: "task"; namespace: string; name: string }
  | { type: "stats" }
  | { type: "exit" };

export type FromLimit =
  | { type: "ready" }
  | { type: "done"; name: string; phase: string; error?: string }
  /** What the limit's KubeClient counted so far. */
  | { type: "stats"; requests: number; writes: number };
