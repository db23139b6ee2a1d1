// Kubernetes watch streams: what a watch request names, the events it yields, and the incremental
// parser of the API server's answer (one JSON object per line, `{"type": ..., "object": ...}`,
// arriving in chunks that may split a line, or a multi-byte character, anywhere).
//
// A watch that asks for `allowWatchBookmarks` also gets BOOKMARK events: an object whose only
// content is metadata.resourceVersion, the point up to which the stream has sent everything (a
// watch restarted from there misses nothing). An ERROR event carries a Status; code 410 (Gone,
// "too old resource version") means the resourceVersion asked for is no longer in the API
// server's history and the watch must start again from a fresh state.
import { KubeError, type KubeStatusBody } from "./errors";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** One event of a watch stream. For ERROR, `object` is the API server's Status. */
export type WatchEvent<T = unknown> =
  | { type: "ADDED" | "MODIFIED" | "DELETED"; object: T }
  | { type: "BOOKMARK"; object: { metadata: { resourceVersion: string } } }
  | { type: "ERROR"; object: KubeStatusBody };

/** A watch of one collection (`resourcePath(kind, namespace)`). */
export interface WatchRequest {
  /** The collection's REST path, e.g. /apis/apps/v1/namespaces/shop/deployments. */
  path: string;
  /** Events after this version only; absent: every existing object as ADDED first, then changes. */
  resourceVersion?: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** The API server ends the stream after this long (it picks a default of its own without it). */
  timeoutSeconds?: number;
  /** Aborting ends the watch: watch() then resolves as if the server had ended it. */
  signal?: AbortSignal;
}

/**
 * Starts a watch and hands each event to `onEvent`, in order, as it arrives. Resolves when the
 * stream ends (the server's timeout, its restart, or `signal` aborted); rejects with a KubeError
 * when the watch is refused (403, 410, ...: the API server's Status) or the connection fails
 * (status 0). An exception thrown by `onEvent` ends the stream and rejects with it.
 */
export type WatchFn = <T = unknown>(req: WatchRequest, onEvent: (event: WatchEvent<T>) => void) => Promise<void>;

/** The query of a watch request: watch=1, bookmarks on, and the request's options. */
export function watchQuery(req: WatchRequest): Record<string, string> {
  const q: Record<string, string> = { watch: "1", allowWatchBookmarks: "true" };
  if (req.resourceVersion !== undefined) q.resourceVersion = req.resourceVersion;
  if (req.fieldSelector) q.fieldSelector = req.fieldSelector;
  if (req.labelSelector) q.labelSelector = req.labelSelector;
  if (req.timeoutSeconds !== undefined) q.timeoutSeconds = String(Math.max(1, Math.floor(req.timeoutSeconds)));
  return q;
}

/** Whether an error or an ERROR event says the resourceVersion is too old (410 Gone, "Expired"). */
export function isGone(e: unknown): boolean {
  if (e instanceof KubeError) return e.status === 410 || e.apiReason === "Expired" || e.apiReason === "Gone";
  if (e && typeof e === "object" && (e as { type?: unknown }).type === "ERROR") {
    const s = (e as { object?: KubeStatusBody }).object ?? {};
    return s.code === 410 || s.reason === "Expired" || s.reason === "Gone";
  }
  return false;
}

/** The KubeError an ERROR event stands for. */
export function watchEventError(e: { object: KubeStatusBody }, path: string): KubeError {
  const s = e.object ?? {};
  return new KubeError(s.code ?? 500, s.reason ?? "", s.message || `ERROR event on the watch of ${path}`);
}

/** Longest line the parser keeps (one event; the API server stores objects up to about 1.5 MB). */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024;

const TYPES: ReadonlySet<string> = new Set(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]);

/**
 * Newline-delimited JSON events, parsed as chunks arrive: push() returns the events completed by
 * a chunk, end() the last one if the stream did not end with a newline. A line that is not a
 * watch event, or longer than MAX_EVENT_BYTES, throws (the stream is then not trustworthy; the
 * caller restarts it). Blank lines are skipped.
 */
export class WatchParser {
  private readonly decoder = new TextDecoder("utf-8");
  private partial = "";

  constructor(private readonly maxLine = MAX_EVENT_BYTES) {}

  push(chunk: Uint8Array | string): WatchEvent[] {
    const text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const events: WatchEvent[] = [];
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      const line = this.partial + text.slice(start, nl);
      this.partial = "";
      start = nl + 1;
      const e = this.line(line);
      if (e) events.push(e);
    }
    this.partial += text.slice(start);
    if (this.partial.length > this.maxLine)
      throw new Error(`watch event longer than ${this.maxLine} characters without a line end`);
    return events;
  }

  end(): WatchEvent[] {
    const rest = this.partial + this.decoder.decode();
    this.partial = "";
    const e = this.line(rest);
    return e ? [e] : [];
  }

  private line(line: string): WatchEvent | undefined {
    const text = line.trim();
    if (!text) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new Error(`watch stream line is not JSON: ${text.slice(0, 80)}`);
    }
    const type = (v as { type?: unknown } | null)?.type;
    const object = (v as { object?: unknown } | null)?.object;
    if (typeof type !== "string" || !TYPES.has(type) || object === null || typeof object !== "object")
      throw new Error(`watch stream line is not an event: ${text.slice(0, 80)}`);
    return { type, object } as WatchEvent;
  }
}
