// The benchmark's settings: every ATB_BENCH_* variable, read in one place. parseSettings is pure
// (environment in, frozen settings out) and fails with a message naming the variable, so a typo
// stops the run before a control plane is started rather than measuring NaN tasks.
import { join } from "node:path";

/** The scenarios, in the order they run (ATB_BENCH_SCENARIOS only selects among them). */
export const SCENARIOS = ["broker", "scale", "update-config", "shards", "restart"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
/** The end-to-end scenarios (operator and limit side by side); "e2e" in ATB_BENCH_SCENARIOS selects both. */
export const E2E_SCENARIOS = ["scale", "update-config"] as const;
export type E2eScenarioName = (typeof E2E_SCENARIOS)[number];

export interface Settings {
  /** Tasks per end-to-end run. */
  readonly tasks: number;
  /** Targets (Deployments, ConfigMaps) the end-to-end tasks are spread over. */
  readonly targets: number;
  /** Repeats of every scenario (medians and spreads are reported). */
  readonly repeats: number;
  /** Fixed creation rates (tasks/s) run besides the burst; empty: the burst only. */
  readonly rates: readonly number[];
  /** Finished tasks for the restart scenario (at most MAX_FINISHED). */
  readonly finished: number;
  /** Shard counts of the shards scenario: watcher processes on one control plane (each <= MAX_BENCH_SHARDS). */
  readonly shardCounts: readonly number[];
  /** Tasks per shard count in the shards scenario (a burst of scale tasks over the same targets). */
  readonly shardTasks: number;
  /** bulk: statuses written by the benchmark; operator: tasks the broker denies, through the pipeline. */
  readonly fill: "bulk" | "operator";
  /** Operator restarts measured. */
  readonly restarts: number;
  /** ATB_API_QPS of the operator (the limit has no client-side rate limit). */
  readonly qps: number;
  /** ATB_WORKERS of the operator and the limit's concurrency. */
  readonly workers: number;
  /** Broker path: seconds per measurement (after a 1 s warm-up). */
  readonly brokerSeconds: number;
  /** Broker path: callers in flight. */
  readonly brokerConcurrency: number;
  /** Creates in flight for the burst. */
  readonly createConcurrency: number;
  readonly scenarios: readonly ScenarioName[];
  /** node --cpu-prof on the operator, summarized in the results. */
  readonly profile: boolean;
  /** bundle: the module as `npm run build` ships it, under plain node; source: pepr.ts under tsx. */
  readonly operator: "bundle" | "source";
  /** Keep the scratch folder (logs, audit) after the run. */
  readonly keep: boolean;
  /** Where the results are written. */
  readonly out: string;
}

type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_OUT = join(__dirname, "results.json");

function invalid(name: string, rule: string, raw: string): never {
  throw new Error(`${name}: ${rule} (got "${raw.slice(0, 80)}")`);
}

/** The variable's value, or undefined when it is unset or empty (then the default applies). */
function raw(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** A whole number within [min, max] (default: at least 1). */
function int(env: Env, name: string, def: number, [min, max] = [1, Number.MAX_SAFE_INTEGER]): number {
  const v = raw(env, name);
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    invalid(
      name,
      max === Number.MAX_SAFE_INTEGER
        ? `must be a whole number >= ${min}`
        : `must be a whole number from ${min} to ${max}`,
      v,
    );
  return Number(v);
}

/** The most finished tasks the restart scenario fills (ATB_BENCH_FINISHED). */
export const MAX_FINISHED = 100_000;
/** The most watcher processes the shards scenario starts at once (ATB_BENCH_SHARDS). */
export const MAX_BENCH_SHARDS = 8;

/** Shard counts, comma-separated, each from 1 to MAX_BENCH_SHARDS, each once, ascending. */
function shardCounts(env: Env): number[] {
  const v = raw(env, "ATB_BENCH_SHARDS");
  if (v === undefined) return [1, 2, 4];
  const counts = list(v).map(c => {
    if (!/^\d+$/.test(c) || Number(c) < 1 || Number(c) > MAX_BENCH_SHARDS)
      invalid("ATB_BENCH_SHARDS", `must be comma-separated shard counts from 1 to ${MAX_BENCH_SHARDS}`, c);
    return Number(c);
  });
  return [...new Set(counts)].sort((a, b) => a - b);
}

function flag(env: Env, name: string): boolean {
  const v = raw(env, name);
  if (v === undefined) return false;
  if (/^(1|true|yes)$/i.test(v)) return true;
  if (/^(0|false|no)$/i.test(v)) return false;
  return invalid(name, "must be 1 or 0", v);
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[]): T {
  const v = raw(env, name) ?? allowed[0];
  if (!allowed.includes(v as T)) invalid(name, `must be one of ${allowed.join(", ")}`, v);
  return v as T;
}

function list(value: string): string[] {
  return value
    .split(",")
    .map(s => s.trim())
    .filter(Boolean);
}

/** Fixed rates. Unlike the other variables, set but empty means none: the burst only. */
function rates(env: Env): number[] {
  const v = env.ATB_BENCH_RATES;
  if (v === undefined) return [10];
  return list(v).map(r => {
    const n = Number(r);
    if (!Number.isFinite(n) || n <= 0)
      invalid("ATB_BENCH_RATES", "must be comma-separated tasks/s (empty: the burst only)", r);
    return n;
  });
}

function scenarios(env: Env): ScenarioName[] {
  const v = raw(env, "ATB_BENCH_SCENARIOS");
  if (v === undefined) return [...SCENARIOS];
  const names = list(v).flatMap(n => (n === "e2e" ? [...E2E_SCENARIOS] : [n]));
  for (const n of names)
    if (!SCENARIOS.includes(n as ScenarioName))
      invalid(
        "ATB_BENCH_SCENARIOS",
        `must be a comma-separated subset of ${SCENARIOS.join(",")} (e2e: both end-to-end ones)`,
        n,
      );
  // Each once, in the order they run.
  return SCENARIOS.filter(n => names.includes(n));
}

/** Every ATB_BENCH_* variable, with its default; the key order is the order results.json records. */
export function parseSettings(env: Env): Settings {
  return Object.freeze({
    tasks: int(env, "ATB_BENCH_TASKS", 1000),
    targets: int(env, "ATB_BENCH_TARGETS", 50),
    repeats: int(env, "ATB_BENCH_REPEATS", 1),
    rates: Object.freeze(rates(env)),
    finished: int(env, "ATB_BENCH_FINISHED", 10_000, [0, MAX_FINISHED]),
    shardCounts: Object.freeze(shardCounts(env)),
    shardTasks: int(env, "ATB_BENCH_SHARD_TASKS", 300),
    fill: oneOf(env, "ATB_BENCH_FILL", ["bulk", "operator"] as const),
    restarts: int(env, "ATB_BENCH_RESTARTS", 3),
    qps: int(env, "ATB_BENCH_QPS", 1000),
    workers: int(env, "ATB_BENCH_WORKERS", 8),
    brokerSeconds: int(env, "ATB_BENCH_BROKER_SECONDS", 5),
    brokerConcurrency: int(env, "ATB_BENCH_BROKER_CONCURRENCY", 8),
    createConcurrency: int(env, "ATB_BENCH_CREATE_CONCURRENCY", 16),
    scenarios: Object.freeze(scenarios(env)),
    profile: flag(env, "ATB_BENCH_PROFILE"),
    operator: oneOf(env, "ATB_BENCH_OPERATOR", ["bundle", "source"] as const),
    keep: flag(env, "ATB_BENCH_KEEP"),
    out: raw(env, "ATB_BENCH_OUT") ?? DEFAULT_OUT,
  });
}
