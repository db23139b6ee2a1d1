// Operator configuration: the only place that reads the environment. parseConfig is pure
// (env in, frozen config out) and fails fast with a message naming the variable and the rule.
import { AtbError } from "./errors";
import { BROKER_CLIENT_DEFAULTS as BROKER } from "./broker/config";
import { DEFAULT_PROTECTED_NAMESPACES } from "./scope";

export interface OperatorConfig {
  /** How Pepr runs this process: build (manifest discovery), admission, watch, or dev (both). */
  peprMode: "build" | "admission" | "watch" | "dev";
  /** Namespaces to act in; empty means all namespaces (unlike the upstream example's "default"). */
  watchNamespaces: readonly string[];
  /** Namespaces the operator never acts in, even with WATCH_NAMESPACE empty (lib/scope.ts). */
  protectedNamespaces: readonly string[];
  /**
   * How long a task outside WATCH_NAMESPACE may stay without any status before this operator
   * marks it Failed/OutOfScope (an instance serving it stores its decision within milliseconds,
   * or Pending after pendingClaimMs while it waits for its target); 0: never. Only used when
   * WATCH_NAMESPACE is set.
   */
  outOfScopeGraceMs: number;
  /** Where that check looks; empty: every namespace outside WATCH_NAMESPACE. */
  outOfScopeNamespaces: readonly string[];
  /**
   * A task is Pending (no status) until its first write; in a scoped operator (WATCH_NAMESPACE),
   * one still waiting for its target this long after creation gets Pending stored once, so other
   * scoped instances' out-of-scope check sees that it is served. Below outOfScopeGraceMs;
   * default a third of it, undefined (never) when that check is off (the grace is 0).
   */
  pendingClaimMs: number | undefined;
  /** Whether a task may target another namespace than its own. Deny by default. */
  allowCrossNamespace: boolean;
  /**
   * The ServiceAccount, in each task's namespace, that the operator impersonates for every read,
   * dry run and write of a target (ATB_EXECUTOR_SERVICE_ACCOUNT; the ClusterRole's impersonate
   * rule must name it).
   */
  executorServiceAccount: string;
  broker: {
    url: string;
    tls: { certFile?: string; keyFile?: string; caFile?: string };
    insecure: boolean;
    attemptTimeoutMs: number;
    maxAttempts: number;
    baseBackoffMs: number;
    maxBackoffMs: number;
    connections: number;
  };
  /** Bound on one task from creation to a terminal phase. */
  taskDeadlineMs: number;
  /** Bound on waiting for a rollout or ready replicas after the change is written. */
  rolloutTimeoutMs: number;
  /**
   * How a rollout is followed after the write: through one shared watch per executor, kind and
   * namespace (true), or by polling the target with GETs (false).
   */
  rolloutWatch: boolean;
  /** A watched target that has shown no new version this long is read once with a GET (a lost event). */
  watchSilenceMs: number;
  /** Attempts per task for transient failures before Failed. */
  maxTaskAttempts: number;
  /** Sweep interval for tasks left in non-terminal phases. */
  sweepIntervalMs: number;
  /**
   * Tasks per page when the sweep lists them. Small on purpose: a page's response text (about
   * 3.6 KB per task) and the objects parsed from it must die in V8's young generation. Pages of
   * 500 (1.8 MB) outlived a scavenge, went to the old generation's large-object space and piled
   * up until a full collection: a restart with 100,000 finished tasks peaked at 186-226 MiB
   * with pages of 500, 159-167 MiB with pages of 100, 395 MiB with pages of 2000.
   */
  sweepPageSize: number;
  /**
   * Every how many sweeps one also lists the finished tasks (TTL deletion, the finished phases'
   * counts); the others list the open tasks only (lib/runtime/index.ts). 1: every sweep.
   */
  sweepFinishedEvery: number;
  /**
   * Seconds a finished task is kept before the sweep deletes it, for tasks without their own
   * spec.ttlSecondsAfterFinished; 0 keeps them forever (lib/runtime/ttl.ts).
   */
  ttlSecondsAfterFinished: number;
  workers: number;
  apiQps: number;
  /**
   * Whether V8 may recompile hot WebAssembly with TurboFan (its default). Off here: the only
   * WebAssembly in the process is undici's HTTP parser, and that recompilation costs a peak of
   * 25-35 MiB per undici copy for no measured speed-up (lib/runtime/v8-settings.ts).
   */
  wasmTierUp: boolean;
  /**
   * How far V8 lets the old generation grow after a full collection before the next one, in
   * percent (V8's --heap-growing-percent); 0: V8's own factor. 20 here: bursts peak 20-60 MiB
   * lower for the same CPU (lib/runtime/v8-settings.ts).
   */
  heapGrowingPercent: number;
  /**
   * V8's --optimize-for-size (its default is off): young generation and code kept small, memory
   * given back sooner. On here: with the bundled module, bursts of 1000 tasks peaked 20 MiB lower
   * for the same CPU per task (lib/runtime/v8-settings.ts).
   */
  optimizeForSize: boolean;
  logLevel: "error" | "warn" | "info" | "debug";
  metricsPort: number;
  /** Address the metrics/health server binds; the deployment sets 0.0.0.0. */
  metricsHost: string;
  /** Task-level retry backoff (attempts recorded in status). */
  taskBackoffBaseMs: number;
  taskBackoffMaxMs: number;
  peprPort: number;
  maxReplicas: number;
  maxPatchBytes: number;
  allowCreate: boolean;
  /**
   * How many watcher shards tasks are spread over (ATB_SHARDS): the mutating webhook stamps each
   * new task's shard label from it (lib/shard.ts). 1: every task gets shard "0".
   */
  shards: number;
  /** This watcher's shard (ATB_SHARD, 0..shards-1); undefined: it serves every task. */
  shard?: number;
  /**
   * Pepr's Reconcile queue key (PEPR_RECONCILE_STRATEGY, which Pepr reads itself): one FIFO per
   * key, kept forever. Default "kind": two queues (AgentTask, AgentTaskApproval) instead of one per
   * task name ever seen; our callback only hands keys to the runtime's own work queue.
   */
  reconcileStrategy: ReconcileStrategy;
}

/** The most watcher shards (bounds the label values and shard 0's selector for unlabelled tasks). */
export const MAX_SHARDS = 256;

/** Pepr 1.1.4's reconcile strategies (node_modules/pepr/src/lib/processors/watch-processor.ts, queueKey). */
export const RECONCILE_STRATEGIES = ["kind", "kindNs", "kindNsName", "global"] as const;
export type ReconcileStrategy = (typeof RECONCILE_STRATEGIES)[number];

type Env = Readonly<Record<string, string | undefined>>;

/** The longest TTL of a finished task (a year): the CRD's maximum for spec.ttlSecondsAfterFinished. */
export const MAX_TTL_SECONDS = 31_536_000;

function invalid(name: string, rule: string, value?: string): never {
  const shown = value === undefined ? "" : ` (got "${value.slice(0, 80)}")`;
  throw new AtbError("CONFIG_INVALID", `${name}: ${rule}${shown}`);
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  if (!/^\d+$/.test(raw.trim())) invalid(name, `must be a whole number between ${min} and ${max}`, raw);
  const n = Number(raw);
  if (n < min || n > max) invalid(name, `must be between ${min} and ${max}`, raw);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  if (/^(true|1|yes)$/i.test(raw)) return true;
  if (/^(false|0|no)$/i.test(raw)) return false;
  return invalid(name, "must be true or false", raw);
}

function namespaces(env: Env, name: string, emptyMeans: string): string[] {
  const raw = env[name];
  if (!raw || !raw.trim()) return [];
  const list = raw
    .split(",")
    .map(s => s.trim())
    .filter(Boolean);
  for (const ns of list) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns) || ns.length > 63) {
      invalid(name, `must be a comma-separated list of namespace names, or empty for ${emptyMeans}`, ns);
    }
  }
  return [...new Set(list)];
}

/**
 * The namespace settings, checked against each other: a namespace cannot be both served and
 * protected, nor served and checked for tasks no operator serves.
 */
function scopeSettings(env: Env) {
  const watchNamespaces = namespaces(env, "WATCH_NAMESPACE", "all");
  const listed = namespaces(env, "ATB_PROTECTED_NAMESPACES", "the default list");
  const protectedNamespaces = listed.length ? listed : [...DEFAULT_PROTECTED_NAMESPACES];
  const both = watchNamespaces.filter(ns => protectedNamespaces.includes(ns));
  if (both.length) {
    invalid(
      "WATCH_NAMESPACE",
      `must not name a protected namespace (${both.join(", ")}: in ATB_PROTECTED_NAMESPACES=${protectedNamespaces.join(",")}; ` +
        "to allow tasks there, set ATB_PROTECTED_NAMESPACES to the list without it)",
    );
  }
  const outOfScopeNamespaces = namespaces(
    env,
    "ATB_OUT_OF_SCOPE_NAMESPACES",
    "every namespace outside WATCH_NAMESPACE",
  );
  if (outOfScopeNamespaces.length && !watchNamespaces.length)
    invalid(
      "ATB_OUT_OF_SCOPE_NAMESPACES",
      "applies only when WATCH_NAMESPACE is set (an operator serving all namespaces sees every task)",
    );
  const served = outOfScopeNamespaces.filter(ns => watchNamespaces.includes(ns));
  if (served.length)
    invalid("ATB_OUT_OF_SCOPE_NAMESPACES", `must not name a namespace in WATCH_NAMESPACE (${served.join(", ")})`);
  const grace = int(env, "ATB_OUT_OF_SCOPE_GRACE_SECONDS", 60, 0, 86_400);
  // Scoped instances store Pending well inside each other's grace (they share this setting);
  // with the check off (grace 0) nobody marks a task without status, so nothing is claimed.
  const explicit = env.ATB_PENDING_CLAIM_SECONDS !== undefined && env.ATB_PENDING_CLAIM_SECONDS !== "";
  const claim = explicit
    ? int(env, "ATB_PENDING_CLAIM_SECONDS", 0, 0, 3_600)
    : grace > 0
      ? Math.floor(grace / 3)
      : undefined;
  if (grace > 0 && claim !== undefined && claim >= grace)
    invalid(
      "ATB_PENDING_CLAIM_SECONDS",
      `must be less than ATB_OUT_OF_SCOPE_GRACE_SECONDS (${grace}): a task waiting for its target would be marked OutOfScope by a scoped instance before it shows Pending`,
      String(claim),
    );
  return {
    watchNamespaces,
    protectedNamespaces,
    outOfScopeGraceMs: grace * 1000,
    outOfScopeNamespaces,
    pendingClaimMs: claim === undefined ? undefined : claim * 1000,
  };
}

function brokerUrl(raw: string | undefined): string {
  const value = raw?.trim() || "https://127.0.0.1:8443";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return invalid("ATB_BROKER_URL", "must be an absolute https URL", value);
  }
  if (url.protocol !== "https:") invalid("ATB_BROKER_URL", "must use https (the broker is reached over mTLS)", value);
  return value.replace(/\/+$/, "");
}

/** The executor ServiceAccount's name unless ATB_EXECUTOR_SERVICE_ACCOUNT says otherwise. */
export const DEFAULT_EXECUTOR = "atb-executor";

/** A ServiceAccount name: a DNS-1123 subdomain. */
function serviceAccountName(env: Env, key: string, fallback: string): string {
  const value = env[key]?.trim() || fallback;
  if (value.length > 253 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value))
    invalid(key, "must be a ServiceAccount name (lower-case DNS-1123 subdomain, at most 253 characters)", value);
  return value;
}

/** ATB_SHARDS and ATB_SHARD, checked against each other. */
function shardSettings(env: Env): { shards: number; shard?: number } {
  const shards = int(env, "ATB_SHARDS", 1, 1, MAX_SHARDS);
  const raw = env.ATB_SHARD;
  if (raw === undefined || raw.trim() === "") return { shards };
  if (!/^\d+$/.test(raw.trim()) || Number(raw) >= shards)
    invalid(
      "ATB_SHARD",
      `must be a whole number from 0 to ATB_SHARDS-1 (ATB_SHARDS=${shards}), or empty to serve every task`,
      raw,
    );
  return { shards, shard: Number(raw) };
}

function reconcileStrategy(env: Env): ReconcileStrategy {
  const raw = env.PEPR_RECONCILE_STRATEGY?.trim();
  if (!raw) return "kind";
  if (!(RECONCILE_STRATEGIES as readonly string[]).includes(raw))
    invalid("PEPR_RECONCILE_STRATEGY", `must be one of ${RECONCILE_STRATEGIES.join(", ")}`, raw);
  return raw as ReconcileStrategy;
}

const LEVELS = ["error", "warn", "info", "debug"] as const;

export function parseConfig(env: Env): Readonly<OperatorConfig> {
  const level = (env.LOG_LEVEL || "info").toLowerCase();
  if (!(LEVELS as readonly string[]).includes(level))
    invalid("LOG_LEVEL", `must be one of ${LEVELS.join(", ")}`, level);
  const tls = {
    certFile: env.TLS_CERT_FILE || undefined,
    keyFile: env.TLS_KEY_FILE || undefined,
    caFile: env.TLS_CA_FILE || undefined,
  };
  if (Boolean(tls.certFile) !== Boolean(tls.keyFile)) invalid("TLS_CERT_FILE/TLS_KEY_FILE", "must be set together");
  const peprMode =
    env.PEPR_MODE === "build"
      ? "build"
      : env.PEPR_MODE === "dev"
        ? "dev"
        : env.PEPR_WATCH_MODE === "true"
          ? "watch"
          : "admission";
  const cfg: OperatorConfig = {
    peprMode,
    ...scopeSettings(env),
    allowCrossNamespace: bool(env, "ATB_ALLOW_CROSS_NAMESPACE", false),
    executorServiceAccount: serviceAccountName(env, "ATB_EXECUTOR_SERVICE_ACCOUNT", DEFAULT_EXECUTOR),
    broker: {
      url: brokerUrl(env.ATB_BROKER_URL),
      tls,
      insecure: bool(env, "ATB_INSECURE", false),
      attemptTimeoutMs: int(env, "ATB_BROKER_TIMEOUT_MS", BROKER.attemptTimeoutMs, 100, 120_000),
      maxAttempts: int(env, "ATB_BROKER_MAX_ATTEMPTS", BROKER.maxAttempts, 1, 20),
      baseBackoffMs: int(env, "ATB_BROKER_BACKOFF_BASE_MS", BROKER.baseBackoffMs, 10, 60_000),
      maxBackoffMs: int(env, "ATB_BROKER_BACKOFF_MAX_MS", BROKER.maxBackoffMs, 10, 300_000),
      connections: int(env, "ATB_BROKER_CONNECTIONS", BROKER.connections, 1, 256),
    },
    taskDeadlineMs: int(env, "ATB_TASK_DEADLINE_SECONDS", 600, 5, 86_400) * 1000,
    rolloutTimeoutMs: int(env, "ATB_ROLLOUT_TIMEOUT_SECONDS", 300, 1, 86_400) * 1000,
    rolloutWatch: bool(env, "ATB_ROLLOUT_WATCH", true),
    watchSilenceMs: int(env, "ATB_WATCH_SILENCE_SECONDS", 10, 1, 300) * 1000,
    maxTaskAttempts: int(env, "ATB_TASK_MAX_ATTEMPTS", 5, 1, 100),
    sweepIntervalMs: int(env, "ATB_SWEEP_INTERVAL_SECONDS", 30, 1, 3_600) * 1000,
    sweepPageSize: int(env, "ATB_SWEEP_PAGE_SIZE", 100, 1, 10_000),
    sweepFinishedEvery: int(env, "ATB_SWEEP_FINISHED_EVERY", 10, 1, 1_000),
    ttlSecondsAfterFinished: int(env, "ATB_TTL_SECONDS_AFTER_FINISHED", 86_400, 0, MAX_TTL_SECONDS),
    workers: int(env, "ATB_WORKERS", 8, 1, 256),
    apiQps: int(env, "ATB_API_QPS", 50, 1, 10_000),
    wasmTierUp: bool(env, "ATB_WASM_TIER_UP", false),
    heapGrowingPercent: int(env, "ATB_HEAP_GROWING_PERCENT", 20, 0, 1_000),
    optimizeForSize: bool(env, "ATB_OPTIMIZE_FOR_SIZE", true),
    logLevel: level as OperatorConfig["logLevel"],
    metricsPort: int(env, "ATB_METRICS_PORT", 9464, 0, 65_535),
    metricsHost: env.ATB_METRICS_HOST?.trim() || "127.0.0.1",
    taskBackoffBaseMs: int(env, "ATB_TASK_BACKOFF_MS", 1_000, 10, 600_000),
    taskBackoffMaxMs: int(env, "ATB_TASK_MAX_BACKOFF_MS", 60_000, 10, 3_600_000),
    peprPort: int(env, "ATB_PEPR_PORT", 3000, 1, 65_535),
    maxReplicas: int(env, "ATB_MAX_REPLICAS", 1000, 0, 100_000),
    maxPatchBytes: int(env, "ATB_MAX_PATCH_BYTES", 65_536, 64, 1_048_576),
    allowCreate: bool(env, "ATB_ALLOW_CREATE", false),
    ...shardSettings(env),
    reconcileStrategy: reconcileStrategy(env),
  };
  return Object.freeze(cfg);
}

let loaded: Readonly<OperatorConfig> | undefined;

/**
 * Hands Pepr the reconcile strategy (Pepr reads PEPR_RECONCILE_STRATEGY on every watch event):
 * unset, Pepr would keep one queue per task name forever. The one write to the environment.
 */
export function applyPeprSettings(config: Readonly<OperatorConfig>, env: NodeJS.ProcessEnv = process.env): void {
  env.PEPR_RECONCILE_STRATEGY = config.reconcileStrategy;
}

/** The process's configuration, parsed from process.env once (the only read of the environment). */
export function loadConfig(): Readonly<OperatorConfig> {
  loaded ??= parseConfig(process.env);
  return loaded;
}
