// The kube adapter: every Kubernetes API call the operator makes goes through here. One undici
// keep-alive pool per API server (kubernetes-fluent-client opens a new agent per request), a
// client-side token bucket (ATB_API_QPS) so a burst of tasks queues instead of storming the API
// server, dry-run and field-manager support, and conversion of every failure into KubeError with
// the API server's own message. `KubeApi` is the narrow port the pipeline, the status writer and
// the actions use; tests give them an in-memory fake (tests/helpers/fake-kube.ts).
import { KubeConfig } from "@kubernetes/client-node";
import { Pool } from "undici";
import type { IncomingHttpHeaders } from "node:http";
import { AtbError, messageOf } from "../errors";
import { FIELD_MANAGER } from "../../../crds/agenttask";
import { KubeError, isNotFound, withoutObjectDump, type KubeStatusBody } from "./errors";

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

export class KubeClient implements OperatorKube {
  private readonly pool: Pool;
  private readonly limiter: RateLimiter;
  private headers: Record<string, string> = {};
  private headersAt = 0;
  /** Requests sent (for tests and the benchmark's write accounting). */
  readonly counts = { requests: 0, writes: 0 };

  constructor(
    private readonly kc: KubeConfig,
    readonly server: string,
    tls: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; rejectUnauthorized: boolean },
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
  as(username: string): KubeApi {
    const headers = { "impersonate-user": username };
    const api: KubeApi = {
      request: <T>(req: KubeRequest, dryRun = false) => this.send<T>(req, dryRun, headers),
      get: <T>(path: string, query?: Record<string, string>) => getOrUndefined<T>(api, path, query),
    };
    return api;
  }

  request<T>(req: KubeRequest, dryRun = false): Promise<T> {
    return this.send<T>(req, dryRun);
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
    let status: KubeStatusBody = {};
    try {
      status = JSON.parse(text) as KubeStatusBody;
    } catch {
      status = { message: text.slice(0, 500) };
    }
    throw new KubeError(
      res.statusCode,
      status.reason ?? "",
      withoutObjectDump(status.message || `HTTP ${res.statusCode} from ${req.method} ${req.path}`),
    );
  }

  /** GET that returns undefined on 404. */
  get<T>(path: string, query?: Record<string, string>): Promise<T | undefined> {
    return getOrUndefined<T>(this, path, query);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
