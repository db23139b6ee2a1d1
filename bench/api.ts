// The benchmark's own API client for the control plane: undici pools with the kubeconfig's client
// certificate, user agent atb-bench (so the API server's audit log never mistakes the benchmark's
// writes for the operator's), the API server's request counters, and a reconnecting watch.
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

interface WatchEvent {
  type: string;
  object: TaskObject;
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
    method: Method,
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

  /** request(), throwing unless the answer is 2xx. */
  async ok<T = unknown>(method: Method, path: string, body?: unknown, contentType?: string): Promise<T> {
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
      const key = counterKey(line);
      out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
    }
    return out;
  }

  /** A watch: calls onEvent for each event until the returned stop is called; reconnects from the last resourceVersion. */
  watch(path: string, resourceVersion: string, onEvent: (type: string, obj: TaskObject) => void): () => void {
    let stopped = false;
    let rv = resourceVersion;
    const controller = new AbortController();
    const handle = (line: string) => {
      const ev = JSON.parse(line) as WatchEvent;
      if (ev.object?.metadata?.resourceVersion) rv = ev.object.metadata.resourceVersion;
      if (ev.type === "ERROR") throw new Error(`watch error: ${JSON.stringify(ev.object).slice(0, 200)}`);
      if (ev.type !== "BOOKMARK") onEvent(ev.type, ev.object);
    };
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

/** "verb resource[/subresource][ dry-run]" of one apiserver_request_total line. */
function counterKey(line: string): string {
  const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map(m => [m[1], m[2]] as [string, string]));
  const sub = labels.subresource ? `/${labels.subresource}` : "";
  return `${labels.verb} ${labels.resource}${sub}${labels.dry_run ? " dry-run" : ""}`;
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
