// The kube adapter: every Kubernetes API call the operator makes goes through here. One undici
// keep-alive pool per API server (kubernetes-fluent-client opens a new agent per request), a
// client-side token bucket (ATB_API_QPS) so a burst of tasks queues instead of storming the API
// server, dry-run and field-manager support, and conversion of every failure into KubeError with
// the API server's own message. `KubeApi` is the narrow port the pipeline, the status writer and
// the actions use; tests give them an in-memory fake (tests/helpers/fake-kube.ts). Watches
// (watch.ts) run on a pool of their own: a watch holds its connection for minutes, and would
// otherwise take one of the 16 that every other request shares.
import { KubeConfig } from "@kubernetes/client-node";
import { Pool } from "undici";
import type { IncomingHttpHeaders } from "node:http";
import { AtbError, messageOf } from "../errors";
import { FIELD_MANAGER } from "../../../crds/agenttask";
import { KubeError, isNotFound, withoutObjectDump, type KubeStatusBody } from "./errors";
import { WatchParser, watchQuery, type WatchEvent, type WatchFn, type WatchRequest } from "./watch";

export interface KubeRequest {
  method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  /** Content type of PATCH bodies: merge, json (RFC 6902), strategic, or apply (server-side apply). */
  patchType?: "merge" | "json" | "strategic" | "apply";
}

/** What the operator needs from the Kubernetes API: one request, and a GET that maps 404 to undefined. */
export interface KubeApi {
  /** Sends one request; throws KubeError (with the API server's Status) on any non-2xx answer. */
  request<T>(req: KubeRequest, dryRun?: boolean): Promise<T>;
  /** GET that returns undefined on 404. */
  get<T>(path: string, query?: Record<string, string>): Promise<T | undefined>;
  /**
   * A streaming watch of one collection (watch.ts). Optional: a port without it (a test's own
   * fake) cannot watch, and callers then poll with get().
   */
  watch?: WatchFn;
}

/**
 * The operator's own client, which can also act as another identity: the per-namespace executor
 * it impersonates for every read, dry run and write of a target (docs/deployment.md, "The executor").
 */
export interface OperatorKube extends KubeApi {
  /** The same connection acting as `username` (Impersonate-User; a ServiceAccount gets its groups from the API server). */
  as(username: string): KubeApi;
}

const PATCH_TYPES = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
} as const;

/** Identifies the operator's requests in API server audit logs. */
export const USER_AGENT = "atb-operator/0.1";

/** Token bucket: at most qps requests per second on average, bursts up to qps. */
export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly qps: number) {
    this.tokens = qps;
  }
  async take(): Promise<void> {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.qps, this.tokens + ((now - this.last) / 1000) * this.qps);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await new Promise(r => setTimeout(r, Math.ceil(((1 - this.tokens) / this.qps) * 1000)));
    }
  }
}

/** GET through `api` that returns undefined on 404. */
export async function getOrUndefined<T>(
  api: Pick<KubeApi, "request">,
  path: string,
  query?: Record<string, string>,
): Promise<T | undefined> {
  try {
    return await api.request<T>({ method: "GET", path, query });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface KubeClientOptions {
  qps: number;
  /** Per-request timeout. */
  timeoutMs?: number;
  kubeconfig?: KubeConfig;
  /** Appended to USER_AGENT in parentheses (a watcher's shard), so the audit log tells shards apart. */
  userAgentSuffix?: string;
}

/** How long a watch's answer may take to start (its headers); the stream itself may be quiet for minutes. */
const WATCH_HEADERS_TIMEOUT_MS = 30_000;
/** Slack past a watch's timeoutSeconds before a silent stream counts as a dead connection. */
const WATCH_BODY_SLACK_MS = 60_000;

type Tls = { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; rejectUnauthorized: boolean };

export class KubeClient implements OperatorKube {
  private readonly pool: Pool;
  /** Watches' own connections (made on first use, no limit: one per open watch, reused after it ends). */
  private watchPool?: Pool;
  private readonly limiter: RateLimiter;
  private headers: Record<string, string> = {};
  private headersAt = 0;
  /**
   * Requests sent (for tests and the benchmark's write accounting). A watch counts once in
   * `requests` when it starts, and in `watches`; its events are not requests.
   */
  readonly counts = { requests: 0, writes: 0, watches: 0 };

  constructor(
    private readonly kc: KubeConfig,
    readonly server: string,
    private readonly tls: Tls,
    private readonly opts: KubeClientOptions,
  ) {
    this.pool = new Pool(server, { connections: 16, pipelining: 1, keepAliveTimeout: 30_000, connect: { ...tls } });
    this.limiter = new RateLimiter(opts.qps);
  }

  /** From KUBECONFIG (or the in-cluster service account). */
  static async fromEnvironment(opts: KubeClientOptions): Promise<KubeClient> {
    const kc = opts.kubeconfig ?? new KubeConfig();
    if (!opts.kubeconfig) kc.loadFromDefault();
    const cluster = kc.getCurrentCluster();
    if (!cluster)
      throw new AtbError("CONFIG_INVALID", "no Kubernetes cluster in the kubeconfig or the pod's service account");
    const https: {
      ca?: Buffer;
      cert?: Buffer;
      key?: Buffer;
      rejectUnauthorized?: boolean;
      headers?: IncomingHttpHeaders;
    } = {};
    await kc.applyToHTTPSOptions(https as never);
    const tls = { ca: https.ca, cert: https.cert, key: https.key, rejectUnauthorized: !cluster.skipTLSVerify };
    return new KubeClient(kc, cluster.server.replace(/\/+$/, ""), tls, opts);
  }

  /** Bearer tokens (in-cluster) rotate: re-read the auth headers every minute. */
  private async authHeaders(): Promise<Record<string, string>> {
    if (Date.now() - this.headersAt < 60_000) return this.headers;
    const o: { headers?: Record<string, string> } = { headers: {} };
    await this.kc.applyToHTTPSOptions(o as never);
    this.headers = o.headers ?? {};
    this.headersAt = Date.now();
    return this.headers;
  }

  /**
   * Requests as `username`: the API server authorizes the operator to impersonate that user
   * (`impersonate` on the ServiceAccount), then authorizes the request as that user, and its audit
   * log records both. No Impersonate-Group: for a ServiceAccount the API server adds its groups.
   */
  as(username: string): KubeApi & { watch: WatchFn } {
    const headers = { "impersonate-user": username };
    const api: KubeApi & { watch: WatchFn } = {
      request: <T>(req: KubeRequest, dryRun = false) => this.send<T>(req, dryRun, headers),
      get: <T>(path: string, query?: Record<string, string>) => getOrUndefined<T>(api, path, query),
      watch: <T>(req: WatchRequest, onEvent: (e: WatchEvent<T>) => void) => this.stream<T>(req, onEvent, headers),
    };
    return api;
  }

  request<T>(req: KubeRequest, dryRun = false): Promise<T> {
    return this.send<T>(req, dryRun);
  }

  /** A watch as the operator itself (watch.ts has the contract). */
  watch<T = unknown>(req: WatchRequest, onEvent: (e: WatchEvent<T>) => void): Promise<void> {
    return this.stream<T>(req, onEvent);
  }

  private async send<T>(req: KubeRequest, dryRun: boolean, extra?: Record<string, string>): Promise<T> {
    await this.limiter.take();
    const query = new URLSearchParams(req.query ?? {});
    if (req.method !== "GET" && req.method !== "DELETE") query.set("fieldManager", FIELD_MANAGER);
    if (dryRun) query.set("dryRun", "All");
    const qs = query.toString();
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": this.opts.userAgentSuffix ? `${USER_AGENT} (${this.opts.userAgentSuffix})` : USER_AGENT,
      ...(await this.authHeaders()),
      ...extra,
    };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["content-type"] = req.method === "PATCH" ? PATCH_TYPES[req.patchType ?? "merge"] : "application/json";
    }
    this.counts.requests++;
    if (req.method !== "GET" && !dryRun) this.counts.writes++;
    let res;
    try {
      res = await this.pool.request({
        path: qs ? `${req.path}?${qs}` : req.path,
        method: req.method,
        headers,
        body,
        headersTimeout: this.opts.timeoutMs ?? 30_000,
        bodyTimeout: this.opts.timeoutMs ?? 30_000,
      });
    } catch (err) {
      throw new KubeError(0, "NetworkError", `Kubernetes API ${req.method} ${req.path} failed: ${messageOf(err)}`);
    }
    const text = await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) return (text ? JSON.parse(text) : {}) as T;
    throw statusError(res.statusCode, text, req.method, req.path);
  }

  /**
   * One watch: its start waits for the rate limiter and counts as one request; the events that
   * follow are parsed line by line as they arrive, on a connection of the watch pool.
   */
  private async stream<T>(
    req: WatchRequest,
    onEvent: (e: WatchEvent<T>) => void,
    extra?: Record<string, string>,
  ): Promise<void> {
    const res = await this.openWatch(req, extra);
    if (!res) return;
    const parser = new WatchParser();
    const chunks = res.body[Symbol.asyncIterator]();
    /** The events of the next chunk (done: the body ended); undefined when aborted. */
    const next = async (): Promise<{ events: WatchEvent[]; done: boolean } | undefined> => {
      try {
        const chunk = await chunks.next();
        return chunk.done
          ? { events: parser.end(), done: true }
          : { events: parser.push(chunk.value as Buffer), done: false };
      } catch (err) {
        if (req.signal?.aborted) return undefined;
        throw new KubeError(0, "NetworkError", `Kubernetes API watch ${req.path} broke off: ${messageOf(err)}`);
      }
    };
    try {
      for (;;) {
        const batch = await next();
        if (!batch) return;
        // An exception of the caller's ends the stream (finally) and reaches the caller as it is.
        for (const e of batch.events) onEvent(e as WatchEvent<T>);
        if (batch.done) return;
      }
    } finally {
      if (!res.body.destroyed) res.body.destroy();
    }
  }

  /** Sends a watch request: its answer when it is a stream, undefined when aborted; a refusal throws. */
  private async openWatch(req: WatchRequest, extra?: Record<string, string>) {
    await this.limiter.take();
    if (req.signal?.aborted) return undefined;
    const qs = new URLSearchParams(watchQuery(req)).toString();
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": USER_AGENT,
      ...(await this.authHeaders()),
      ...extra,
    };
    this.counts.requests++;
    this.counts.watches++;
    this.watchPool ??= new Pool(this.server, { pipelining: 1, keepAliveTimeout: 10_000, connect: { ...this.tls } });
    let res;
    try {
      res = await this.watchPool.request({
        path: `${req.path}?${qs}`,
        method: "GET",
        headers,
        signal: req.signal,
        headersTimeout: WATCH_HEADERS_TIMEOUT_MS,
        // 0: no limit (the API server's own default timeout ends the stream).
        bodyTimeout: req.timeoutSeconds ? req.timeoutSeconds * 1000 + WATCH_BODY_SLACK_MS : 0,
      });
    } catch (err) {
      if (req.signal?.aborted) return undefined;
      throw new KubeError(0, "NetworkError", `Kubernetes API watch ${req.path} failed: ${messageOf(err)}`);
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return res;
    const text = await res.body.text().catch(() => "");
    throw statusError(res.statusCode, text, "watch", req.path);
  }

  /** GET that returns undefined on 404. */
  get<T>(path: string, query?: Record<string, string>): Promise<T | undefined> {
    return getOrUndefined<T>(this, path, query);
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.watchPool?.destroy()]);
  }
}

/** A non-2xx answer as KubeError, with the API server's Status reason and message. */
function statusError(code: number, text: string, method: string, path: string): KubeError {
  let status: KubeStatusBody = {};
  try {
    status = JSON.parse(text) as KubeStatusBody;
  } catch {
    status = { message: text.slice(0, 500) };
  }
  return new KubeError(
    code,
    status.reason ?? "",
    withoutObjectDump(status.message || `HTTP ${code} from ${method} ${path}`),
  );
}
