// Shared pieces of the benchmark: statistics, /proc readings, a small API client of its own (user
// agent atb-bench, so the API server's audit log never mistakes the benchmark's writes for the
// operator's), and a watch that records when each task reached each phase.
import { readFileSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import { Pool } from "undici";

export const BENCH_USER_AGENT = "atb-bench/0.1";
export const TERMINAL = ["Completed", "Denied", "Failed"];
export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Statistics

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
    values: v.map(round),
  };
}

export function percentiles(values: number[]): { p50: number; p95: number; p99: number; max: number; n: number } {
  const s = [...values].sort((a, b) => a - b);
  return {
    p50: round(quantile(s, 0.5)),
    p95: round(quantile(s, 0.95)),
    p99: round(quantile(s, 0.99)),
    max: round(s[s.length - 1] ?? NaN),
    n: s.length,
  };
}

export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
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

/** VmRSS and VmHWM (peak RSS over the process's life) in MiB. */
export function memory(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: round(kb("VmRSS") / 1024, 1), hwmMiB: round(kb("VmHWM") / 1024, 1) };
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
  reset(): void {
    this.peak = 0;
  }
  max(): number {
    this.sample();
    return this.peak;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

// ---------------------------------------------------------------------------------------------
// API client

export interface ApiAnswer<T> {
  status: number;
  body: T;
}

export class Api {
  private constructor(
    private readonly pool: Pool,
    private readonly watchPool: Pool,
  ) {}

  static open(kubeconfig: string): Api {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const cluster = kc.getCurrentCluster()!;
    const user = kc.getCurrentUser()!;
    const b64 = (s: string | undefined) => (s ? Buffer.from(s, "base64") : undefined);
    const connect = {
      ca: b64(cluster.caData),
      cert: b64(user.certData),
      key: b64(user.keyData),
      rejectUnauthorized: true,
    };
    const server = cluster.server.replace(/\/+$/, "");
    return new Api(
      new Pool(server, { connections: 32, keepAliveTimeout: 30_000, connect }),
      new Pool(server, { connections: 8, connect }),
    );
  }

  async request<T = unknown>(
    method: "GET" | "POST" | "PATCH" | "DELETE" | "PUT",
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<ApiAnswer<T>> {
    const res = await this.pool.request({
      path,
      method,
      headers: {
        accept: "application/json",
        "user-agent": BENCH_USER_AGENT,
        ...(body === undefined ? {} : { "content-type": contentType }),
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      /* plain text (metrics) */
    }
    return { status: res.statusCode, body: parsed as T };
  }

  async ok<T = unknown>(
    method: "GET" | "POST" | "PATCH" | "DELETE" | "PUT",
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<T> {
    const r = await this.request<T>(method, path, body, contentType);
    if (r.status < 200 || r.status >= 300)
      throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 400)}`);
    return r.body;
  }

  /** The API server's own request counters (apiserver_request_total), summed by verb/resource/subresource/dry-run. */
  async requestCounters(): Promise<Map<string, number>> {
    const r = await this.pool.request({ path: "/metrics", method: "GET", headers: { "user-agent": BENCH_USER_AGENT } });
    const text = await r.body.text();
    const out = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (!line.startsWith("apiserver_request_total{")) continue;
      const labels = Object.fromEntries(
        [...line.matchAll(/(\w+)="([^"]*)"/g)].map(m => [m[1], m[2]] as [string, string]),
      );
      const value = Number(line.slice(line.lastIndexOf(" ") + 1));
      const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ""}${labels.dry_run ? " dry-run" : ""}`;
      out.set(key, (out.get(key) ?? 0) + value);
    }
    return out;
  }

  /** A watch: calls onEvent for each event until stop(); reconnects from the last resourceVersion. */
  watch(path: string, resourceVersion: string, onEvent: (type: string, obj: TaskObject) => void): () => void {
    let stopped = false;
    let rv = resourceVersion;
    const controller = new AbortController();
    const loop = async () => {
      while (!stopped) {
        try {
          const res = await this.watchPool.request({
            path: `${path}?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=3600`,
            method: "GET",
            headers: { accept: "application/json", "user-agent": BENCH_USER_AGENT },
            signal: controller.signal,
            headersTimeout: 0,
            bodyTimeout: 0,
          });
          const handle = (line: string) => {
            const ev = JSON.parse(line) as { type: string; object: TaskObject };
            if (ev.object?.metadata?.resourceVersion) rv = ev.object.metadata.resourceVersion;
            if (ev.type === "ERROR") throw new Error(`watch error: ${JSON.stringify(ev.object).slice(0, 200)}`);
            if (ev.type !== "BOOKMARK") onEvent(ev.type, ev.object);
          };
          await forEachLine(res.body as AsyncIterable<Buffer>, handle);
        } catch (err) {
          if (stopped) return;
          console.error(`[bench] watch ${path} restarting: ${String(err).slice(0, 200)}`);
          await sleep(500);
        }
      }
    };
    void loop();
    return () => {
      stopped = true;
      controller.abort();
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.watchPool.destroy()]);
  }
}

export interface TaskObject {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; creationTimestamp?: string };
  spec?: { target?: { name: string } };
  status?: { phase?: string; reason?: string; message?: string; conditions?: { type: string; reason: string }[] };
}

// ---------------------------------------------------------------------------------------------
// Task tracking

export interface TaskTimes {
  sentAt?: number;
  createdAt?: number;
  /** First time the watch saw the task in each phase (and "Applied": Executed=True). */
  seen: Record<string, number>;
  terminal?: string;
  doneAt?: number;
  message?: string;
}

/** Watches the tasks of one namespace and records when each reached each phase. */
export class Tracker {
  readonly tasks = new Map<string, TaskTimes>();
  private stop?: () => void;
  private waiters: (() => void)[] = [];
  terminalCount = 0;

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
    if (TERMINAL.includes(phase) && t.doneAt === undefined) {
      t.doneAt = now;
      t.terminal = phase;
      t.message = obj.status?.message;
      this.terminalCount++;
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    }
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
    this.terminalCount = 0;
  }

  close(): void {
    this.stop?.();
  }
}

/** Calls handle for each non-empty newline-delimited line of a byte stream. */
async function forEachLine(body: AsyncIterable<Buffer>, handle: (line: string) => void): Promise<void> {
  let buf = "";
  for await (const chunk of body) {
    buf += chunk.toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) handle(line);
    }
  }
}
