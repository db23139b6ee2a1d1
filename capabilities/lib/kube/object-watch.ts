// ObjectWatches: new versions of single objects (a task's target after its write) from one shared
// watch stream per (user, kind, namespace), instead of each waiter polling its object.
//
// A caller registers interest in one object with the resourceVersion of its own write and gets
// every later version of it (and its deletion) through a callback, plus a handle with the newest
// version and cancel(). Inside:
// - one watch per (user, kind, namespace) while at least one interest exists, as that user
//   (OperatorKube.as: impersonated), started from the lowest resourceVersion its interests need;
//   events are dispatched by name. Fifty tasks rolling out fifty Deployments of one namespace
//   cost one watch request. The stream stops `lingerMs` after its last interest is cancelled.
// - a stream that ends (its timeoutSeconds, a broken connection, an API server restart) starts
//   again from the last resourceVersion it saw; BOOKMARKs keep that fresh while nothing changes.
// - 410 Gone (the resourceVersion left the API server's history, e.g. after its restart): the
//   next watch starts without a resourceVersion, so the API server first sends every object of
//   the collection as it is now (ADDED), then the changes after that one snapshot. That is one
//   request and exact: a GET of each object and a watch from the newest resourceVersion among
//   them would miss a change made between two of those GETs, and would be refused again when
//   none of the objects changed since the restart (their resourceVersions are all too old).
// - an interest registered while the stream is already past its resourceVersion gets one GET
//   when a newer version of its object may have gone by before it was there (the stream keeps
//   the newest resourceVersion per name it passed, not the objects); an interest that has heard
//   nothing for `silentMs` (default 10 s) gets one GET, again after each further silence: a
//   lost event never leaves a waiter waiting until its timeout.
// - a watch the user may not make (403: the executor's Role lacks `watch`; 404 or another
//   refusal) is logged once and those interests are polled with GETs at the rollout cadence
//   (pipeline/timing.ts rolloutPollMs); the refusal is remembered for `refusedForMs`. A refused
//   watch never fails anything: it only costs the old number of GETs.
// - versions are delivered once each, oldest first, only when newer than the last one the
//   interest has (resourceVersions compared as the integers etcd makes them). Nothing is cached
//   but the newest version per interest.
import type { KubeObject } from "../action";
import { messageOf } from "../errors";
import type { Logger } from "../logger";
import { rolloutPollMs } from "../pipeline/timing";
import type { OperatorKube } from "./client";
import { KubeError } from "./errors";
import { resourcePath } from "./resources";
import { isGone, watchEventError, type WatchEvent, type WatchFn } from "./watch";

/** The object a caller waits on, and how far it already knows it. */
export interface ObjectInterest {
  /** The identity to watch and read as (the executor: system:serviceaccount:<ns>:<name>). */
  user: string;
  kind: string;
  namespace: string;
  name: string;
  /**
   * Only versions after this one are delivered: the caller's write's, or (better) the version it
   * read before writing. Registered after the write, the interest costs one GET when the stream
   * has already passed a newer version of the object (a controller's first status update often
   * comes before the write's answer is handled); registered before, it never does.
   */
  resourceVersion: string;
  /** The object as the caller has it (the write's answer): latest() until a newer version comes. */
  initial?: KubeObject;
}

/**
 * What the callback receives: a newer version (ADDED after a re-creation or in a snapshot), the
 * deletion (`object` absent when a GET found it gone), or ERROR when ObjectWatches' own GET of
 * the object failed (the interest stays; the next GET follows after the next silence or poll).
 */
export type ObjectUpdate =
  | { type: "ADDED" | "MODIFIED"; object: KubeObject }
  | { type: "DELETED"; object?: KubeObject }
  | { type: "ERROR"; error: unknown };

export interface InterestHandle {
  /** The newest version delivered, else `initial`; undefined once the object was deleted. */
  latest(): KubeObject | undefined;
  /** Ends the interest (idempotent): no more callbacks; the stream stops when it was the last. */
  cancel(): void;
}

export interface ObjectWatchOptions {
  /** An interest that heard nothing this long gets one GET (default 10 000 ms). */
  silentMs?: number;
  /** A stream without interests stops after this long (default 5 000 ms). */
  lingerMs?: number;
  /** Poll interval after a refused watch, by time since registration (default rolloutPollMs). */
  pollMs?: (waitedMs: number) => number;
  /** timeoutSeconds of each watch request (default: 5 to 6 minutes, spread as client-go does). */
  watchTimeoutSeconds?: () => number;
  /** Backoff after a failed or instantly ended watch, doubling (default 500 ms up to 30 000 ms). */
  backoffMs?: { first: number; max: number };
  /** A 403 is asked again once after this long (an API server's RBAC cache right after its start; default 1 000 ms). */
  refusedRecheckMs?: number;
  /** How long a refused watch is remembered: new streams poll at once meanwhile (default 60 000 ms). */
  refusedForMs?: number;
  log?: Logger;
  now?: () => number;
}

/** Newer than `than`: etcd's integers compared as such; anything else, when different. */
export function newerVersion(rv: string | undefined, than: string | undefined): boolean {
  if (rv === undefined || rv === "") return false;
  if (than === undefined || than === "") return true;
  if (/^\d+$/.test(rv) && /^\d+$/.test(than)) return BigInt(rv) > BigInt(than);
  return rv !== than;
}

/** Names a stream remembers the newest version of (one per object of the kind in the namespace). */
const MAX_SEEN_NAMES = 10_000;

const rvOf = (o: { metadata?: { resourceVersion?: string } } | undefined): string | undefined =>
  o?.metadata?.resourceVersion;

class Interest {
  cancelled = false;
  fetching = false;
  /** The object was found deleted (DELETED delivered). */
  gone = false;
  /** The resourceVersion of the newest version delivered (or known at registration). */
  rv: string;
  latest: KubeObject | undefined;
  heardAt: number;
  nextPollAt: number;
  constructor(
    readonly spec: ObjectInterest,
    readonly onUpdate: (u: ObjectUpdate) => void,
    readonly registeredAt: number,
  ) {
    this.rv = newerVersion(rvOf(spec.initial), spec.resourceVersion) ? rvOf(spec.initial)! : spec.resourceVersion;
    this.latest = spec.initial;
    this.heardAt = registeredAt;
    this.nextPollAt = registeredAt;
  }

  /** Records a version (or the deletion); true when it is newer than the last one and must be delivered. */
  take(type: "ADDED" | "MODIFIED" | "DELETED", obj: KubeObject): boolean {
    const rv = rvOf(obj);
    if (!newerVersion(rv, this.rv)) return false;
    this.rv = rv!;
    // A deletion a GET already found (and delivered) is not delivered again by its event.
    if (type === "DELETED" && this.gone) return false;
    this.latest = type === "DELETED" ? undefined : obj;
    this.gone = type === "DELETED";
    return true;
  }
}

interface LoopState {
  /** Failed or instantly ended watches in a row (the backoff's exponent). */
  failures: number;
  /** A 403 was already asked again once. */
  rechecked: boolean;
}
type Next = "again" | "backoff" | "stop";

/** Thrown out of the event handler to end a watch on an ERROR event. */
class StreamError extends Error {
  constructor(readonly event: WatchEvent & { type: "ERROR" }) {
    super("ERROR event");
  }
}

class Stream {
  readonly interests = new Map<string, Set<Interest>>();
  mode: "watch" | "poll" = "watch";
  /** The first watch request has gone out: s.rv can no longer be lowered for a new interest. */
  started = false;
  /** Where the stream is: the newest resourceVersion it saw (or started from); undefined: from "now". */
  rv: string | undefined;
  /**
   * The stream has handed over every event after this version without a gap (restarts go on from
   * where it was); undefined: not known (after a start from "now", until its first BOOKMARK).
   */
  coveredFrom: string | undefined;
  /** The newest resourceVersion seen per object name since coveredFrom: names, no objects. */
  readonly seen = new Map<string, string>();
  readonly life = new AbortController();
  linger?: NodeJS.Timeout;
  tick?: NodeJS.Timeout;
  constructor(
    readonly key: string,
    readonly user: string,
    readonly kind: string,
    readonly namespace: string,
  ) {}
  get size(): number {
    let n = 0;
    for (const s of this.interests.values()) n += s.size;
    return n;
  }
  all(): Interest[] {
    return [...this.interests.values()].flatMap(s => [...s]);
  }
}

export class ObjectWatches {
  private readonly streams = new Map<string, Stream>();
  /** Refused watches: key → until when new streams poll without asking. */
  private readonly refused = new Map<string, number>();
  private readonly logged = new Set<string>();
  private readonly o: Required<Omit<ObjectWatchOptions, "log">> & { log?: Logger };
  private closed = false;

  constructor(
    private readonly kube: OperatorKube,
    opts: ObjectWatchOptions = {},
  ) {
    this.o = {
      silentMs: 10_000,
      lingerMs: 5_000,
      pollMs: rolloutPollMs,
      watchTimeoutSeconds: () => 300 + Math.floor(Math.random() * 60),
      backoffMs: { first: 500, max: 30_000 },
      refusedRecheckMs: 1_000,
      refusedForMs: 60_000,
      now: Date.now,
      ...opts,
    };
  }

  /** Open streams and interests (for metrics and tests). */
  stats(): { streams: number; watching: number; polling: number; interests: number } {
    const all = [...this.streams.values()];
    return {
      streams: all.length,
      watching: all.filter(s => s.mode === "watch").length,
      polling: all.filter(s => s.mode === "poll").length,
      interests: all.reduce((n, s) => n + s.size, 0),
    };
  }

  /** Interest in one object; `onUpdate` runs for each newer version (never concurrently for one interest). */
  register(spec: ObjectInterest, onUpdate: (u: ObjectUpdate) => void): InterestHandle {
    if (this.closed) throw new Error("ObjectWatches is closed");
    const now = this.o.now();
    const it = new Interest(spec, onUpdate, now);
    const key = `${spec.user}\u0000${spec.kind}\u0000${spec.namespace}`;
    let s = this.streams.get(key);
    const fresh = !s;
    if (!s) {
      s = new Stream(key, spec.user, spec.kind, spec.namespace);
      this.streams.set(key, s);
    }
    const stream = s;
    clearTimeout(stream.linger);
    stream.linger = undefined;
    const named = stream.interests.get(spec.name) ?? new Set<Interest>();
    named.add(it);
    stream.interests.set(spec.name, named);
    if (fresh) {
      stream.rv = stream.coveredFrom = it.rv;
      if ((this.refused.get(key) ?? 0) > now) stream.mode = "poll";
      else void this.run(stream);
      this.startTicker(stream);
    }
    if (stream.mode === "poll") it.nextPollAt = now + this.o.pollMs(0);
    else if (!stream.started) {
      // Not asked yet: start from the lowest version any interest needs.
      if (newerVersion(stream.rv, it.rv)) stream.rv = stream.coveredFrom = it.rv;
    } else if (this.mayHaveMissed(stream, it)) {
      // The stream went past this version before the interest existed, and may have passed a
      // newer version of the object by: catch up once.
      void this.fetch(stream, it);
    }
    return {
      latest: () => it.latest,
      cancel: () => this.cancel(stream, it),
    };
  }

  /**
   * Whether the stream may already have passed a version of the interest's object newer than the
   * interest's own: not if the stream is not past it yet (or starts from "now", and will send
   * the object as it is then), nor if it covered everything since and saw no newer version of
   * that name go by.
   */
  private mayHaveMissed(s: Stream, it: Interest): boolean {
    if (s.rv === undefined || !newerVersion(s.rv, it.rv)) return false;
    if (s.coveredFrom === undefined || newerVersion(s.coveredFrom, it.rv)) return true;
    return newerVersion(s.seen.get(it.spec.name), it.rv);
  }

  /** Stops every stream and timer; registered interests get nothing more. */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.streams.values()]) this.stop(s);
  }

  private cancel(s: Stream, it: Interest): void {
    if (it.cancelled) return;
    it.cancelled = true;
    const named = s.interests.get(it.spec.name);
    named?.delete(it);
    if (named && named.size === 0) s.interests.delete(it.spec.name);
    if (s.size > 0 || s.linger || this.streams.get(s.key) !== s) return;
    s.linger = setTimeout(() => this.stop(s), this.o.lingerMs);
    s.linger.unref?.();
  }

  private stop(s: Stream): void {
    clearTimeout(s.linger);
    clearInterval(s.tick);
    s.life.abort();
    if (this.streams.get(s.key) === s) this.streams.delete(s.key);
    for (const it of s.all()) it.cancelled = true;
  }

  private api(s: Stream) {
    return this.kube.as(s.user);
  }

  private sleep(s: Stream, ms: number): Promise<void> {
    return new Promise(resolve => {
      if (s.life.signal.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        s.life.signal.removeEventListener("abort", done);
        resolve();
      }
      s.life.signal.addEventListener("abort", done);
    });
  }

  /** The watch loop of one stream: (re)starts until the stream stops or falls back to polling. */
  private async run(s: Stream): Promise<void> {
    const watch = this.api(s).watch;
    if (!watch) return this.poll(s);
    const path = resourcePath(s.kind, s.namespace);
    const state: LoopState = { failures: 0, rechecked: false };
    // Interests registered in the same turn join before the first request (the lowest version wins).
    await new Promise(resolve => setImmediate(resolve));
    while (!s.life.signal.aborted) {
      const next = await this.watchOnce(s, watch, path, state);
      if (next === "stop") return;
      if (next === "backoff") {
        const { first, max } = this.o.backoffMs;
        await this.sleep(s, Math.min(max, first * 2 ** Math.min(state.failures - 1, 16)));
      }
    }
  }

  /** One watch request, to its end; what the loop does next. */
  private async watchOnce(s: Stream, watch: WatchFn, path: string, state: LoopState): Promise<Next> {
    const started = this.o.now();
    let heard = false;
    s.started = true;
    try {
      const timeoutSeconds = this.o.watchTimeoutSeconds();
      await watch({ path, resourceVersion: s.rv, timeoutSeconds, signal: s.life.signal }, e => {
        heard = true;
        this.onEvent(s, e);
      });
    } catch (err) {
      if (s.life.signal.aborted) return "stop";
      return this.afterFailure(s, err instanceof StreamError ? watchEventError(err.event, path) : err, state);
    }
    if (s.life.signal.aborted) return "stop";
    // Ended by the server: again from where it was. A stream that ends at once without a word,
    // again and again, is a broken one (a proxy cutting it): back off as after a failure.
    state.rechecked = false;
    state.failures = heard || this.o.now() - started > 1_000 ? 0 : state.failures + 1;
    return state.failures > 0 ? "backoff" : "again";
  }

  private async afterFailure(s: Stream, e: unknown, state: LoopState): Promise<Next> {
    if (isGone(e)) {
      // Too old: start from the present, with every object as it is now (see the header).
      s.rv = s.coveredFrom = undefined;
      s.seen.clear();
      state.failures = 0;
      return "again";
    }
    const refused = e instanceof KubeError && e.status >= 400 && e.status < 500 && e.kind !== "KUBE_TRANSIENT";
    if (refused && e.status === 403 && !state.rechecked) {
      // Right after an API server's start its RBAC cache refuses everything for a moment.
      state.rechecked = true;
      await this.sleep(s, this.o.refusedRecheckMs);
      return "again";
    }
    if (refused) {
      this.refused.set(s.key, this.o.now() + this.o.refusedForMs);
      if (this.refused.size > 10_000) this.refused.clear();
      this.poll(s, `the watch was refused (${e.status}): ${e.message}`);
      return "stop";
    }
    state.failures++;
    state.rechecked = false;
    this.o.log?.debug("object watch ended; starting it again", {
      user: s.user,
      kind: s.kind,
      namespace: s.namespace,
      resourceVersion: s.rv,
      error: messageOf(e),
    });
    return "backoff";
  }

  /**
   * Falls back to GETs at the rollout cadence for this stream's interests (a refusal is logged
   * once per stream key; without `why`, the port has no watch at all and nothing is logged).
   */
  private poll(s: Stream, why?: string): void {
    s.mode = "poll";
    const now = this.o.now();
    for (const it of s.all()) it.nextPollAt = now;
    if (why === undefined || this.logged.has(s.key)) return;
    if (this.logged.size > 10_000) this.logged.clear();
    this.logged.add(s.key);
    this.o.log?.warn(
      `cannot watch ${s.kind}s in namespace ${s.namespace} as ${s.user}; polling each object instead ` +
        `(grant watch in the executor's Role: docs/deployment.md, "The executor"): ${why}`,
      { user: s.user, kind: s.kind, namespace: s.namespace },
    );
  }

  private onEvent(s: Stream, e: WatchEvent): void {
    if (e.type === "ERROR") throw new StreamError(e);
    const rv = rvOf(e.object as KubeObject);
    if (newerVersion(rv, s.rv)) s.rv = rv;
    if (e.type === "BOOKMARK") {
      // After a start from "now", coverage begins at the first bookmark.
      if (s.coveredFrom === undefined && rv) s.coveredFrom = rv;
      return;
    }
    const obj = e.object as KubeObject;
    this.saw(s, obj.metadata?.name, rv);
    const named = s.interests.get(obj.metadata?.name);
    if (!named) return;
    for (const it of [...named]) this.deliver(it, e.type, obj);
  }

  /** Remembers the newest version of a name the stream passed (bounded: past the bound, coverage starts anew). */
  private saw(s: Stream, name: string | undefined, rv: string | undefined): void {
    if (s.coveredFrom === undefined || !name || !rv) return;
    s.seen.set(name, rv);
    if (s.seen.size <= MAX_SEEN_NAMES) return;
    s.seen.clear();
    s.coveredFrom = s.rv;
  }

  /** Hands a newer version to the interest (once; older and equal versions are dropped). */
  private deliver(it: Interest, type: "ADDED" | "MODIFIED" | "DELETED", obj: KubeObject): void {
    if (it.cancelled) return;
    it.heardAt = this.o.now();
    if (it.take(type, obj)) this.call(it, type === "DELETED" ? { type, object: obj } : { type, object: obj });
  }

  private call(it: Interest, u: ObjectUpdate): void {
    try {
      it.onUpdate(u);
    } catch (err) {
      this.o.log?.warn("object watch callback failed", { error: messageOf(err), name: it.spec.name });
    }
  }

  /** One GET of the interest's object as the stream's user; its answer delivered like an event. */
  private async fetch(s: Stream, it: Interest): Promise<void> {
    if (it.fetching || it.cancelled) return;
    it.fetching = true;
    it.heardAt = this.o.now();
    try {
      const obj = await this.api(s).get<KubeObject>(resourcePath(s.kind, s.namespace, it.spec.name));
      if (it.cancelled) return;
      if (obj) this.deliver(it, "MODIFIED", obj);
      else if (!it.gone) {
        // Gone, and no event said so: the deletion, once (its resourceVersion is unknown).
        it.heardAt = this.o.now();
        const last = it.latest;
        it.latest = undefined;
        it.gone = true;
        this.call(it, { type: "DELETED", ...(last ? { object: last } : {}) });
      }
    } catch (err) {
      if (!it.cancelled) this.call(it, { type: "ERROR", error: err });
    } finally {
      it.fetching = false;
    }
  }

  /** Silence checks (watching) and polls (refused): one timer per stream. */
  private startTicker(s: Stream): void {
    const every = Math.max(25, Math.floor(Math.min(1_000, this.o.silentMs / 4, this.o.pollMs(0))));
    s.tick = setInterval(() => {
      const now = this.o.now();
      for (const it of s.all()) {
        if (it.fetching || it.cancelled) continue;
        if (s.mode === "poll") {
          if (now < it.nextPollAt) continue;
          it.nextPollAt = now + this.o.pollMs(now - it.registeredAt);
          void this.fetch(s, it);
        } else if (now - it.heardAt >= this.o.silentMs) void this.fetch(s, it);
      }
    }, every);
    s.tick.unref?.();
  }
}
