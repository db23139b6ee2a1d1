// ObjectWatches on the in-memory API server: many waiting objects of one namespace share one watch
// request; a stream that ends starts again from the last resourceVersion it saw; 410 Gone starts
// from the present with every object as it is; an interest that joins late or hears nothing gets
// one GET; a refused watch (403) falls back to polling, logged once; cancelling the last interest
// stops the stream. Each check counts the requests the fake's audit recorded.
import type { KubeObject } from "../../capabilities/lib/action";
import {
  KubeError,
  resourcePath,
  type KubeApi,
  type OperatorKube,
  type WatchEvent,
  type WatchRequest,
} from "../../capabilities/lib/kube";
import { rolloutStatus } from "../../capabilities/lib/kube/rollout";
import {
  newerVersion,
  ObjectWatches,
  type ObjectUpdate,
  type ObjectWatchOptions,
} from "../../capabilities/lib/kube/object-watch";
import type { Logger } from "../../capabilities/lib/logger";
import { FakeKube, type AuditEntry } from "../helpers/fake-kube";

const NS = "shop";
const EXEC = "system:serviceaccount:shop:atb-executor";
const DEPLOYS = resourcePath("Deployment", NS);
const dpath = (name: string) => resourcePath("Deployment", NS, name);

let watches: ObjectWatches | undefined;
afterEach(async () => {
  await watches?.close();
  watches = undefined;
});

function cluster(names: string[]): FakeKube {
  const kube = new FakeKube();
  for (const name of names)
    kube.put(dpath(name), {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: {},
      spec: { replicas: 1 },
      status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1, readyReplicas: 1 },
    });
  return kube;
}

function make(kube: OperatorKube, o: ObjectWatchOptions = {}): ObjectWatches {
  watches = new ObjectWatches(kube, { silentMs: 60_000, lingerMs: 50, backoffMs: { first: 10, max: 50 }, ...o });
  return watches;
}

/** A write as the executor (the operator's write of a task): its answer. */
const scale = (kube: FakeKube, name: string, replicas: number) =>
  kube.as(EXEC).request<KubeObject>({ method: "PATCH", path: dpath(name), body: { spec: { replicas } } });

const watchRequests = (kube: FakeKube): AuditEntry[] => kube.audit.filter(e => e.query?.watch === "1");
const gets = (kube: FakeKube, name?: string): AuditEntry[] =>
  kube.audit.filter(e => e.method === "GET" && !e.query?.watch && (name === undefined || e.path === dpath(name)));
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not in time: ${what}`);
    await sleep(5);
  }
}

/** An interest in `name` from the write `w`, recording what it is told. */
function follow(w: ObjectWatches, name: string, written: KubeObject) {
  const updates: ObjectUpdate[] = [];
  const handle = w.register(
    {
      user: EXEC,
      kind: "Deployment",
      namespace: NS,
      name,
      resourceVersion: written.metadata.resourceVersion!,
      initial: written,
    },
    u => updates.push(u),
  );
  const versions = () =>
    updates.map(u => (u.type === "ERROR" ? "ERROR" : `${u.type}:${u.object?.metadata.resourceVersion ?? "?"}`));
  const done = () => {
    const o = handle.latest();
    return !!o && rolloutStatus("Deployment", o).state === "done";
  };
  return { updates, handle, versions, done };
}

const logger = () => {
  const warn = jest.fn();
  return { log: { warn, debug: jest.fn(), info: jest.fn(), error: jest.fn() } as unknown as Logger, warn };
};

test("resourceVersions compare as etcd's integers", () => {
  expect(newerVersion("100", "99")).toBe(true);
  expect(newerVersion("99", "100")).toBe(false);
  expect(newerVersion("100", "100")).toBe(false);
  expect(newerVersion("18446744073709551617", "18446744073709551616")).toBe(true);
  expect(newerVersion("x", undefined)).toBe(true);
  expect(newerVersion(undefined, "1")).toBe(false);
});

test("fifty Deployments rolling out in one namespace: one watch request, each sees its own versions once, in order, no GET", async () => {
  const names = Array.from({ length: 50 }, (_, i) => `web-${i}`);
  const kube = cluster(names);
  const w = make(kube);
  const followers: ReturnType<typeof follow>[] = [];
  let firstWrite: string | undefined;
  for (const name of names) {
    const written = await scale(kube, name, 3);
    firstWrite ??= written.metadata.resourceVersion;
    followers.push(follow(w, name, written));
  }
  for (const f of followers) expect(f.done()).toBe(false);
  for (const name of names) kube.completeRollout(dpath(name));
  await until("every rollout seen", () => followers.every(f => f.done()));
  expect(watchRequests(kube)).toHaveLength(1);
  expect(watchRequests(kube)[0]).toMatchObject({ user: EXEC, path: DEPLOYS });
  // From the lowest version any interest needed: the first write's.
  expect(watchRequests(kube)[0].query?.resourceVersion).toBe(firstWrite);
  expect(gets(kube)).toEqual([]);
  for (const [i, f] of followers.entries()) {
    const rv = kube.read<KubeObject>(dpath(names[i]))!.metadata.resourceVersion;
    // Only the version after the write (the write's own is known to the caller): once.
    expect(f.versions()).toEqual([`MODIFIED:${rv}`]);
  }
  expect(kube.openWatches(EXEC)).toBe(1);
  expect(w.stats()).toEqual({ streams: 1, watching: 1, polling: 0, interests: 50 });
});

test("a stream that ends starts again from the last resourceVersion it saw, and loses nothing written meanwhile", async () => {
  const kube = cluster(["a", "b"]);
  // The second watch waits at the door until the test opens it.
  let calls = 0;
  let open: () => void = () => undefined;
  const door = new Promise<void>(r => (open = r));
  const gated: OperatorKube = {
    request: (r, d) => kube.request(r, d),
    get: (p, q) => kube.get(p, q),
    as: user => {
      const api = kube.as(user);
      return {
        ...api,
        watch: async <T>(req: WatchRequest, on: (e: WatchEvent<T>) => void) => {
          if (++calls === 2) await door;
          return api.watch(req, on);
        },
      } as KubeApi;
    },
  };
  const w = make(gated);
  const a = follow(w, "a", await scale(kube, "a", 2));
  const b = follow(w, "b", await scale(kube, "b", 2));
  await until("stream open", () => kube.openWatches() === 1);
  kube.completeRollout(dpath("a"));
  await until("a done", a.done);
  const seenRv = kube.read<KubeObject>(dpath("a"))!.metadata.resourceVersion;
  // The server ends the stream (its timeout); b rolls out while no watch is open.
  kube.endWatches();
  await until("restart asked", () => calls === 2);
  expect(kube.openWatches()).toBe(0);
  kube.completeRollout(dpath("b"));
  await sleep(20);
  expect(b.updates).toEqual([]);
  open();
  await until("b done", b.done);
  const reqs = watchRequests(kube);
  expect(reqs).toHaveLength(2);
  expect(reqs[1].query?.resourceVersion).toBe(seenRv);
  // A broken connection (status 0): again, after a short backoff, from the newest version.
  await until("second stream open", () => kube.openWatches() === 1);
  // Writes elsewhere move the resourceVersion on; only a BOOKMARK tells the stream.
  kube.put(resourcePath("ConfigMap", NS, "elsewhere"), { kind: "ConfigMap", metadata: {}, data: {} });
  kube.bookmark();
  await sleep(10);
  const bookmarkRv = kube.resourceVersion;
  kube.endWatches(new KubeError(0, "NetworkError", "connection reset"));
  await until("third watch", () => watchRequests(kube).length === 3);
  expect(watchRequests(kube)[2].query?.resourceVersion).toBe(bookmarkRv);
  await scale(kube, "a", 4);
  await until("a's new version", () => a.updates.length === 2);
  expect(gets(kube)).toEqual([]);
  expect(a.versions()).toHaveLength(2);
  expect(b.versions()).toHaveLength(1);
});

test("410 Gone: the next watch starts from the present, every object as it is; no version delivered twice", async () => {
  const kube = cluster(["a", "b", "c"]);
  const w = make(kube);
  const a = follow(w, "a", await scale(kube, "a", 2));
  const b = follow(w, "b", await scale(kube, "b", 2));
  await until("stream open", () => kube.openWatches() === 1);
  kube.completeRollout(dpath("a"));
  await until("a done", a.done);
  // History compacted while b's rollout completes: the open watch gets ERROR 410.
  kube.expireWatches();
  kube.completeRollout(dpath("b"));
  await until("b done", b.done);
  const reqs = watchRequests(kube);
  expect(reqs).toHaveLength(2);
  expect(reqs[1].query?.resourceVersion).toBeUndefined();
  expect(a.versions()).toHaveLength(1); // a's snapshot ADDED is the version it had: not again
  expect(b.versions()).toEqual([`ADDED:${kube.read<KubeObject>(dpath("b"))!.metadata.resourceVersion}`]);
  // The new stream goes on from there.
  await scale(kube, "a", 5);
  await until("a again", () => a.updates.length === 2);
  expect(watchRequests(kube)).toHaveLength(2);
  expect(gets(kube)).toEqual([]);
});

test("410 at the start (the write's version is already too old) also starts from the present", async () => {
  const kube = new FakeKube({ watchHistory: 1 });
  kube.put(dpath("a"), { kind: "Deployment", metadata: {}, spec: { replicas: 1 } });
  const written = await scale(kube, "a", 2);
  kube.mutate(dpath("a"), o => (o.metadata.labels = { x: "1" }));
  kube.mutate(dpath("a"), o => (o.metadata.labels = { x: "2" }));
  const w = make(kube);
  const a = follow(w, "a", written);
  await until("a's current version", () => a.updates.length === 1);
  expect(watchRequests(kube).map(e => e.query?.resourceVersion)).toEqual([written.metadata.resourceVersion, undefined]);
  expect(a.handle.latest()!.metadata.labels).toEqual({ x: "2" });
});

test("an interest that joins after the stream went past its version gets one GET", async () => {
  const kube = cluster(["a", "b"]);
  const w = make(kube);
  const bWrite = await scale(kube, "b", 2); // b's write, older than what the stream will have seen
  const a = follow(w, "a", await scale(kube, "a", 2));
  await until("stream open", () => kube.openWatches() === 1);
  kube.completeRollout(dpath("b")); // the stream passes it: nobody listens to b yet
  kube.completeRollout(dpath("a"));
  await until("a done", a.done);
  const b = follow(w, "b", bWrite);
  await until("b caught up", b.done);
  expect(gets(kube, "b")).toHaveLength(1);
  expect(gets(kube, "a")).toHaveLength(0);
  expect(watchRequests(kube)).toHaveLength(1);
  expect(b.versions()).toHaveLength(1);
});

test("an interest that joins late gets no GET when no newer version of its object went by", async () => {
  const kube = cluster(["a", "b", "c"]);
  const w = make(kube);
  const a = follow(w, "a", await scale(kube, "a", 2));
  await until("stream open", () => kube.openWatches() === 1);
  const bWrite = await scale(kube, "b", 2); // the stream sees this version go by: not newer than b's own
  kube.completeRollout(dpath("a")); // the stream passes b's version, and nothing newer of b
  await until("a done", a.done);
  const b = follow(w, "b", bWrite);
  await sleep(20);
  kube.completeRollout(dpath("b"));
  await until("b done", b.done);
  expect(gets(kube)).toEqual([]);

  // After a start from "now" (410) the stream knows nothing of what went by: a late joiner GETs,
  // until a BOOKMARK starts the stream's record again.
  const cWrite = await scale(kube, "c", 2);
  kube.expireWatches();
  await until("restarted from now", () => watchRequests(kube).length === 2 && kube.openWatches() === 1);
  await scale(kube, "a", 3); // moves the stream past c's write
  await until("a's version", () => a.updates.length === 2);
  const c = follow(w, "c", cWrite);
  await until("c's GET", () => gets(kube, "c").length === 1);
  c.handle.cancel();
  kube.bookmark();
  await sleep(20);
  const cWrite2 = await scale(kube, "c", 4);
  await scale(kube, "a", 4);
  await until("a's version", () => a.updates.length === 3);
  const c2 = follow(w, "c", cWrite2);
  kube.completeRollout(dpath("c"));
  await until("c done", c2.done);
  expect(gets(kube, "c")).toHaveLength(1);
});

test("an interest that hears nothing for silentMs gets a GET: a lost event does not leave it waiting", async () => {
  const kube = cluster(["a"]);
  // A stream that loses every event about "a" (as a broken watch cache might).
  const lossy: OperatorKube = {
    request: (r, d) => kube.request(r, d),
    get: (p, q) => kube.get(p, q),
    as: user => {
      const api = kube.as(user);
      return {
        ...api,
        watch: <T>(req: WatchRequest, on: (e: WatchEvent<T>) => void) =>
          api.watch(req, e => {
            if (e.type !== "ERROR" && e.type !== "BOOKMARK" && (e.object as KubeObject).metadata.name === "a") return;
            on(e as WatchEvent<T>);
          }),
      } as KubeApi;
    },
  };
  const w = make(lossy, { silentMs: 150 });
  const a = follow(w, "a", await scale(kube, "a", 2));
  kube.completeRollout(dpath("a"));
  const t0 = Date.now();
  await until("a done through the GET", a.done);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  expect(gets(kube, "a").length).toBeGreaterThanOrEqual(1);
  expect(a.versions()).toHaveLength(1);
  // Quiet again: a GET per silence, and the same version is not delivered twice.
  await sleep(400);
  expect(gets(kube, "a").length).toBeGreaterThanOrEqual(2);
  expect(a.versions()).toHaveLength(1);
});

test("403 on the watch: asked once more, then polled at the given cadence, logged once; nothing fails", async () => {
  const kube = cluster(["a", "b"]);
  kube.onRequest(r =>
    r.query?.watch
      ? new KubeError(403, "Forbidden", `User "${r.user}" cannot watch resource "deployments"`)
      : undefined,
  );
  const { log, warn } = logger();
  const w = make(kube, { pollMs: () => 40, refusedRecheckMs: 30, log });
  const a = follow(w, "a", await scale(kube, "a", 2));
  await until("two watch requests", () => watchRequests(kube).length === 2);
  kube.completeRollout(dpath("a"));
  await until("a done by polling", a.done);
  expect(watchRequests(kube)).toHaveLength(2);
  expect(w.stats()).toMatchObject({ streams: 1, polling: 1 });
  // A second interest in the same namespace joins the polling: no new watch, no new log line.
  const b = follow(w, "b", await scale(kube, "b", 2));
  kube.completeRollout(dpath("b"));
  await until("b done by polling", b.done);
  expect(watchRequests(kube)).toHaveLength(2);
  expect(warn).toHaveBeenCalledTimes(1);
  expect(warn.mock.calls[0][0]).toMatch(
    /cannot watch Deployments in namespace shop as system:serviceaccount:shop:atb-executor; polling/,
  );
  // The refusal is remembered: a new stream for the same key polls without asking.
  a.handle.cancel();
  b.handle.cancel();
  await until("stream stopped", () => w.stats().streams === 0);
  const c = follow(w, "a", await scale(kube, "a", 3));
  kube.completeRollout(dpath("a"));
  await until("a done again", c.done);
  expect(watchRequests(kube)).toHaveLength(2);
  expect(warn).toHaveBeenCalledTimes(1);
});

test("a port without watch polls; a deletion is delivered once", async () => {
  const kube = cluster(["a"]);
  const noWatch: OperatorKube = {
    request: (r, d) => kube.request(r, d),
    get: (p, q) => kube.get(p, q),
    as: user => {
      const { request, get } = kube.as(user);
      return { request, get };
    },
  };
  const w = make(noWatch, { pollMs: () => 30 });
  const a = follow(w, "a", await scale(kube, "a", 2));
  kube.completeRollout(dpath("a"));
  await until("a done", a.done);
  await kube.request({ method: "DELETE", path: dpath("a") });
  await until("deleted", () => a.updates.some(u => u.type === "DELETED"));
  await sleep(100);
  expect(a.updates.filter(u => u.type === "DELETED")).toHaveLength(1);
  expect(a.handle.latest()).toBeUndefined();
  expect(watchRequests(kube)).toEqual([]);
});

test("a deletion seen on the stream is delivered once, and a GET that then finds nothing adds nothing", async () => {
  const kube = cluster(["a"]);
  const w = make(kube, { silentMs: 100 });
  const a = follow(w, "a", await scale(kube, "a", 2));
  await until("stream open", () => kube.openWatches() === 1);
  await kube.request({ method: "DELETE", path: dpath("a") });
  await until("deleted", () => a.updates.length === 1);
  await sleep(300); // silent GETs find it gone
  expect(gets(kube, "a").length).toBeGreaterThanOrEqual(1);
  expect(a.updates.map(u => u.type)).toEqual(["DELETED"]);
});

test("cancelling the last interest stops the stream after lingerMs; an interest within it reuses the stream", async () => {
  const kube = cluster(["a", "b"]);
  const w = make(kube, { lingerMs: 150 });
  const a = follow(w, "a", await scale(kube, "a", 2));
  await until("stream open", () => kube.openWatches() === 1);
  a.handle.cancel();
  a.handle.cancel(); // idempotent
  await sleep(50);
  const b = follow(w, "b", await scale(kube, "b", 2));
  await sleep(200);
  expect(kube.openWatches()).toBe(1);
  kube.completeRollout(dpath("b"));
  kube.completeRollout(dpath("a"));
  await until("b done", b.done);
  expect(a.updates).toEqual([]); // cancelled: told nothing
  b.handle.cancel();
  await until("stream closed", () => kube.openWatches() === 0);
  expect(w.stats()).toEqual({ streams: 0, watching: 0, polling: 0, interests: 0 });
  expect(watchRequests(kube)).toHaveLength(1);
});

test("streams are per user, kind and namespace; a callback that throws breaks nothing", async () => {
  const kube = cluster(["a"]);
  kube.put(resourcePath("Deployment", "other", "a"), { kind: "Deployment", metadata: {}, spec: { replicas: 1 } });
  kube.put(resourcePath("StatefulSet", NS, "db"), { kind: "StatefulSet", metadata: {}, spec: { replicas: 1 } });
  const { log, warn } = logger();
  const w = make(kube, { log });
  const written = await scale(kube, "a", 2);
  w.register(
    { user: EXEC, kind: "Deployment", namespace: NS, name: "a", resourceVersion: written.metadata.resourceVersion! },
    () => {
      throw new Error("callback bug");
    },
  );
  const ok = follow(w, "a", written);
  w.register(
    {
      user: "system:serviceaccount:other:atb-executor",
      kind: "Deployment",
      namespace: "other",
      name: "a",
      resourceVersion: "1",
    },
    () => undefined,
  );
  w.register({ user: EXEC, kind: "StatefulSet", namespace: NS, name: "db", resourceVersion: "1" }, () => undefined);
  await until("three streams", () => kube.openWatches() === 3);
  kube.completeRollout(dpath("a"));
  await until("ok told", ok.done);
  expect(warn).toHaveBeenCalledWith("object watch callback failed", expect.objectContaining({ error: "callback bug" }));
  expect(w.stats().streams).toBe(3);
  await w.close();
  await until("all closed", () => kube.openWatches() === 0);
  expect(() =>
    w.register({ user: EXEC, kind: "Deployment", namespace: NS, name: "a", resourceVersion: "1" }, () => undefined),
  ).toThrow(/closed/);
});
