// The shape of bench/results.json: one type per scenario's result and BenchResults for the whole
// file. The scenarios return these, the report reads them; docs/benchmarks.md describes the
// figures. A key added or renamed here changes the file's format.
import type { Memory, Percentiles, Spread } from "./measure";
import type { Settings } from "./settings";

/** A scenario that threw: recorded with its error, the other scenarios still run. */
export interface ScenarioFailure {
  error: string;
}
export type Outcome<T> = T | ScenarioFailure;

export function failed<T extends object>(o: Outcome<T> | undefined): o is ScenarioFailure {
  return o !== undefined && "error" in o;
}

/** The result, or undefined when the scenario did not run or failed. */
export function succeeded<T extends object>(o: Outcome<T> | undefined): T | undefined {
  return o === undefined || failed(o) ? undefined : o;
}

// ---------------------------------------------------------------------------------------------
// Broker path

export interface LoadSummary {
  ratePerS: Spread;
  p50Ms: Spread;
  p99Ms: Spread;
  /** Failed calls over all repeats. */
  errors: number;
}

export const LOOPS = ["clientToBroker", "rawToTrivial", "rawToBroker", "clientToTrivial"] as const;
export type Loop = (typeof LOOPS)[number];

export interface BrokerRatios {
  /** The target ratio (docs/benchmarks.md): broker client against the reference broker / raw HTTPS to a trivial endpoint. */
  ratioClientBrokerToRawTrivial: Spread;
  /** The client's own overhead, same endpoint: client / raw, both against the reference broker. */
  ratioClientToRawSameBroker: Spread;
  /** The client's own overhead, same endpoint: client / raw, both against the trivial endpoint. */
  ratioClientToRawSameTrivial: Spread;
}

export type BrokerResult = {
  concurrency: number;
  connections: number;
  secondsPerMeasurement: number;
} & Record<Loop, LoadSummary> &
  BrokerRatios;

// ---------------------------------------------------------------------------------------------
// End to end (scenarios "scale" and "update-config")

export type Side = "operator" | "limit";

/** One end-to-end run: N tasks through the operator or through the limit, at one mode. */
export interface RunResult {
  side: Side;
  /** "burst" or "<rate>/s". */
  mode: string;
  repeat: number;
  tasks: number;
  createErrors: number;
  /** Tasks per terminal phase (CreateFailed for refused creates). */
  phases: Record<string, number>;
  /** tasks per second from the first create sent to the last task terminal. */
  throughput: number;
  makespanS: number;
  createSeconds: number;
  latencyS: Percentiles;
  /** Operator runs: median seconds spent between the phases, as the watch saw them (the limit writes one status only). */
  stagesS?: Record<string, number>;
  cpuSeconds: number;
  cpuSecondsPer1000: number;
  peakRssMiB: number;
  /** The side's own requests (API server audit log) per task, by "verb resource[/subresource][ dry-run][ (as executor)]". */
  apiRequestsPerTask: Record<string, number>;
  /** All of them per task, and per Completed (allowed and applied) task. */
  requestsPerTask: number;
  requestsPerCompletedTask: number;
  /** Writes of agenttasks/status per Completed task. */
  statusWritesPerCompletedTask: number;
  /** Event writes (create/patch, core or events.k8s.io) per task. */
  eventsPerTask: number;
  /** Requests answered other than 2xx, per task. */
  failedRequestsPerTask: number;
  /** Limit runs: what the limit counted itself per task (a cross-check) and its target write conflicts (409, written again). */
  limitClient?: { requestsPerTask: number; conflicts: number };
}

export interface LatencySpread {
  p50: Spread;
  p95: Spread;
  p99: Spread;
}

/** One mode over the repeats: medians and spreads, operator against limit (paired by repeat). */
export interface ModeSummary {
  operatorThroughput: Spread;
  limitThroughput: Spread;
  /** operator / limit throughput. */
  throughputFractionOfLimit: Spread;
  operatorLatencyS: LatencySpread;
  limitLatencyS: LatencySpread;
  /** operator / limit latency. */
  latencyRatio: { p50: Spread; p99: Spread };
  /** operator − limit latency, seconds. */
  addedLatencyS: { p50: Spread; p99: Spread };
  operatorCpuSecondsPer1000: Spread;
  limitCpuSecondsPer1000: Spread;
  operatorPeakRssMiB: Spread;
  operatorStagesS: Record<string, number>;
  operatorRequestsPerTask: Spread;
  limitRequestsPerTask: Spread;
  operatorRequestsPerCompletedTask: Spread;
  limitRequestsPerCompletedTask: Spread;
  operatorStatusWritesPerCompletedTask: Spread;
  limitStatusWritesPerCompletedTask: Spread;
  operatorEventsPerTask: Spread;
  limitEventsPerTask: Spread;
  /** Medians by key over the repeats (a key missing from a run counts 0 there). */
  operatorApiRequestsPerTask: Record<string, number>;
  limitApiRequestsPerTask: Record<string, number>;
}

export interface E2eResult {
  /** What the tasks do: LOW scale of Deployments (with rollouts) or MEDIUM update-config of ConfigMaps. */
  action: string;
  targetKind: string;
  targets: number;
  runs: RunResult[];
  /** By mode ("burst", "10/s", ...). */
  summary: Record<string, ModeSummary>;
}

// ---------------------------------------------------------------------------------------------
// Restart at scale

/** The operator's own view of its memory (prom-client default metrics), in MiB. */
export type HeapFigures = Record<string, number>;

export interface RestartMeasurement extends Memory {
  restart: number;
  stopSeconds: number;
  healthySeconds: number;
  readySeconds: number;
  brokerCalls: number;
  writes: number;
  writesByResource: Record<string, number>;
  cpuSecondsToReady: number;
  cpuSecondsAfterWindow: number;
  heap: HeapFigures;
  observedSeconds: number;
}

export interface RestartSeries {
  finishedTasks: number;
  fill: Settings["fill"];
  finishedPhases: Record<string, number>;
  fillSeconds: number;
  fillThroughput: number;
  observeSecondsAfterReady: number;
  readySeconds: Spread;
  brokerCalls: Spread;
  writes: Spread;
  rssMiB: Spread;
  peakRssMiB: Spread;
  cpuSecondsAfterWindow: Spread;
  restarts: RestartMeasurement[];
}

export interface RestartResult extends RestartSeries {
  /** The same restart with no task in the operator's namespaces. */
  baselineNoTasks: Pick<RestartSeries, "readySeconds" | "rssMiB" | "peakRssMiB">;
}

// ---------------------------------------------------------------------------------------------
// Shards

/** One shard count of the shards scenario: the burst through n watcher processes. */
export interface ShardRun {
  shards: number;
  throughput: number;
  /** throughput / the limit's throughput (the same burst, this scenario's limit run). */
  ratioToLimit: number;
  /** The operator side's run (CPU summed over the n processes; peak RSS is the first process's). */
  run: RunResult;
  /** Tasks written (status or labels) by each shard "i/N", from the API server's audit log. */
  tasksByShard: Record<string, number>;
  /** Deployments written by each shard. */
  targetsByShard: Record<string, number>;
  /** Must be empty: targets and tasks written by more than one shard. */
  targetsWrittenByTwoShards: string[];
  tasksWrittenByTwoShards: string[];
  /** Must be empty: written by a shard other than the one the target hashes to. */
  targetsWrittenByAnotherShard: string[];
  tasksWrittenByAnotherShard: string[];
  /** VmHWM of each watcher process (shard 0 first), MiB. */
  processHwmMiB: number[];
}

export interface ShardsResult {
  tasks: number;
  targets: number;
  /** The limit's run of the same burst (once, before the shard counts). */
  limit: RunResult;
  runs: ShardRun[];
}

// ---------------------------------------------------------------------------------------------
// The whole file

/** Each scenario's result type, by the scenario's name (settings.ts lists the names). */
export interface ScenarioResultOf {
  broker: BrokerResult;
  scale: E2eResult;
  "update-config": E2eResult;
  shards: ShardsResult;
  restart: RestartResult;
}

/** A scenario's key is absent when it was not selected. */
export type ScenarioResults = { [K in keyof ScenarioResultOf]?: Outcome<ScenarioResultOf[K]> };

export interface MachineFacts {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  kubernetes: string;
  etcd: string;
  opa: string;
  kwok: string;
  loadAverageAtStart: number[];
}

/** The settings as recorded: the output path left out, what the operator was given and who the limit is added. */
export type RecordedSettings = Omit<Settings, "out"> & {
  operatorEnv: Record<string, string>;
  limit: { user: string; writesTargetsAs: string; brokerCalls: 0 };
};

export interface Target {
  target: string;
  value: string;
  met: boolean | null;
}

export interface OperatorLifetime extends Memory {
  heap: HeapFigures;
  note: string;
}

export interface ProfileEntry {
  where: string;
  seconds: number;
  share: number;
}

/** Self time of the operator's --cpu-prof files, by package or file and by function. */
export interface ProfileSummary {
  files: number;
  totalSeconds: number;
  byArea: ProfileEntry[];
  byFunction: ProfileEntry[];
}

/** One row of the table docs/benchmarks.md leads with: an end-to-end scenario's burst (medians). */
export interface HeadlineRow {
  scenario: string;
  tasks: number;
  limitTasksPerS: number;
  operatorTasksPerS: number;
  /** operator / limit throughput. */
  ratio: number;
  /** operator p99 / limit p99 latency. */
  p99Ratio: number;
  operatorRequestsPerTask: number;
  limitRequestsPerTask: number;
  /** The operator's highest peak RSS over all of the scenario's runs, MiB. */
  operatorPeakRssMiB: number;
}

export interface BenchResults extends ScenarioResults {
  benchmark: string;
  startedAt: string;
  finishedAt: string;
  durationMinutes: number;
  machine: MachineFacts & { loadAverageAtEnd: number[] };
  settings: RecordedSettings;
  units: Record<string, string>;
  /** The end-to-end scenarios at a glance (the burst). */
  headline: HeadlineRow[];
  targets: Target[];
  operatorLifetime: OperatorLifetime;
  profile?: ProfileSummary;
}
