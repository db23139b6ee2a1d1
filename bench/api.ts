// The benchmark's own API client for the control plane: undici pools with the kubeconfig's client
// certificate or token, user agent atb-bench (so the API server's audit log never mistakes the
// benchmark's writes for the operator's), and a reconnecting watch. The limit process
// (bench/limit/worker.ts) uses the same client with its own identity and user agent.
import { KubeConfig } from "@kubernetes/client-node";
import { Pool } from "undici";
import { sleep } from "./measure";

export const BENCH_USER_AGENT = "atb-bench/0.1";

export type Method = "GET" | "POST" | "PATCH" | "DELETE" | "PUT";

export interface ApiAnswer<T> {
  status: number;
  body: T;
}

/** The parts of an AgentTask the benchmark's watch reads. */
export interface TaskObject {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; creationTimestamp?: string };
  spec?: { target?: { name: string } };
  status?: { phase?: string; reason?: string; message?: string; conditions?: { type: string; reason: string }[] };
}

/** What every watched object has. */
export interface WatchedObject {
  metadata: { name: string; resourceVersion?: string };
}

interface WatchEvent<T> {
  type: string;
  object: T;
}

export interface ApiOptions {
  /** Default BENCH_USER_AGENT. */
  userAgent?: string;
  /** Keep-alive connections for requests (default 32); watches have a pool of 8. */
  connections?: number;
}

export class Api {
  private constructor(
    private readonly pool: Pool,
    private readonly watchPool: Pool,
    /** user-agent and, for a token kubeconfig, authorization. */
    private readonly headers: Record<string, string>,
  ) {}

  /** A client for the kubeconfig's current context: its client certificate or its bearer token. */
  static open(kubeconfig: string, o: ApiOptions = {}): Api {
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
    const headers: Record<string, string> = { "user-agent": o.userAgent ?? BENCH_USER_AGENT };
    if (user.token) headers.authorization = `Bearer ${user.token}`;
    return new Api(
      new Pool(server, { connections: o.connections ?? 32, keepAliveTimeout: 30_000, connect }),
      new Pool(server, { connections: 8, connect }),
      headers,
    );
  }

  async request<T = unknown>(
    method: Method,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<ApiAnswer<T>> {
    return this.send<T>(method, path, body, { contentType });
  }

  /** request() with more headers (Impersonate-User). */
  async send<T = unknown>(
    method: Method,
    path: string,
    body: unknown,
    o: { contentType?: string; headers?: Record<string, string> },
  ): Promise<ApiAnswer<T>> {
    const res = await this.pool.request({
      path,
      method,
      headers: {
        accept: "application/json",
        ...this.headers,
        ...o.headers,
        ...(body === undefined ? {} : { "content-type": o.contentType ?? "application/json" }),
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

  /** request(), throwing unless the answer is 2xx. */
  async ok<T = unknown>(method: Method, path: string, body?: unknown, contentType?: string): Promise<T> {
    const r = await this.request<T>(method, path, body, contentType);
    if (r.status < 200 || r.status >= 300)
      throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 400)}`);
    return r.body;
  }

  /**
   * A watch: calls onEvent for each event until the returned stop is called; reconnects from the
   * last resourceVersion. `onGone`: called when the server no longer has that version (410), after
   * which the watch goes on from the version onGone returns (a fresh list's).
   */
  watch<T extends WatchedObject = TaskObject>(
    path: string,
    resourceVersion: string,
    onEvent: (type: string, obj: T) => void,
    onGone?: () => Promise<string>,
  ): () => void {
    let stopped = false;
    let rv = resourceVersion;
    let gone = false;
    const controller = new AbortController();
    const handle = (line: string) => {
      const ev = JSON.parse(line) as WatchEvent<T>;
      if (ev.type === "ERROR" && (ev.object as unknown as { code?: number }).code === 410 && onGone) {
        gone = true;
        throw new Error("resourceVersion gone");
      }
      if (ev.object?.metadata?.resourceVersion) rv = ev.object.metadata.resourceVersion;
      if (ev.type === "ERROR") throw new Error(`watch error: ${JSON.stringify(ev.object).slice(0, 200)}`);
      if (ev.type !== "BOOKMARK") onEvent(ev.type, ev.object);
    };
    const loop = async () => {
      while (!stopped) {
        try {
          if (gone && onGone) {
            rv = await onGone();
            gone = false;
          }
          const res = await this.watchPool.request({
            path: `${path}?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=3600`,
            method: "GET",
            headers: { accept: "application/json", ...this.headers },
            signal: controller.signal,
            headersTimeout: 0,
            bodyTimeout: 0,
          });
          gone = res.statusCode === 410 && onGone !== undefined;
          if (res.statusCode !== 200)
            throw new Error(`HTTP ${res.statusCode} ${(await res.body.text()).slice(0, 200)}`);
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
