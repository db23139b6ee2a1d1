// An in-memory Kubernetes API server behind the operator's `KubeApi` port, faithful where the
// operator relies on the real one:
// - objects keyed by REST path; one global resourceVersion counter, bumped on every stored write
//   (a patch that changes nothing is not stored and keeps the resourceVersion, as on the real
//   server); uid and creationTimestamp set on create; metadata.generation (objects with a spec)
//   bumped when the spec changes, not on status or metadata changes;
// - PATCH as merge, json, strategic or apply (see fake-kube-patch.ts for the two approximations);
//   a metadata.resourceVersion in the patched result that differs from the stored one is a
//   precondition failure (409 Conflict), whether it came from a merge body or a json `replace`;
// - the status subresource: PATCH/PUT on `.../status` changes only status, on the object ignores it;
// - dryRun computes and validates the result but stores nothing and bumps nothing;
// - GET of a missing object is 404 (get() answers undefined); POST creates, 409 AlreadyExists on a
//   clash; DELETE checks DeleteOptions' preconditions (uid, resourceVersion: 409); collections
//   list {items, metadata.continue} with `limit`, `continue`, equality- and set-based `labelSelector`s
//   and `fieldSelector`s on metadata.name, metadata.namespace (and an AgentTask's status.phase); a few
//   validations the operator meets (replicas ≥ 0, string data and annotations, immutable
//   ConfigMaps) answer 422 Invalid, plus any a test adds.
// Failures are the real `KubeError`. Every request is audited; a fault hook sees each request
// before it runs and may fail it (409, 500, network status 0, ...) before or after it is stored,
// or "crash" the process: from then on every request fails until restart(), as if the operator
// had died. A tiny controller marks workload rollouts complete when asked (or after every write).
// Watches (`watch`, also as another user): every stored write, create and delete becomes an event
// (ADDED, MODIFIED, DELETED) for the open watches of its collection, delivered asynchronously and in
// order; a watch from a resourceVersion replays the events after it from a bounded history (older
// than the history: ERROR 410 Expired, as the API server answers a compacted version); without one
// it starts with every object as ADDED. A watch request is audited (GET with `watch: "1"` in its
// query) and passes the fault hooks like any request, so a test refuses one (403) the usual way.
// Tests end open watches (endWatches), expire them (expireWatches: ERROR 410) or send BOOKMARKs.
import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import type { KubeObject } from "../../capabilities/lib/action";
import {
  KubeError,
  isNotFound,
  watchQuery,
  type KubeApi,
  type KubeRequest,
  type OperatorKube,
  type WatchEvent,
  type WatchFn,
  type WatchRequest,
} from "../../capabilities/lib/kube";
import { isRecord, patchDocument, wire, type PatchType } from "./fake-kube-patch";

/** What the fault hook and the audit see of one request. */
export interface RequestInfo {
  /** 1-based number of this request since the fake was made. */
  seq: number;
  method: KubeRequest["method"];
  path: string;
  query?: Record<string, string>;
  dryRun: boolean;
  /** The impersonated user (OperatorKube.as), absent for the operator's own requests. */
  user?: string;
  patchType?: PatchType;
  body?: unknown;
}

export interface AuditEntry extends RequestInfo {
  /** The HTTP status the caller saw (0: network error), or "crash" when the process had died. */
  status: number | "crash";
  /** Whether the request changed the store (true also when its answer was then lost). */
  stored: boolean;
}

/** An error to inject: before the request runs (nothing stored) or after (stored, answer lost). */
export interface Fault {
  error: Error;
  when?: "before" | "after";
}
export type FaultHook = (req: RequestInfo) => Fault | Error | undefined;

/** The operator process died: it and every later request of the same process fail. */
export class FakeCrash extends Error {
  constructor(at: string) {
    super(`simulated crash at ${at}`);
    this.name = "FakeCrash";
  }
}

/** An extra validation: a message makes the write answer 422 Invalid. */
export type Validator = (obj: KubeObject, path: string) => string | undefined;

export interface FakeKubeOptions {
  now?: () => Date;
  validate?: Validator;
  /** Complete workload rollouts right after every stored write (default: only when asked). */
  autoRollout?: boolean;
  /** Events kept for watches that start from a resourceVersion (default 1000; older: 410). */
  watchHistory?: number;
  /** false: the AgentTask CRD declares no selectable fields (a status.* field selector is refused). */
  phaseSelectable?: boolean;
}

/** One stored change as watches see it. */
interface Change {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  key: string;
  object: KubeObject;
}

/** An open watch. */
interface Watcher {
  p: Parsed;
  base: string;
  req: WatchRequest;
  user?: string;
  onEvent: (e: WatchEvent) => void;
  queue: WatchEvent[];
  scheduled: boolean;
  ended: boolean;
  end(err?: Error): void;
}

interface Parsed {
  /** The object's path without subresource (the store key). */
  key: string;
  prefix: string;
  namespace?: string;
  plural: string;
  name?: string;
  sub?: string;
  /** `plural.group` (or `plural` for core), as the API server names it in messages. */
  resource: string;
}

const PATH = /^(\/api\/v1|\/apis\/[^/]+\/[^/]+)(?:\/namespaces\/([^/]+)(?=\/))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/;
const WORKLOADS = ["deployments", "statefulsets", "replicasets"];
type Doc = Record<string, unknown>;

export function parsePath(path: string): Parsed {
  const m = PATH.exec(path);
  if (!m) throw new KubeError(404, "NotFound", `the server could not find the requested resource (${path})`);
  const [, prefix, ns, plural, name, sub] = m;
  const namespace = ns === undefined ? undefined : decodeURIComponent(ns);
  const group = prefix === "/api/v1" ? "" : prefix.split("/")[2];
  const key = `${prefix}${ns === undefined ? "" : `/namespaces/${ns}`}/${plural}${name === undefined ? "" : `/${name}`}`;
  return {
    key,
    prefix,
    namespace,
    plural,
    name: name === undefined ? undefined : decodeURIComponent(name),
    sub,
    resource: group ? `${plural}.${group}` : plural,
  };
}

const notFound = (p: Parsed): KubeError => new KubeError(404, "NotFound", `${p.resource} "${p.name}" not found`);
const conflict = (p: Parsed): KubeError =>
  new KubeError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${p.resource} "${p.name}": the object has been modified; please apply your changes to the latest version and try again`,
  );
const invalid = (p: Parsed, kind: string, why: string): KubeError =>
  new KubeError(422, "Invalid", `${kind} "${p.name}" is invalid: ${why}`);

/** Built-in validations: the ones the operator's writes can meet. */
function builtInProblem(obj: KubeObject, old: KubeObject | undefined): string | undefined {
  const replicas = obj.spec?.replicas;
  if (replicas !== undefined && !(Number.isInteger(replicas) && (replicas as number) >= 0))
    return `spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`;
  for (const [field, map] of [
    ["metadata.annotations", obj.metadata.annotations],
    ["data", obj.data],
  ] as const) {
    const bad = Object.entries(map ?? {}).find(([, v]) => typeof v !== "string");
    if (bad) return `${field}[${bad[0]}]: Invalid value: must be a string`;
  }
  if (old?.immutable === true && !same(old.data, obj.data))
    return "data: Forbidden: field is immutable when `immutable` is set";
  return undefined;
}

/** `k=v,k2!=v2,k3,!k4`: the equality-based selectors. */
function selectorMatches(selector: string, labels: Record<string, string> = {}): boolean {
  return (selector.match(/(?:[^,(]|\([^)]*\))+/g) ?? [])
    .map(s => s.trim())
    .filter(Boolean)
    .every(term => {
      // Set-based: `key in (a,b)`, and `key notin (a,b)`, which a missing key matches too.
      const set = /^([A-Za-z0-9._/-]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
      if (set) {
        const values = set[3].split(",").map(v => v.trim());
        const has = set[1] in labels && values.includes(labels[set[1]]);
        return set[2] === "in" ? has : !has;
      }
      const m = /^(!?)([A-Za-z0-9._/-]+)(?:\s*(==|=|!=)\s*([A-Za-z0-9._-]*))?$/.exec(term);
      if (!m) throw new KubeError(400, "BadRequest", `unable to parse requirement: ${term}`);
      const [, not, key, op, value] = m;
      if (!op) return not ? !(key in labels) : key in labels;
      return op === "!=" ? labels[key] !== value : labels[key] === value;
    });
}

/**
 * `metadata.namespace!=a,metadata.name=b`: the field selectors the API server supports on every
 * resource (custom resources have no others unless their CRD declares selectable fields), and
 * `status.phase` and `status.finishedAt`, the AgentTask CRD's selectable fields (an absent field
 * is ""), unless the fake was told the CRD lacks them.
 */
function fieldsMatcher(selector: string, phaseSelectable: boolean): (obj: KubeObject) => boolean {
  // phaseSelectable: the collection is AgentTasks and their CRD declares status.phase selectable.
  const terms = selector
    .split(",")
    .map(s => s.trim())
    .filter(Boolean)
    .map(term => {
      const m =
        /^(metadata\.name|metadata\.namespace|status\.phase|status\.finishedAt)\s*(==|=|!=)\s*([A-Za-z0-9._:+-]*)$/.exec(
          term,
        );
      if (!m || (m[1].startsWith("status.") && !phaseSelectable))
        throw new KubeError(400, "BadRequest", `field label not supported: ${term.split(/[!=]/)[0]}`);
      return { field: m[1], op: m[2], value: m[3] };
    });
  return obj =>
    terms.every(({ field, op, value }) => {
      const actual =
        field === "metadata.name"
          ? obj.metadata.name
          : field === "metadata.namespace"
            ? obj.metadata.namespace
            : String((obj as { status?: Record<string, unknown> }).status?.[field.slice("status.".length)] ?? "");
      return op === "!=" ? actual !== value : actual === value;
    });
}

/** Whether a path or store key is of the AgentTask collection. */
const isTaskPath = (path: string): boolean => /\/agenttasks(\/|$)/.test(path);

const encodeContinue = (key: string): string => Buffer.from(JSON.stringify({ after: key })).toString("base64url");
function decodeContinue(token: string): string {
  try {
    const after = (JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { after?: unknown }).after;
    if (typeof after === "string") return after;
  } catch {
    // fall through to the API server's answer for a token it cannot read
  }
  throw new KubeError(400, "BadRequest", "continue key is not valid: malformed token");
}

/** A deep copy, as the wire would make it (structuredClone's objects come from another realm under
 * jest, which isDeepStrictEqual tells apart). */
const clone = <T>(v: T): T => wire(v);
/** Same JSON content. */
const same = (a: unknown, b: unknown): boolean => isDeepStrictEqual(wire(a), wire(b));

const timestamp = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, "Z");

export class FakeKube implements OperatorKube {
  readonly audit: AuditEntry[] = [];
  private readonly store = new Map<string, KubeObject>();
  private rv = 100;
  private seq = 0;
  private hooks: FaultHook[] = [];
  private dead = false;
  private readonly now: () => Date;
  private readonly watchers = new Set<Watcher>();
  private history: Change[] = [];
  /** Watches from a resourceVersion below this are too old (410): their events are gone. */
  private compactedRv = this.rv;

  constructor(private readonly opts: FakeKubeOptions = {}) {
    this.now = opts.now ?? (() => new Date());
  }

  private get phaseSelectable(): boolean {
    return this.opts.phaseSelectable ?? true;
  }

  /** Whether a crash was injected and restart() has not been called since. */
  get crashed(): boolean {
    return this.dead;
  }

  /** The current value of the resourceVersion counter. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Adds a fault hook (each request runs past every hook; the first fault wins). */
  onRequest(hook: FaultHook): this {
    this.hooks.push(hook);
    return this;
  }

  clearFaults(): this {
    this.hooks = [];
    return this;
  }

  /** Set by close() (the runtime closes its kube port on stop). */
  closed = false;

  async close(): Promise<void> {
    this.closed = true;
  }

  /** A new operator process: requests work again after an injected crash. */
  restart(): void {
    this.dead = false;
  }

  /**
   * Requests as another user. The fake authorizes nothing by itself (it has no RBAC): a test
   * refuses an impersonated request with a fault hook on `user`, as the API server would with 403.
   */
  as(user: string): KubeApi & { watch: WatchFn } {
    const api: KubeApi & { watch: WatchFn } = {
      request: <T>(req: KubeRequest, dryRun = false) => this.send<T>(req, dryRun, user),
      watch: <T>(req: WatchRequest, onEvent: (e: WatchEvent<T>) => void) => this.startWatch<T>(req, onEvent, user),
      get: async <T>(path: string, query?: Record<string, string>) => {
        try {
          return await api.request<T>({ method: "GET", path, ...(query ? { query } : {}) });
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
      },
    };
    return api;
  }

  request<T>(req: KubeRequest, dryRun = false): Promise<T> {
    return this.send<T>(req, dryRun);
  }

  private async send<T>(req: KubeRequest, dryRun: boolean, user?: string): Promise<T> {
    await Promise.resolve(); // an answer is never synchronous
    const info: RequestInfo = {
      seq: ++this.seq,
      method: req.method,
      path: req.path,
      dryRun,
      ...(user ? { user } : {}),
      ...(req.query ? { query: { ...req.query } } : {}),
      ...(req.patchType ? { patchType: req.patchType } : {}),
      ...(req.body !== undefined ? { body: wire(req.body) } : {}),
    };
    const entry: AuditEntry = { ...info, status: 200, stored: false };
    this.audit.push(entry);
    if (this.dead) return this.die(entry, new FakeCrash(`${req.method} ${req.path} (after an earlier crash)`));
    const fault = this.faultFor(info);
    if (fault && fault.when !== "after") return this.failed(entry, fault.error);
    const before = this.rv;
    let result: unknown;
    try {
      result = this.serve(info);
    } catch (err) {
      return this.failed(entry, err as Error);
    }
    entry.stored = this.rv !== before;
    entry.status = req.method === "POST" ? 201 : 200;
    if (fault) return this.failed(entry, fault.error);
    return result as T;
  }

  async get<T>(path: string, query?: Record<string, string>): Promise<T | undefined> {
    try {
      return await this.request<T>({ method: "GET", path, ...(query ? { query } : {}) });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** A watch as the operator itself (capabilities/lib/kube/watch.ts has the contract). */
  watch<T = unknown>(req: WatchRequest, onEvent: (e: WatchEvent<T>) => void): Promise<void> {
    return this.startWatch<T>(req, onEvent);
  }

  private async startWatch<T>(req: WatchRequest, onEvent: (e: WatchEvent<T>) => void, user?: string): Promise<void> {
    await Promise.resolve(); // an answer is never synchronous
    const info: RequestInfo = { seq: ++this.seq, method: "GET", path: req.path, query: watchQuery(req), dryRun: false };
    if (user) info.user = user;
    const entry: AuditEntry = { ...info, status: 200, stored: false };
    this.audit.push(entry);
    if (this.dead) return this.die(entry, new FakeCrash(`watch ${req.path} (after an earlier crash)`));
    const fault = this.faultFor(info);
    if (fault) return this.failed(entry, fault.error);
    if (req.signal?.aborted) return;
    let p: Parsed;
    try {
      p = parsePath(req.path);
      if (p.name !== undefined) throw new KubeError(400, "BadRequest", `watch needs a collection path (${req.path})`);
      selectorMatches(req.labelSelector ?? "", {});
    } catch (err) {
      return this.failed(entry, err as Error);
    }
    const base = `${p.prefix}${p.namespace === undefined ? "" : `/namespaces/${p.namespace}`}`;
    return new Promise<void>((resolve, reject) => {
      const w: Watcher = {
        p,
        base,
        req,
        ...(user ? { user } : {}),
        onEvent: onEvent as (e: WatchEvent) => void,
        queue: [],
        scheduled: false,
        ended: false,
        end: err => {
          if (w.ended) return;
          w.ended = true;
          this.watchers.delete(w);
          clearTimeout(timer);
          req.signal?.removeEventListener("abort", onAbort);
          if (err) reject(err);
          else resolve();
        },
      };
      const onAbort = (): void => w.end();
      req.signal?.addEventListener("abort", onAbort);
      const timer = req.timeoutSeconds ? setTimeout(() => this.finish(w), req.timeoutSeconds * 1000) : undefined;
      timer?.unref?.();
      this.watchers.add(w);
      this.replay(w);
    });
  }

  /**
   * What a new watch is sent first: every object as ADDED (no resourceVersion, or "0"), the
   * events after its resourceVersion, or ERROR 410 when those are no longer in the history.
   */
  private replay(w: Watcher): void {
    const from = w.req.resourceVersion;
    if (from === undefined || from === "" || from === "0") {
      for (const [key, o] of [...this.store.entries()].sort(([a], [b]) => (a < b ? -1 : 1)))
        if (this.watches(w, key, o)) this.enqueue(w, { type: "ADDED", object: clone(o) });
      return;
    }
    const rv = Number(from);
    if (Number.isInteger(rv) && rv >= this.compactedRv) {
      for (const c of this.history) if (c.rv > rv && this.watches(w, c.key, c.object)) this.enqueue(w, c);
      return;
    }
    const message = `too old resource version: ${from} (${this.compactedRv})`;
    this.enqueue(w, { type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message } });
    this.finish(w);
  }

  /** Whether a watch sees the object at `key`: its collection, its selectors. */
  private watches(w: Watcher, key: string, o: KubeObject): boolean {
    if (!this.inCollection(key, w.p, w.base)) return false;
    return (
      selectorMatches(w.req.labelSelector ?? "", o.metadata.labels) &&
      fieldsMatcher(w.req.fieldSelector ?? "", this.phaseSelectable && isTaskPath(w.req.path))(o)
    );
  }

  private enqueue(w: Watcher, e: WatchEvent | Change): void {
    w.queue.push("key" in e ? { type: e.type, object: clone(e.object) } : e);
    if (w.scheduled) return;
    w.scheduled = true;
    void Promise.resolve().then(() => this.flush(w));
  }

  /** Hands a watch its queued events, in order; an exception of its handler ends it with that error. */
  private flush(w: Watcher): void {
    w.scheduled = false;
    while (!w.ended && w.queue.length) {
      const e = w.queue.shift()!;
      try {
        w.onEvent(e);
      } catch (err) {
        w.end(err as Error);
      }
    }
  }

  /** Ends a watch once the events already queued for it are delivered (as the server's timeout does). */
  private finish(w: Watcher, err?: Error): void {
    void Promise.resolve().then(() => {
      this.flush(w);
      w.end(err);
    });
  }

  private record(type: Change["type"], key: string, object: KubeObject): void {
    // Stored objects are never changed in place (every write stores a new copy): the history
    // shares them, and each delivery gets its own copy.
    const c: Change = { rv: this.rv, type, key, object };
    this.history.push(c);
    const keep = this.opts.watchHistory ?? 1000;
    if (this.history.length > keep) {
      const dropped = this.history.splice(0, this.history.length - keep);
      this.compactedRv = dropped.at(-1)!.rv;
    }
    for (const w of this.watchers) if (this.watches(w, key, object)) this.enqueue(w, c);
  }

  // ---- watches, for tests ----

  /** How many watches are open (for `user`, when given). */
  openWatches(user?: string): number {
    return [...this.watchers].filter(w => user === undefined || w.user === user).length;
  }

  /**
   * Ends every open watch after the events queued for it: normally (the server's timeout or
   * restart) or with `error` (a broken connection: pass a KubeError with status 0).
   */
  endWatches(error?: Error): void {
    for (const w of [...this.watchers]) this.finish(w, error);
  }

  /**
   * The history is compacted: every open watch gets ERROR 410 Expired and ends, and a watch from
   * any resourceVersion before now is too old.
   */
  expireWatches(): void {
    this.history = [];
    this.compactedRv = this.rv;
    for (const w of [...this.watchers]) {
      this.enqueue(w, {
        type: "ERROR",
        object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version" },
      });
      this.finish(w);
    }
  }

  /** A BOOKMARK at the current resourceVersion to every open watch (all of ours ask for them). */
  bookmark(): void {
    for (const w of this.watchers)
      this.enqueue(w, { type: "BOOKMARK", object: { metadata: { resourceVersion: String(this.rv) } } });
  }

  // ---- test set-up and inspection (no audit, no faults) ----

  /** Stores an object at its path as a create (uid, timestamps, resourceVersion, generation). */
  put(path: string, obj: Omit<KubeObject, "metadata"> & { metadata: Partial<KubeObject["metadata"]> }): KubeObject {
    const p = parsePath(path);
    const o = wire(obj) as KubeObject;
    o.metadata = { ...o.metadata, name: p.name!, ...(p.namespace ? { namespace: p.namespace } : {}) };
    return this.commit(p.key, this.created(o));
  }

  /** A copy of the stored object, or undefined. */
  read<T = KubeObject>(path: string): T | undefined {
    const o = this.store.get(parsePath(path).key);
    return o ? (clone(o) as T) : undefined;
  }

  /** Changes a stored object as another client would (a stored write, resourceVersion bumped). */
  mutate(path: string, change: (o: KubeObject) => void): KubeObject {
    const key = parsePath(path).key;
    const old = this.store.get(key);
    if (!old) throw new Error(`no object at ${path}`);
    const next = clone(old);
    change(next);
    return this.commit(key, this.versioned(next, old));
  }

  /** Takes an object away as if it had never been stored (no resourceVersion, no watch event). */
  remove(path: string): void {
    this.store.delete(parsePath(path).key);
  }

  /** The controller: the workload has rolled out its latest spec, every replica ready. */
  completeRollout(path: string): KubeObject {
    return this.mutate(path, o => {
      const want = typeof o.spec?.replicas === "number" ? o.spec.replicas : 1;
      o.status = {
        ...(o.status ?? {}),
        observedGeneration: o.metadata.generation,
        replicas: want,
        readyReplicas: want,
        updatedReplicas: want,
        availableReplicas: want,
        currentReplicas: want,
        ...(o.status?.updateRevision !== undefined ? { currentRevision: o.status.updateRevision } : {}),
      };
    });
  }

  /** Audited requests that changed the store for good (not dry runs, not reads). */
  writes(filter: (e: AuditEntry) => boolean = () => true): AuditEntry[] {
    return this.audit.filter(e => e.stored && filter(e));
  }

  // ---- the server ----

  private faultFor(info: RequestInfo): Fault | undefined {
    for (const hook of this.hooks) {
      const f = hook(info);
      if (f) return f instanceof Error ? { error: f } : f;
    }
    return undefined;
  }

  private failed(entry: AuditEntry, err: Error): never {
    if (err instanceof FakeCrash) return this.die(entry, err);
    entry.status = err instanceof KubeError ? err.status : 500;
    throw err;
  }

  private die(entry: AuditEntry, err: FakeCrash): never {
    this.dead = true;
    entry.status = "crash";
    throw err;
  }

  /**
   * The authorizer a SubjectAccessReview asks (POST /apis/authorization.k8s.io/v1/subjectaccessreviews):
   * given the review's spec, whether it is allowed. Default: everything is (the fake has no RBAC).
   */
  accessReview: (spec: Doc) => boolean = () => true;

  private serve(r: RequestInfo): unknown {
    // A review is answered, never stored (as the API server does).
    if (r.method === "POST" && r.path === "/apis/authorization.k8s.io/v1/subjectaccessreviews") {
      const spec = isRecord(r.body) && isRecord(r.body.spec) ? r.body.spec : {};
      return { ...(r.body as Doc), status: { allowed: this.accessReview(spec) } };
    }
    const p = parsePath(r.path);
    switch (r.method) {
      case "GET":
        return p.name === undefined ? this.list(p, r.query ?? {}) : this.getOne(p);
      case "POST":
        return this.create(p, r.body, r.dryRun);
      case "PATCH":
        return this.patch(p, r);
      case "PUT":
        return this.replace(p, r.body, r.dryRun);
      case "DELETE":
        return this.delete(p, r.dryRun, r.body);
    }
  }

  private getOne(p: Parsed): KubeObject {
    const o = this.store.get(p.key);
    if (!o || (p.sub !== undefined && p.sub !== "status")) throw notFound(p);
    return clone(o);
  }

  private list(p: Parsed, query: Record<string, string>): { items: KubeObject[]; metadata: Doc } {
    const base = `${p.prefix}${p.namespace === undefined ? "" : `/namespaces/${p.namespace}`}`;
    const selector = query.labelSelector ?? "";
    const after = query.continue ? decodeContinue(query.continue) : "";
    const fields = fieldsMatcher(query.fieldSelector ?? "", this.phaseSelectable && p.plural === "agenttasks");
    const keys = [...this.store.keys()]
      .filter(k => this.inCollection(k, p, base) && k > after)
      .filter(k => selectorMatches(selector, this.store.get(k)!.metadata.labels))
      .filter(k => fields(this.store.get(k)!))
      .sort();
    const limit = Number(query.limit) > 0 ? Number(query.limit) : keys.length;
    const page = keys.slice(0, limit);
    const more = keys.length > page.length;
    return {
      items: page.map(k => clone(this.store.get(k)!)),
      metadata: { resourceVersion: String(this.rv), ...(more ? { continue: encodeContinue(page.at(-1)!) } : {}) },
    };
  }

  private inCollection(key: string, p: Parsed, base: string): boolean {
    const q = parsePath(key);
    return q.prefix === p.prefix && q.plural === p.plural && key.startsWith(`${base}/`);
  }

  private create(p: Parsed, body: unknown, dryRun: boolean): KubeObject {
    if (p.name !== undefined || !isRecord(body) || !isRecord(body.metadata))
      throw new KubeError(400, "BadRequest", "POST needs a collection path and an object with metadata");
    const meta = body.metadata as Doc;
    const name =
      typeof meta.name === "string" ? meta.name : `${String(meta.generateName ?? "")}${randomUUID().slice(0, 5)}`;
    if (meta.namespace !== undefined && meta.namespace !== p.namespace)
      throw new KubeError(
        400,
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    const at: Parsed = { ...p, key: `${p.key}/${encodeURIComponent(name)}`, name };
    if (this.store.has(at.key)) throw new KubeError(409, "AlreadyExists", `${p.resource} "${name}" already exists`);
    const obj = {
      ...body,
      metadata: { ...meta, name, ...(p.namespace ? { namespace: p.namespace } : {}) },
    } as KubeObject;
    return this.store_(at, this.created(obj), undefined, dryRun);
  }

  private patch(p: Parsed, r: RequestInfo): KubeObject {
    const type = r.patchType ?? "merge";
    const old = this.store.get(p.key);
    if (!old && type === "apply" && p.sub === undefined) return this.applyCreate(p, r.body, r.dryRun);
    if (!old || (p.sub !== undefined && p.sub !== "status")) throw notFound(p);
    const candidate = patchDocument(old as unknown as Doc, r.body, type) as unknown as KubeObject;
    return this.update(p, old, candidate, r.dryRun);
  }

  /** Server-side apply creates a missing object (the path names it). */
  private applyCreate(p: Parsed, body: unknown, dryRun: boolean): KubeObject {
    if (!isRecord(body)) throw new KubeError(400, "BadRequest", "an apply patch body must be a JSON object");
    const collection: Parsed = { ...p, key: p.key.slice(0, p.key.lastIndexOf("/")), name: undefined };
    const metadata = { ...(isRecord(body.metadata) ? body.metadata : {}), name: p.name };
    return this.create(collection, { ...body, metadata }, dryRun);
  }

  private replace(p: Parsed, body: unknown, dryRun: boolean): KubeObject {
    const old = this.store.get(p.key);
    if (!old) throw notFound(p);
    if (!isRecord(body) || !isRecord(body.metadata)) throw new KubeError(400, "BadRequest", "PUT needs an object");
    return this.update(p, old, body as KubeObject, dryRun);
  }

  /** DELETE, with DeleteOptions' preconditions (uid, resourceVersion) checked as the API server does: 409. */
  private delete(p: Parsed, dryRun: boolean, options?: unknown): KubeObject {
    const old = this.store.get(p.key);
    if (!old || p.sub !== undefined) throw notFound(p);
    const pre = isRecord(options) && isRecord(options.preconditions) ? options.preconditions : {};
    for (const field of ["uid", "resourceVersion"] as const) {
      const want = pre[field];
      if (want !== undefined && want !== null && want !== old.metadata[field])
        throw new KubeError(
          409,
          "Conflict",
          `Operation cannot be fulfilled on ${p.resource} "${p.name}": Precondition failed: ${field === "uid" ? "UID" : "ResourceVersion"} in precondition: ${String(want)}, ${field === "uid" ? "UID" : "ResourceVersion"} in object meta: ${String(old.metadata[field])}`,
        );
    }
    if (!dryRun) {
      this.store.delete(p.key);
      this.rv++;
      this.record("DELETED", p.key, { ...old, metadata: { ...old.metadata, resourceVersion: String(this.rv) } });
    }
    return clone(old);
  }

  /** Status subresource rules, the resourceVersion precondition, server-owned metadata, validation. */
  private update(p: Parsed, old: KubeObject, candidate: KubeObject, dryRun: boolean): KubeObject {
    const wanted = candidate.metadata?.resourceVersion;
    if (wanted !== undefined && wanted !== old.metadata.resourceVersion) throw conflict(p);
    const next: KubeObject =
      p.sub === "status"
        ? { ...clone(old), status: candidate.status }
        : { ...candidate, metadata: { ...candidate.metadata } };
    if (p.sub !== "status") {
      if (old.status === undefined) delete next.status;
      else next.status = clone(old.status);
    }
    if (next.status === undefined) delete next.status;
    for (const k of ["name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation"])
      if (old.metadata[k] === undefined) delete next.metadata[k];
      else next.metadata[k] = old.metadata[k];
    return this.store_(p, this.versioned(next, old), old, dryRun);
  }

  private store_(p: Parsed, obj: KubeObject, old: KubeObject | undefined, dryRun: boolean): KubeObject {
    const problem = builtInProblem(obj, old) ?? this.opts.validate?.(obj, p.key);
    if (problem) throw invalid(p, obj.kind ?? p.resource, problem);
    if (old && same(obj, old)) return clone(old); // no-op: not stored
    if (dryRun) return this.dryRunResult(obj, old);
    const stored = this.commit(p.key, obj);
    if (this.opts.autoRollout && WORKLOADS.includes(p.plural) && p.sub !== "status") return this.completeRollout(p.key);
    return stored;
  }

  /** What a dry run answers: the object as it would be stored, without a new resourceVersion. */
  private dryRunResult(obj: KubeObject, old: KubeObject | undefined): KubeObject {
    const out = clone(obj);
    if (old) out.metadata.resourceVersion = old.metadata.resourceVersion;
    else delete out.metadata.resourceVersion;
    return out;
  }

  /** The next version of an object: generation follows spec changes; resourceVersion set on commit. */
  private versioned(next: KubeObject, old: KubeObject): KubeObject {
    if (typeof old.metadata.generation === "number" && !same(next.spec, old.spec))
      next.metadata.generation = old.metadata.generation + 1;
    return next;
  }

  private created(o: KubeObject): KubeObject {
    o.metadata.uid ??= randomUUID();
    o.metadata.creationTimestamp ??= timestamp(this.now());
    if (o.spec !== undefined) o.metadata.generation ??= 1;
    return o;
  }

  private commit(key: string, obj: KubeObject): KubeObject {
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    const type = this.store.has(key) ? "MODIFIED" : "ADDED";
    const kept = clone(stored);
    this.store.set(key, kept);
    this.record(type, key, kept);
    return clone(stored);
  }
}

/** The namespaces' executor ServiceAccounts (the pipeline reads targets only where one exists). */
export function withExecutors(kube: FakeKube, namespaces: readonly string[], name = "atb-executor"): FakeKube {
  for (const ns of namespaces) {
    const path = `/api/v1/namespaces/${ns}/serviceaccounts/${name}`;
    if (kube.read(path)) continue;
    kube.put(path, {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name, namespace: ns },
    });
  }
  return kube;
}
