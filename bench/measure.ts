// What the benchmark measures with: statistics over repeated measurements (median and spread,
// latency percentiles), a process's CPU time and memory read from /proc, and a sampler for its
// peak RSS.
import { readFileSync } from "node:fs";

export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Statistics

export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The q-quantile of sorted values, interpolated linearly; NaN when there are none. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  p25: number;
  p75: number;
  n: number;
  values: number[];
}

/** Median and spread (min–max, IQR) of repeated measurements. */
export function spread(values: number[]): Spread {
  const v = values.filter(x => Number.isFinite(x));
  const s = [...v].sort((a, b) => a - b);
  return {
    median: round(quantile(s, 0.5)),
    min: round(s[0] ?? NaN),
    max: round(s[s.length - 1] ?? NaN),
    p25: round(quantile(s, 0.25)),
    p75: round(quantile(s, 0.75)),
    n: s.length,
    // Not v.map(round): map's index would become round's digits (values[0] rounded to an integer).
    values: v.map(x => round(x)),
  };
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  n: number;
}

export function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  return {
    p50: round(quantile(s, 0.5)),
    p95: round(quantile(s, 0.95)),
    p99: round(quantile(s, 0.99)),
    max: round(s[s.length - 1] ?? NaN),
    n: s.length,
  };
}

/** The median of each key over a list of records with the same keys (those of the first). */
export function medianRecord(list: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(list[0] ?? {})) out[k] = spread(list.map(r => r[k])).median;
  return out;
}

// ---------------------------------------------------------------------------------------------
// /proc

const CLK_TCK = 100; // getconf CLK_TCK on Linux x86_64 and arm64

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

export interface Memory {
  rssMiB: number;
  hwmMiB: number;
}

/** VmRSS and VmHWM (peak RSS over the process's life) in MiB. */
export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: round(kb("VmRSS") / 1024, 1), hwmMiB: round(kb("VmHWM") / 1024, 1) };
}

/** The 1, 5 and 15 minute load averages of the machine. */
export function loadAverage(): number[] {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
}

/** Samples VmRSS of a process while it runs; max() is the highest value seen. */
export class RssSampler {
  private peak = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(
    private readonly pid: () => number | undefined,
    everyMs = 250,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }
  sample(): void {
    const pid = this.pid();
    if (!pid) return;
    try {
      this.peak = Math.max(this.peak, memory(pid).rssMiB);
    } catch {
      /* the process is restarting */
    }
  }
  max(): number {
    this.sample();
    return this.peak;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}
