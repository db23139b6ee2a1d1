// The in-memory API server the pipeline, status writer and runtime tests run on: each behaviour
// the operator relies on, checked here so those tests can trust it (see tests/helpers/fake-kube.ts).
import { KubeError, resourcePath, type WatchEvent } from "../../capabilities/lib/kube";
import type { KubeObject } from "../../capabilities/lib/action";
import { FakeCrash, FakeKube, parsePath } from "../helpers/fake-kube";
import { BARE_422, mergePatch, strategicMerge, type PatchType } from "../helpers/fake-kube-patch";

const NS = "shop";
const DEPLOY = resourcePath("Deployment", NS, "web");
const CM = resourcePath("ConfigMap", NS, "flags");
const TASK = resourcePath("AgentTask", NS, "t1");
const T0 = new Date("2026-03-01T12:00:00.250Z");

function cluster(opts: ConstructorParameters<typeof FakeKube>[0] = {}): FakeKube {
  const kube = new FakeKube({ now: () => T0, ...opts });
  kube.put(DEPLOY, {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { labels: { app: "web" } },
    spec: { replicas: 2, template: { spec: { containers: [{ name: "app", image: "nginx:1" }] } } },
    status: { observedGeneration: 1 },
  });
  kube.put(CM, { apiVersion: "v1", kind: "ConfigMap", metadata: {}, data: { a: "1" } });
  return kube;
}

async function rejection(p: Promise<unknown>): Promise<KubeError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof KubeError)) throw new Error(`expected a KubeError, got ${String(err)}`);
  return err;
}

const patch = (kube: FakeKube, path: string, body: unknown, o: { type?: PatchType; dryRun?: boolean } = {}) =>
  kube.request<KubeObject>({ method: "PATCH", path, body, patchType: o.type ?? "merge" }, o.dryRun);

describe("paths", () => {
  test.each([
    [DEPLOY, { key: DEPLOY, plural: "deployments", name: "web", namespace: NS, resource: "deployments.apps" }],
    [`${CM}`, { plural: "configmaps", name: "flags", resource: "configmaps" }],
    [`${TASK}/status`, { key: TASK, sub: "status", resource: "agenttasks.atb.siemens.com" }],
    [resourcePath("AgentTask"), { plural: "agenttasks", name: undefined, namespace: undefined }],
  ])("GIVEN %s WHEN parsed THEN its parts are known", (path, want) => {
    expect(parsePath(path)).toMatchObject(want);
  });
});

describe("create and read", () => {
  test("GIVEN a put WHEN read THEN uid, creationTimestamp (seconds), resourceVersion and generation are set", () => {
    const kube = cluster();
    const d = kube.read(DEPLOY)!;
    expect(d.metadata).toMatchObject({ name: "web", namespace: NS, generation: 1 });
    expect(d.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(d.metadata.creationTimestamp).toBe("2026-03-01T12:00:00Z");
    expect(Number(kube.read(CM)!.metadata.resourceVersion)).toBeGreaterThan(Number(d.metadata.resourceVersion));
    expect(kube.read(CM)!.metadata.generation).toBeUndefined(); // no spec, no generation
  });

  test("GIVEN a missing object WHEN requested THEN 404 NotFound, and get() answers undefined", async () => {
    const kube = cluster();
    const err = await rejection(kube.request({ method: "GET", path: resourcePath("Deployment", NS, "nope") }));
    expect(err).toMatchObject({ status: 404, apiReason: "NotFound", kind: "TARGET_NOT_FOUND" });
    expect(err.message).toBe('deployments.apps "nope" not found');
    await expect(kube.get(resourcePath("Deployment", NS, "nope"))).resolves.toBeUndefined();
    await expect(kube.get(DEPLOY)).resolves.toMatchObject({ metadata: { name: "web" } });
  });

  test("GIVEN a POST WHEN the name is free THEN 201 and stored; WHEN it clashes THEN 409 AlreadyExists", async () => {
    const kube = cluster();
    const ev = { metadata: { name: "e1", namespace: NS }, reason: "Queued" };
    const created = await kube.request<KubeObject>({ method: "POST", path: resourcePath("Event", NS), body: ev });
    expect(created.metadata.uid).toBeDefined();
    expect(kube.audit.at(-1)).toMatchObject({ method: "POST", status: 201, stored: true });
    const err = await rejection(kube.request({ method: "POST", path: resourcePath("Event", NS), body: ev }));
    expect(err).toMatchObject({ status: 409, apiReason: "AlreadyExists", kind: "KUBE_REJECTED" });
  });

  test("GIVEN a POST whose namespace differs from the path's THEN 400", async () => {
    const kube = cluster();
    const body = { metadata: { name: "e", namespace: "other" } };
    const err = await rejection(kube.request({ method: "POST", path: resourcePath("Event", NS), body }));
    expect(err.status).toBe(400);
  });

  test("GIVEN a returned object WHEN the caller mutates it THEN the store is unchanged", async () => {
    const kube = cluster();
    const d = (await kube.get<KubeObject>(DEPLOY))!;
    d.spec!.replicas = 99;
    expect(kube.read(DEPLOY)!.spec!.replicas).toBe(2);
  });
});

describe("resourceVersion and generation", () => {
  test.each([
    { what: "a spec change", path: DEPLOY, body: { spec: { replicas: 3 } }, bumped: true, generation: true },
    {
      what: "an annotation",
      path: DEPLOY,
      body: { metadata: { annotations: { a: "b" } } },
      bumped: true,
      generation: false,
    },
    { what: "a data change", path: CM, body: { data: { a: "2" } }, bumped: true, generation: false },
    { what: "a no-op", path: DEPLOY, body: { spec: { replicas: 2 } }, bumped: false, generation: false },
  ])(
    "GIVEN $what WHEN patched THEN rv bumped: $bumped, generation bumped: $generation",
    async ({ path, body, bumped, generation }) => {
      const kube = cluster();
      const before = kube.read(path)!;
      const after = await patch(kube, path, body);
      expect(after.metadata.resourceVersion !== before.metadata.resourceVersion).toBe(bumped);
      expect(kube.read(path)!.metadata.resourceVersion).toBe(after.metadata.resourceVersion);
      if (bumped) expect(after.metadata.resourceVersion).toBe(kube.resourceVersion); // one global counter
      expect(after.metadata.generation !== before.metadata.generation).toBe(generation);
      expect(kube.audit.at(-1)!.stored).toBe(bumped);
    },
  );

  test("GIVEN a status change WHEN patched on /status THEN rv bumped, generation unchanged", async () => {
    const kube = cluster();
    const after = await patch(kube, `${DEPLOY}/status`, { status: { readyReplicas: 2 } });
    expect(after.metadata.generation).toBe(1);
    expect(after.status).toMatchObject({ readyReplicas: 2, observedGeneration: 1 });
  });
});

describe("patch content types", () => {
  test("merge (RFC 7386): null deletes, lists replace whole", () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { a: null, b: { c: null, e: 4 }, l: [3] })).toEqual({
      b: { d: 3, e: 4 },
      l: [3],
    });
    expect(mergePatch({ a: 1 }, "x")).toBe("x");
  });

  test.each([
    [
      "named lists merge by name",
      {
        c: [
          { name: "a", image: "1" },
          { name: "b", image: "1" },
        ],
      },
      {
        c: [
          { name: "b", image: "2" },
          { name: "z", image: "9" },
        ],
      },
      {
        c: [
          { name: "a", image: "1" },
          { name: "b", image: "2" },
          { name: "z", image: "9" },
        ],
      },
    ],
    [
      "$patch: delete removes an element",
      { c: [{ name: "a" }, { name: "b" }] },
      { c: [{ name: "a", $patch: "delete" }] },
      { c: [{ name: "b" }] },
    ],
    [
      "$patch: replace in a list replaces it",
      { c: [{ name: "a" }, { name: "b" }] },
      { c: [{ $patch: "replace" }, { name: "z" }] },
      { c: [{ name: "z" }] },
    ],
    [
      "$patch: replace in a map replaces it",
      { m: { a: 1, b: 2 } },
      { m: { $patch: "replace", c: 3 } },
      { m: { c: 3 } },
    ],
    ["lists of scalars replace", { l: [1, 2] }, { l: [3] }, { l: [3] }],
    ["null deletes", { a: 1, b: 2 }, { a: null }, { b: 2 }],
  ])("strategic: %s", (_, live, body, want) => {
    expect(strategicMerge(live, body)).toEqual(want);
  });

  test("GIVEN a strategic patch of one container's image THEN the other containers stay", async () => {
    const kube = cluster();
    await patch(
      kube,
      DEPLOY,
      { spec: { template: { spec: { containers: [{ name: "side", image: "x" }] } } } },
      { type: "strategic" },
    );
    const d = kube.read(DEPLOY)!;
    expect((d.spec!.template as { spec: { containers: unknown[] } }).spec.containers).toHaveLength(2);
  });

  test("GIVEN a json patch THEN applied; WHEN a test op fails THEN 422 Invalid with the bare message", async () => {
    const kube = cluster();
    await patch(kube, DEPLOY, [{ op: "replace", path: "/spec/replicas", value: 4 }], { type: "json" });
    expect(kube.read(DEPLOY)!.spec!.replicas).toBe(4);
    const failed = await rejection(
      patch(kube, DEPLOY, [{ op: "test", path: "/metadata/generation", value: 1 }], { type: "json" }),
    );
    expect(failed).toMatchObject({ status: 422, apiReason: "Invalid", message: BARE_422, kind: "KUBE_REJECTED" });
    const missing = await rejection(
      patch(kube, DEPLOY, [{ op: "replace", path: "/nope/x", value: 1 }], { type: "json" }),
    );
    expect(missing.message).toBe(BARE_422);
  });

  test("GIVEN apply on a missing object THEN it is created; on an existing one THEN merged", async () => {
    const kube = cluster();
    const path = resourcePath("Deployment", NS, "new");
    const body = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "new" }, spec: { replicas: 1 } };
    const made = await patch(kube, path, body, { type: "apply" });
    expect(made.metadata).toMatchObject({ name: "new", namespace: NS, generation: 1 });
    await patch(kube, path, { ...body, spec: { paused: true } }, { type: "apply" });
    expect(kube.read(path)!.spec).toEqual({ replicas: 1, paused: true });
  });

  test("GIVEN a PATCH of a missing object (not apply) THEN 404", async () => {
    const err = await rejection(patch(cluster(), resourcePath("Deployment", NS, "nope"), { spec: {} }));
    expect(err.status).toBe(404);
  });
});

describe("resourceVersion precondition", () => {
  test.each([
    ["merge body", "merge", (rv: string) => ({ metadata: { resourceVersion: rv }, spec: { replicas: 5 } })],
    ["strategic body", "strategic", (rv: string) => ({ metadata: { resourceVersion: rv }, spec: { replicas: 5 } })],
    [
      "json replace",
      "json",
      (rv: string) => [
        { op: "replace", path: "/metadata/resourceVersion", value: rv },
        { op: "replace", path: "/spec/replicas", value: 5 },
      ],
    ],
  ] as const)("%s: matching rv is written, a stale one answers 409 Conflict", async (_, type, body) => {
    const kube = cluster();
    const rv = kube.read(DEPLOY)!.metadata.resourceVersion!;
    await kube.request({ method: "PATCH", path: DEPLOY, patchType: type, body: body(rv) });
    const err = await rejection(kube.request({ method: "PATCH", path: DEPLOY, patchType: type, body: body(rv) }));
    expect(err).toMatchObject({ status: 409, apiReason: "Conflict", kind: "KUBE_TRANSIENT" });
    expect(err.message).toMatch(
      /^Operation cannot be fulfilled on deployments.apps "web": the object has been modified/,
    );
  });
});

describe("status subresource", () => {
  test("GIVEN a PATCH on /status THEN only status changes", async () => {
    const kube = cluster();
    await patch(kube, `${DEPLOY}/status`, {
      spec: { replicas: 9 },
      metadata: { labels: { x: "y" } },
      status: { replicas: 2 },
    });
    const d = kube.read(DEPLOY)!;
    expect(d.spec!.replicas).toBe(2);
    expect(d.metadata.labels).toEqual({ app: "web" });
    expect(d.status).toMatchObject({ replicas: 2 });
  });

  test("GIVEN a PATCH on the object THEN status is ignored", async () => {
    const kube = cluster();
    await patch(kube, DEPLOY, { spec: { replicas: 3 }, status: { replicas: 9 } });
    expect(kube.read(DEPLOY)!.status).toEqual({ observedGeneration: 1 });
    await patch(kube, CM, { status: { x: 1 } });
    expect(kube.read(CM)!.status).toBeUndefined();
  });

  test("GIVEN a GET of /status THEN the object; of another subresource THEN 404", async () => {
    const kube = cluster();
    await expect(kube.get(`${DEPLOY}/status`)).resolves.toMatchObject({ metadata: { name: "web" } });
    await expect(kube.get(`${DEPLOY}/scale`)).resolves.toBeUndefined();
  });
});

describe("dry run", () => {
  test.each([
    ["PATCH", { method: "PATCH", path: DEPLOY, patchType: "merge", body: { spec: { replicas: 7 } } }],
    ["POST", { method: "POST", path: resourcePath("Event", NS), body: { metadata: { name: "e" } } }],
    [
      "apply create",
      { method: "PATCH", path: resourcePath("Deployment", NS, "x"), patchType: "apply", body: { spec: {} } },
    ],
    ["DELETE", { method: "DELETE", path: CM }],
  ] as const)("GIVEN a dry-run %s THEN the answer is computed but nothing is stored or bumped", async (_, req) => {
    const kube = cluster();
    const rv = kube.resourceVersion;
    const snapshot = [kube.read(DEPLOY), kube.read(CM)];
    await kube.request(req, true);
    expect(kube.resourceVersion).toBe(rv);
    expect([kube.read(DEPLOY), kube.read(CM)]).toEqual(snapshot);
    expect(kube.read(resourcePath("Deployment", NS, "x"))).toBeUndefined();
    expect(kube.audit.at(-1)).toMatchObject({ dryRun: true, stored: false });
  });

  test("GIVEN a dry run THEN the answer shows the change with the old resourceVersion", async () => {
    const kube = cluster();
    const rv = kube.read(DEPLOY)!.metadata.resourceVersion;
    const out = await patch(kube, DEPLOY, { spec: { replicas: 7 } }, { dryRun: true });
    expect(out.spec!.replicas).toBe(7);
    expect(out.metadata).toMatchObject({ resourceVersion: rv, generation: 2 });
  });

  test("GIVEN an invalid change WHEN dry-run THEN 422 as for the real write", async () => {
    const err = await rejection(patch(cluster(), DEPLOY, { spec: { replicas: -1 } }, { dryRun: true }));
    expect(err).toMatchObject({ status: 422, apiReason: "Invalid" });
  });
});

describe("validation", () => {
  test.each([
    ["negative replicas", DEPLOY, { spec: { replicas: -1 } }, /spec.replicas/],
    ["non-string data", CM, { data: { a: 1 } }, /data\[a\]/],
    ["non-string annotation", CM, { metadata: { annotations: { a: true } } }, /metadata.annotations\[a\]/],
  ])("GIVEN %s THEN 422 Invalid naming the field", async (_, path, body, msg) => {
    const err = await rejection(patch(cluster(), path, body));
    expect(err.status).toBe(422);
    expect(err.message).toMatch(msg);
  });

  test("GIVEN an immutable ConfigMap WHEN its data changes THEN 422", async () => {
    const kube = cluster();
    await patch(kube, CM, { immutable: true });
    const err = await rejection(patch(kube, CM, { data: { a: "2" } }));
    expect(err.message).toMatch(/immutable/);
  });

  test("GIVEN a test's validator THEN its message answers 422", async () => {
    const kube = cluster({ validate: o => (o.spec?.replicas === 13 ? "spec.replicas: unlucky" : undefined) });
    const err = await rejection(patch(kube, DEPLOY, { spec: { replicas: 13 } }));
    expect(err.message).toBe('Deployment "web" is invalid: spec.replicas: unlucky');
  });
});

describe("lists", () => {
  function many(): FakeKube {
    const kube = new FakeKube();
    for (const [ns, name, app] of [
      ["a", "t3", "x"],
      ["a", "t1", "y"],
      ["b", "t2", "x"],
      ["a", "t2", "x"],
    ])
      kube.put(resourcePath("AgentTask", ns, name), { metadata: { labels: { app } }, spec: {} });
    return kube;
  }
  const names = (r: { items: KubeObject[] }) => r.items.map(o => `${o.metadata.namespace}/${o.metadata.name}`);

  test("GIVEN a namespace THEN only its objects, in key order", async () => {
    const r = await many().request<{ items: KubeObject[] }>({ method: "GET", path: resourcePath("AgentTask", "a") });
    expect(names(r)).toEqual(["a/t1", "a/t2", "a/t3"]);
  });

  test("GIVEN limit=3 over all namespaces THEN pages joined by continue", async () => {
    const kube = many();
    const path = resourcePath("AgentTask");
    type Page = { items: KubeObject[]; metadata: { continue?: string } };
    const p1 = await kube.request<Page>({ method: "GET", path, query: { limit: "3" } });
    expect(p1.metadata.continue).toBeTruthy();
    const p2 = await kube.request<Page>({
      method: "GET",
      path,
      query: { limit: "3", continue: p1.metadata.continue! },
    });
    expect(p2.metadata.continue).toBeUndefined();
    expect([...names(p1), ...names(p2)]).toEqual(["a/t1", "a/t2", "a/t3", "b/t2"]);
  });

  test.each([
    ["app=x", ["a/t2", "a/t3", "b/t2"]],
    ["app==y", ["a/t1"]],
    ["app!=x", ["a/t1"]],
    ["app", ["a/t1", "a/t2", "a/t3", "b/t2"]],
    ["!app", []],
    ["app=x,app!=x", []],
    ["app in (y,z)", ["a/t1"]],
    ["app notin (x)", ["a/t1"]],
    ["tier notin (x,y)", ["a/t1", "a/t2", "a/t3", "b/t2"]],
    ["app in (x, y),app notin (y)", ["a/t2", "a/t3", "b/t2"]],
  ])("GIVEN labelSelector %s THEN the matching objects", async (labelSelector, want) => {
    const r = await many().request<{ items: KubeObject[] }>({
      method: "GET",
      path: resourcePath("AgentTask"),
      query: { labelSelector },
    });
    expect(names(r)).toEqual(want);
  });

  test.each([
    ["metadata.namespace!=a", ["b/t2"]],
    ["metadata.namespace!=a,metadata.namespace!=b", []],
    ["metadata.namespace=a,metadata.name==t2", ["a/t2"]],
    // The AgentTask CRD's selectable field; a task without a phase has "" (t3, t2 in b).
    ["status.phase=Completed", ["a/t2"]],
    ["status.phase!=Completed,status.phase!=Denied", ["a/t3", "b/t2"]],
    ["status.phase=", ["a/t3", "b/t2"]],
  ])("GIVEN fieldSelector %s THEN the matching objects", async (fieldSelector, want) => {
    const kube = many();
    kube.mutate(resourcePath("AgentTask", "a", "t1"), o => Object.assign(o, { status: { phase: "Denied" } }));
    kube.mutate(resourcePath("AgentTask", "a", "t2"), o => Object.assign(o, { status: { phase: "Completed" } }));
    const r = await kube.request<{ items: KubeObject[] }>({
      method: "GET",
      path: resourcePath("AgentTask"),
      query: { fieldSelector },
    });
    expect(names(r)).toEqual(want);
  });

  test.each([
    ["a bad selector", { labelSelector: "a in b" }],
    ["a field custom resources cannot select on", { fieldSelector: "spec.action=scale" }],
    ["a bad continue token", { continue: "!!" }],
  ])("GIVEN %s THEN 400", async (_, query) => {
    const err = await rejection(many().request({ method: "GET", path: resourcePath("AgentTask"), query }));
    expect(err.status).toBe(400);
  });

  test.each([
    ["a Deployment's status.phase", new FakeKube(), resourcePath("Deployment", "a")],
    [
      "a task's status.phase where the CRD declares no selectable field",
      new FakeKube({ phaseSelectable: false }),
      resourcePath("AgentTask"),
    ],
  ])("GIVEN %s THEN 400 field label not supported", async (_, kube, path) => {
    const err = await rejection(
      kube.request({ method: "GET", path, query: { fieldSelector: "status.phase=Pending" } }),
    );
    expect([err.status, err.message]).toEqual([400, "field label not supported: status.phase"]);
  });
});

describe("audit and faults", () => {
  test("GIVEN requests THEN each is audited with method, path, dryRun, patchType, body and status", async () => {
    const kube = cluster();
    await kube.get(resourcePath("Deployment", NS, "nope"));
    await patch(kube, DEPLOY, { spec: { replicas: 3 } }, { dryRun: true });
    expect(
      kube.audit.map(({ seq, method, dryRun, patchType, status, stored }) => ({
        seq,
        method,
        dryRun,
        patchType,
        status,
        stored,
      })),
    ).toEqual([
      { seq: 1, method: "GET", dryRun: false, status: 404, stored: false },
      { seq: 2, method: "PATCH", dryRun: true, patchType: "merge", status: 200, stored: false },
    ]);
    expect(kube.audit[1].body).toEqual({ spec: { replicas: 3 } });
  });

  test.each([
    ["409", new KubeError(409, "Conflict", "x"), 409],
    ["500", new KubeError(500, "InternalError", "x"), 500],
    ["network", new KubeError(0, "NetworkError", "x"), 0],
  ])(
    "GIVEN a %s fault at request 2 THEN that request fails, stores nothing, and request 3 works",
    async (_, error, status) => {
      const kube = cluster().onRequest(r => (r.seq === 2 ? error : undefined));
      const rv = kube.resourceVersion;
      await patch(kube, DEPLOY, { spec: { replicas: 3 } });
      await expect(patch(kube, DEPLOY, { spec: { replicas: 4 } })).rejects.toBe(error);
      expect(kube.read(DEPLOY)!.spec!.replicas).toBe(3);
      await patch(kube, DEPLOY, { spec: { replicas: 5 } });
      expect(kube.audit.map(e => e.status)).toEqual([200, status, 200]);
      expect(Number(kube.resourceVersion)).toBe(Number(rv) + 2);
    },
  );

  test("GIVEN a fault after the request THEN it is stored but the caller sees the error", async () => {
    const error = new KubeError(0, "NetworkError", "connection reset");
    const kube = cluster().onRequest(r => (r.method === "PATCH" ? { error, when: "after" } : undefined));
    await expect(patch(kube, DEPLOY, { spec: { replicas: 6 } })).rejects.toBe(error);
    expect(kube.read(DEPLOY)!.spec!.replicas).toBe(6);
    expect(kube.audit.at(-1)).toMatchObject({ status: 0, stored: true });
    expect(kube.writes()).toHaveLength(1);
  });

  test("GIVEN a crash THEN every later request fails until restart()", async () => {
    const kube = cluster().onRequest(r => (r.seq === 1 ? new FakeCrash("test") : undefined));
    await expect(kube.get(DEPLOY)).rejects.toBeInstanceOf(FakeCrash);
    expect(kube.crashed).toBe(true);
    await expect(patch(kube, DEPLOY, { spec: { replicas: 3 } })).rejects.toBeInstanceOf(FakeCrash);
    expect(kube.read(DEPLOY)!.spec!.replicas).toBe(2);
    kube.restart();
    await expect(kube.get(DEPLOY)).resolves.toBeDefined();
    expect(kube.audit.map(e => e.status)).toEqual(["crash", "crash", 200]);
  });

  test("GIVEN clearFaults THEN hooks no longer run", async () => {
    const kube = cluster().onRequest(() => new KubeError(500, "InternalError", "x"));
    kube.clearFaults();
    await expect(kube.get(DEPLOY)).resolves.toBeDefined();
  });
});

describe("other verbs and helpers", () => {
  test("GIVEN a PUT with a stale resourceVersion THEN 409; with the current one THEN replaced", async () => {
    const kube = cluster();
    const d = kube.read(DEPLOY)!;
    await kube.request({ method: "PUT", path: DEPLOY, body: { ...d, spec: { replicas: 8 } } });
    expect(kube.read(DEPLOY)!.spec).toEqual({ replicas: 8 });
    const err = await rejection(kube.request({ method: "PUT", path: DEPLOY, body: { ...d, spec: { replicas: 9 } } }));
    expect(err.status).toBe(409);
  });

  test("GIVEN a DELETE THEN gone; a second DELETE THEN 404", async () => {
    const kube = cluster();
    await kube.request({ method: "DELETE", path: CM });
    expect(kube.read(CM)).toBeUndefined();
    expect((await rejection(kube.request({ method: "DELETE", path: CM }))).status).toBe(404);
  });

  test("GIVEN completeRollout THEN the Deployment reports its spec rolled out", () => {
    const kube = cluster();
    kube.mutate(DEPLOY, o => (o.spec!.replicas = 4));
    const d = kube.completeRollout(DEPLOY);
    expect(d.metadata.generation).toBe(2);
    expect(d.status).toMatchObject({
      observedGeneration: 2,
      replicas: 4,
      readyReplicas: 4,
      updatedReplicas: 4,
      availableReplicas: 4,
    });
  });

  test("GIVEN autoRollout THEN every stored write to a workload is rolled out at once", async () => {
    const kube = cluster({ autoRollout: true });
    await patch(kube, DEPLOY, { spec: { replicas: 5 } });
    expect(kube.read(DEPLOY)!.status).toMatchObject({ observedGeneration: 2, readyReplicas: 5 });
  });

  test("GIVEN a path outside the API THEN 404", async () => {
    await expect(cluster().get("/healthz")).resolves.toBeUndefined();
  });
});

describe("watches", () => {
  const DEPLOYS = resourcePath("Deployment", NS);
  type Seen = { type: string; name?: string; rv?: string; code?: number };
  const seen = (e: WatchEvent): Seen =>
    e.type === "ERROR"
      ? { type: e.type, code: e.object.code }
      : {
          type: e.type,
          ...(e.type === "BOOKMARK" ? {} : { name: (e.object as KubeObject).metadata.name }),
          rv: (e.object as KubeObject).metadata.resourceVersion,
        };
  const flush = () => new Promise(r => setImmediate(r));

  test("GIVEN a watch from a resourceVersion THEN every later write of its collection arrives in order, nothing else", async () => {
    const kube = cluster();
    const from = kube.resourceVersion;
    await patch(kube, DEPLOY, { spec: { replicas: 3 } }); // before the watch: replayed from history
    const events: Seen[] = [];
    const ac = new AbortController();
    const done = kube
      .as("system:serviceaccount:shop:atb-executor")
      .watch({ path: DEPLOYS, resourceVersion: from, signal: ac.signal }, e => events.push(seen(e)));
    await flush();
    kube.completeRollout(DEPLOY);
    await patch(kube, CM, { data: { b: "2" } }); // another collection
    await patch(kube, DEPLOY, { spec: { replicas: 3 } }); // no change: not stored, no event
    await patch(kube, DEPLOY, { spec: { replicas: 1 } }, { dryRun: true }); // dry run: no event
    kube.put(resourcePath("Deployment", NS, "api"), { kind: "Deployment", metadata: {}, spec: { replicas: 1 } });
    kube.put(resourcePath("Deployment", "other", "web"), { kind: "Deployment", metadata: {}, spec: {} });
    await kube.request({ method: "DELETE", path: resourcePath("Deployment", NS, "api") });
    kube.bookmark();
    await flush();
    const r = Number(from);
    expect(events).toEqual([
      { type: "MODIFIED", name: "web", rv: String(r + 1) },
      { type: "MODIFIED", name: "web", rv: String(r + 2) },
      { type: "ADDED", name: "api", rv: String(r + 4) },
      { type: "DELETED", name: "api", rv: String(r + 6) },
      { type: "BOOKMARK", rv: String(r + 6) },
    ]);
    expect(kube.openWatches()).toBe(1);
    expect(kube.openWatches("someone-else")).toBe(0);
    ac.abort();
    await expect(done).resolves.toBeUndefined();
    expect(kube.openWatches()).toBe(0);
    // Audited as a GET with the watch query, as the impersonated user.
    const entry = kube.audit.find(e => e.query?.watch === "1")!;
    expect(entry).toMatchObject({ method: "GET", path: DEPLOYS, user: "system:serviceaccount:shop:atb-executor" });
    expect(entry.query).toMatchObject({ resourceVersion: from, allowWatchBookmarks: "true" });
  });

  test("GIVEN no resourceVersion THEN every object first, as ADDED; selectors apply", async () => {
    const kube = cluster();
    kube.put(resourcePath("Deployment", NS, "api"), { kind: "Deployment", metadata: { labels: { app: "api" } } });
    const events: Seen[] = [];
    const ac = new AbortController();
    const done = kube.watch({ path: DEPLOYS, labelSelector: "app=web", signal: ac.signal }, e => events.push(seen(e)));
    await flush();
    expect(events).toEqual([
      { type: "ADDED", name: "web", rv: kube.read<KubeObject>(DEPLOY)!.metadata.resourceVersion },
    ]);
    ac.abort();
    await done;
  });

  test("GIVEN a resourceVersion older than the history THEN ERROR 410 and the watch ends; expireWatches does the same to open ones", async () => {
    const kube = cluster({ watchHistory: 2 });
    const from = kube.resourceVersion;
    for (const n of [3, 4, 5]) await patch(kube, DEPLOY, { spec: { replicas: n } });
    const events: Seen[] = [];
    await kube.watch({ path: DEPLOYS, resourceVersion: from }, e => events.push(seen(e)));
    expect(events).toEqual([{ type: "ERROR", code: 410 }]);

    const open: Seen[] = [];
    const done = kube.watch({ path: DEPLOYS, resourceVersion: kube.resourceVersion }, e => open.push(seen(e)));
    await flush();
    kube.expireWatches();
    await expect(done).resolves.toBeUndefined();
    expect(open).toEqual([{ type: "ERROR", code: 410 }]);
  });

  test("GIVEN endWatches THEN queued events arrive first; with an error the watch rejects with it; faults refuse a watch", async () => {
    const kube = cluster();
    const events: Seen[] = [];
    const done = kube.watch({ path: DEPLOYS, resourceVersion: kube.resourceVersion }, e => events.push(seen(e)));
    await flush();
    kube.mutate(DEPLOY, o => (o.spec!.replicas = 7));
    kube.endWatches();
    await expect(done).resolves.toBeUndefined();
    expect(events.map(e => e.type)).toEqual(["MODIFIED"]);

    const broken = kube.watch({ path: DEPLOYS, resourceVersion: kube.resourceVersion }, () => undefined);
    await flush();
    const cut = new KubeError(0, "NetworkError", "connection reset");
    kube.endWatches(cut);
    await expect(broken).rejects.toBe(cut);

    kube.onRequest(r => (r.query?.watch ? new KubeError(403, "Forbidden", "cannot watch") : undefined));
    expect((await rejection(kube.as("u").watch!({ path: DEPLOYS }, () => undefined))).status).toBe(403);
    expect(kube.audit.at(-1)).toMatchObject({ status: 403, user: "u" });
  });
});
