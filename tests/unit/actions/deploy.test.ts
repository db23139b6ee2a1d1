// deploy: image (one container, strategic merge by name) or manifest (a JSON patch whose spec
// replaces the target's, under the observed resourceVersion, with the marker in the same write;
// verified against the template the controller rolled out), and creation only when configuration
// allows it.
import { DeployAction } from "../../../capabilities/deploy";
import type { KubeObject } from "../../../capabilities/lib/action";
import { ANNOTATION_APPLIED_TASKS } from "../../../capabilities/lib/action/marker";
import { ANNOTATION_APPLIED_BY } from "../../../crds/agenttask";
import { config, ctx, FakeKube, NS, spec, UID, workload } from "./fake";

const pointer = (key: string) => key.replace(/~/g, "~0").replace(/\//g, "~1");

const manifest = (over: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "web", namespace: NS, ...meta },
  spec: { replicas: 2, template: { spec: { containers: [{ name: "app", image: "nginx:1.28" }] } } },
  ...over,
});

describe("deploy validate()", () => {
  const cfg = config({ ATB_MAX_PATCH_BYTES: "2048" });
  test.each([
    [{ image: "nginx:1.28" }, []],
    [{ image: "nginx:1.28", container: "app" }, []],
    [{ manifest: manifest() }, []],
    [{}, ["spec.payload: exactly one of image or manifest is required"]],
    [{ image: "a", manifest: manifest() }, ["spec.payload: exactly one of image or manifest is required"]],
    [
      { image: "nginx 1.28" },
      ["spec.payload.image: must be a container image reference of 1 to 1024 characters without whitespace"],
    ],
    [
      { image: "x", container: "App_1" },
      ["spec.payload.container: must be a container name (lower-case DNS label, at most 63 characters)"],
    ],
    [
      { image: "x", tag: "y" },
      ["spec.payload.tag: not a field of action deploy (allowed: image, container, manifest, reason)"],
    ],
    [
      { manifest: manifest({ kind: "StatefulSet" }) },
      ['spec.payload.manifest.kind: must equal spec.target.kind "Deployment" (got "StatefulSet")'],
    ],
    [
      { manifest: manifest({ apiVersion: "extensions/v1beta1" }) },
      ['spec.payload.manifest.apiVersion: must be "apps/v1" (got "extensions/v1beta1")'],
    ],
    [
      { manifest: manifest({}, { name: "other" }) },
      ['spec.payload.manifest.metadata.name: must equal spec.target.name "web" (got "other")'],
    ],
    [
      { manifest: manifest({}, { namespace: undefined }) },
      [
        expect.stringMatching(
          /^spec\.payload\.manifest\.metadata\.namespace: must equal spec\.target\.namespace "shop"/,
        ),
      ],
    ],
    [
      { manifest: manifest({}, { uid: "u" }) },
      ["spec.payload.manifest.metadata.uid: must not be set (the API server owns it)"],
    ],
    [
      {
        manifest: manifest(
          {},
          { ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "api", uid: "u" }] },
        ),
      },
      [
        "spec.payload.manifest.metadata.ownerReferences: must not be set (a deploy does not change who owns the workload: an owner can garbage-collect or adopt it)",
      ],
    ],
    [
      { manifest: manifest({}, { finalizers: ["example.com/hold"] }) },
      [
        "spec.payload.manifest.metadata.finalizers: must not be set (a deploy does not change the workload's finalizers: one can block its deletion)",
      ],
    ],
    [
      { manifest: manifest({}, { ownerReferences: [], finalizers: null, generation: 3 }) },
      [
        "spec.payload.manifest.metadata.generation: must not be set (the API server owns it)",
        expect.stringMatching(/^spec\.payload\.manifest\.metadata\.ownerReferences: must not be set \(/),
        expect.stringMatching(/^spec\.payload\.manifest\.metadata\.finalizers: must not be set \(/),
      ],
    ],
    [
      { manifest: manifest({ status: {} }) },
      ["spec.payload.manifest.status: must not be set (the controller writes status)"],
    ],
    [{ manifest: manifest(), container: "app" }, ["spec.payload.container: only allowed with spec.payload.image"]],
    [
      { manifest: "apiVersion: apps/v1" },
      ["spec.payload.manifest: must be an object (the full Deployment, StatefulSet or DaemonSet)"],
    ],
  ])("%p → %p", (payload, errors) => {
    expect(DeployAction.validate(spec("deploy", "Deployment", payload), cfg)).toEqual(errors);
  });

  test("a manifest larger than ATB_MAX_PATCH_BYTES is refused", () => {
    const big = manifest({}, { annotations: { note: "x".repeat(3000) } });
    expect(DeployAction.validate(spec("deploy", "Deployment", { manifest: big }), cfg)).toEqual([
      expect.stringMatching(
        /^spec\.payload\.manifest: must be at most 2048 bytes as JSON \(ATB_MAX_PATCH_BYTES; got \d+\)$/,
      ),
    ]);
  });
});

describe("deploy plan() with an image", () => {
  test("strategic merge of the one container's image, context with current and new images", async () => {
    const plan = await DeployAction.plan(
      ctx(spec("deploy", "StatefulSet", { image: "nginx:1.28" }), new FakeKube()),
      workload("StatefulSet"),
    );
    expect(plan.write.patchType).toBe("strategic");
    expect(plan.write.body).toMatchObject({
      metadata: { resourceVersion: "42", annotations: { [ANNOTATION_APPLIED_BY]: UID } },
      spec: { template: { spec: { containers: [{ name: "app", image: "nginx:1.28" }] } } },
    });
    expect(plan.context).toEqual({
      container: "app",
      currentImage: "nginx:1.27",
      newImage: "nginx:1.28",
      currentImages: { app: "nginx:1.27" },
    });
    // The canonical change is the payload's (no container named: null); the resolved one is apart.
    expect(plan.params).toEqual({ image: "nginx:1.28", container: null });
    expect(plan.resolved).toEqual({ container: "app" });
  });

  test("several containers and none named: the error names spec.payload.container and the choices", async () => {
    const t = workload("Deployment", { containers: { app: "a:1", sidecar: "b:1" } });
    await expect(
      DeployAction.plan(ctx(spec("deploy", "Deployment", { image: "a:2" }), new FakeKube()), t),
    ).rejects.toMatchObject({
      kind: "TASK_INVALID",
      message: "spec.payload.container: required because Deployment web has 2 containers (app, sidecar)",
    });
  });

  test("an unknown container is TASK_INVALID; an init container is found by name", async () => {
    const t = workload("DaemonSet", { containers: { app: "a:1", sidecar: "b:1" } });
    (t.spec!.template as { spec: Record<string, unknown> }).spec.initContainers = [{ name: "migrate", image: "m:1" }];
    await expect(
      DeployAction.plan(ctx(spec("deploy", "DaemonSet", { image: "a:2", container: "nope" }), new FakeKube()), t),
    ).rejects.toMatchObject({
      kind: "TASK_INVALID",
      message: "container nope not found in DaemonSet web (containers: app, sidecar)",
    });
    const plan = await DeployAction.plan(
      ctx(spec("deploy", "DaemonSet", { image: "m:2", container: "migrate" }), new FakeKube()),
      t,
    );
    expect(plan.write.body).toMatchObject({
      spec: { template: { spec: { initContainers: [{ name: "migrate", image: "m:2" }] } } },
    });
  });

  test("a paused Deployment and a missing target are refused", async () => {
    const paused = workload("Deployment", { extra: { paused: true } });
    await expect(
      DeployAction.plan(ctx(spec("deploy", "Deployment", { image: "x:1" }), new FakeKube()), paused),
    ).rejects.toMatchObject({
      kind: "TASK_INVALID",
    });
    await expect(
      DeployAction.plan(ctx(spec("deploy", "Deployment", { image: "x:1" }), new FakeKube()), undefined),
    ).rejects.toMatchObject({
      kind: "TARGET_NOT_FOUND",
    });
  });
});

describe("deploy plan() with a manifest", () => {
  type Op = { op: string; path: string; value: unknown };
  const plan = (m: object, target: KubeObject | undefined, cfg = config()) =>
    DeployAction.plan(ctx(spec("deploy", "Deployment", { manifest: m }), new FakeKube(), cfg), target);

  test("one JSON patch: the observed resourceVersion as precondition, the manifest's spec in place of the target's, its labels and annotations added, the marker, in that write", async () => {
    const m = manifest({}, { labels: { tier: "web" }, annotations: { team: "shop", "a/b~c": "x" } });
    const target = workload("Deployment", { containers: { payment: "p:1", sidecar: "s:1" } });
    target.metadata.labels = { app: "web" };
    target.metadata.annotations = { "deployment.kubernetes.io/revision": "3", [ANNOTATION_APPLIED_TASKS]: "older" };
    const p = await plan(m, target);
    expect(p.write).toEqual({
      method: "PATCH",
      path: "/apis/apps/v1/namespaces/shop/deployments/web",
      patchType: "json",
      query: { fieldValidation: "Strict" },
      body: [
        { op: "replace", path: "/metadata/resourceVersion", value: "42" },
        { op: "replace", path: "/spec", value: m.spec },
        { op: "add", path: "/metadata/labels/tier", value: "web" },
        { op: "add", path: "/metadata/annotations/team", value: "shop" },
        { op: "add", path: "/metadata/annotations/a~1b~0c", value: "x" },
        { op: "add", path: `/metadata/annotations/${pointer(ANNOTATION_APPLIED_BY)}`, value: UID },
        { op: "add", path: `/metadata/annotations/${pointer(ANNOTATION_APPLIED_TASKS)}`, value: `older ${UID}` },
      ],
    });
    expect(p.retryOnConflict).toBe(true);
    expect(m.metadata).not.toHaveProperty("resourceVersion");
  });

  test("a target without labels or annotations gets each map whole, the marker included", async () => {
    const m = manifest({}, { labels: { tier: "web" }, annotations: { team: "shop" } });
    const ops = (await plan(m, workload("Deployment"))).write.body as Op[];
    expect(ops.slice(2)).toEqual([
      { op: "add", path: "/metadata/labels", value: { tier: "web" } },
      {
        op: "add",
        path: "/metadata/annotations",
        value: { team: "shop", [ANNOTATION_APPLIED_BY]: UID, [ANNOTATION_APPLIED_TASKS]: UID },
      },
    ]);
  });

  test("the manifest cannot forge the marker: its own marker annotations are overwritten", async () => {
    const m = manifest(
      {},
      { annotations: { [ANNOTATION_APPLIED_TASKS]: "forged", [ANNOTATION_APPLIED_BY]: "forged" } },
    );
    const ops = (await plan(m, workload("Deployment"))).write.body as Op[];
    expect(ops[2].value).toEqual({ [ANNOTATION_APPLIED_BY]: UID, [ANNOTATION_APPLIED_TASKS]: UID });
  });

  test("params are the manifest as the task carries it; the context describes the resulting spec; neither depends on the target's resourceVersion", async () => {
    const m = manifest();
    (m.spec.template.spec as Record<string, unknown>).initContainers = [{ name: "migrate", image: "m:2" }];
    const a = await plan(m, workload("Deployment", { containers: { payment: "p:1", sidecar: "s:1" } }));
    const moved = workload("Deployment", { containers: { payment: "p:9" }, replicas: 7 });
    moved.metadata.resourceVersion = "99";
    const b = await plan(m, moved);
    expect(a.params).toEqual({ manifest: m });
    expect(b.params).toEqual(a.params);
    expect(a.resolved).toEqual({ create: false });
    expect(a.context).toEqual({
      mode: "manifest",
      create: false,
      images: { app: "nginx:1.28" },
      initImages: { migrate: "m:2" },
      replicas: 2,
      hostNetwork: false,
      privileged: false,
      serviceAccountName: null,
      exists: true,
      currentImages: { payment: "p:1", sidecar: "s:1" },
      newImages: { app: "nginx:1.28" },
      currentReplicas: 2,
    });
  });

  test("replicas the manifest leaves out are the API server's default: 1, none for a DaemonSet", async () => {
    const m = manifest();
    delete (m.spec as Record<string, unknown>).replicas;
    expect((await plan(m, workload("Deployment", { replicas: 5 }))).context.replicas).toBe(1);
    const ds = { ...manifest({ kind: "DaemonSet" }), spec: { template: m.spec.template } };
    const p = await DeployAction.plan(
      ctx(spec("deploy", "DaemonSet", { manifest: ds }), new FakeKube()),
      workload("DaemonSet"),
    );
    expect(p.context.replicas).toBeNull();
  });

  test("a paused Deployment is refused unless the manifest says paused: false", async () => {
    const paused = workload("Deployment", { extra: { paused: true } });
    await expect(plan(manifest(), paused)).rejects.toMatchObject({ kind: "TASK_INVALID" });
    const m = manifest();
    (m.spec as Record<string, unknown>).paused = false;
    expect((await plan(m, paused)).write.patchType).toBe("json");
  });

  test("a missing target is created (POST with the marker, no resourceVersion) only when ATB_ALLOW_CREATE is true", async () => {
    const m = manifest({}, { annotations: { team: "shop" } });
    await expect(plan(m, undefined)).rejects.toMatchObject({
      kind: "TARGET_NOT_FOUND",
      message: "Deployment shop/web does not exist and creation is disabled (ATB_ALLOW_CREATE=false)",
    });
    const p = await plan(m, undefined, config({ ATB_ALLOW_CREATE: "true" }));
    expect(p.write).toEqual({
      method: "POST",
      path: "/apis/apps/v1/namespaces/shop/deployments",
      query: { fieldValidation: "Strict" },
      body: {
        ...m,
        metadata: {
          name: "web",
          namespace: NS,
          annotations: { team: "shop", [ANNOTATION_APPLIED_BY]: UID, [ANNOTATION_APPLIED_TASKS]: UID },
        },
      },
    });
    expect(p.params).toEqual({ manifest: m });
    expect(p.resolved).toEqual({ create: true });
    expect(p.context).toMatchObject({ create: true, replicas: 2 });
    expect(p.retryOnConflict).toBe(true);
  });
});

describe("deploy verify() with a manifest", () => {
  const wanted = {
    metadata: { labels: { app: "web" } },
    spec: { containers: [{ name: "payment-service", image: "p:2" }] },
  };
  const m = () => ({
    ...manifest(),
    spec: { replicas: 2, selector: { matchLabels: { app: "web" } }, template: wanted },
  });
  /** The template as the API server returns it: the defaults filled in. */
  const stored = (extra: Record<string, unknown> = {}, hash?: string) => ({
    metadata: { labels: { app: "web", ...(hash ? { "pod-template-hash": hash } : {}) } },
    spec: {
      containers: [
        {
          name: "payment-service",
          image: "p:2",
          imagePullPolicy: "IfNotPresent",
          resources: {},
          terminationMessagePath: "/dev/termination-log",
          terminationMessagePolicy: "File",
        },
      ],
      dnsPolicy: "ClusterFirst",
      restartPolicy: "Always",
      schedulerName: "default-scheduler",
      securityContext: {},
      terminationGracePeriodSeconds: 30,
      ...extra,
    },
  });
  const rolledOut = { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 };
  const deployment = (template: object, status: Record<string, unknown> = rolledOut): KubeObject => {
    const d = workload("Deployment");
    d.spec!.template = template;
    d.status = status;
    return d;
  };
  const rs = (revision: number, template: object): KubeObject => ({
    metadata: {
      name: `web-${revision}`,
      namespace: NS,
      annotations: { "deployment.kubernetes.io/revision": String(revision) },
      ownerReferences: [{ uid: "uid-web", controller: true }],
    },
    spec: { template },
  });
  const verify = (d: KubeObject, replicaSets: KubeObject[] = []) => {
    const kube = new FakeKube().put("Deployment", d).list("ReplicaSet", replicaSets);
    return DeployAction.verify(ctx(spec("deploy", "Deployment", { manifest: m() }), kube));
  };

  test("done when the rollout is complete and the newest ReplicaSet runs the manifest's template", async () => {
    const d = deployment(stored());
    await expect(
      verify(d, [rs(1, { spec: { containers: [{ name: "payment", image: "p:1" }] } }), rs(2, stored({}, "h2"))]),
    ).resolves.toEqual({
      state: "done",
      message:
        "deployment web successfully rolled out (2 replicas); replica set web-2 (revision 2) runs the manifest's pod template",
    });
  });

  test("a Deployment whose own template is not the manifest's fails at once, without listing ReplicaSets", async () => {
    const sidecar = stored();
    sidecar.spec.containers.push({ ...sidecar.spec.containers[0], name: "proxy" });
    const kube = new FakeKube().put("Deployment", deployment(sidecar, {}));
    const r = await DeployAction.verify(ctx(spec("deploy", "Deployment", { manifest: m() }), kube));
    expect(r).toEqual({
      state: "failed",
      reason: "TemplateMismatch",
      message:
        "the template of Deployment web is not the manifest's pod template: spec.containers: wanted [payment-service], got [payment-service, proxy]",
    });
    expect(kube.requests).toEqual([]);
  });

  test("waits for the rollout, then for the ReplicaSet of the Deployment's template", async () => {
    await expect(verify(deployment(stored(), { observedGeneration: 2 }))).resolves.toMatchObject({ state: "waiting" });
    await expect(
      verify(deployment(stored()), [rs(1, { spec: { containers: [{ name: "payment", image: "p:1" }] } })]),
    ).resolves.toEqual({
      state: "waiting",
      message: "waiting for Deployment web's controller to record its new template",
    });
  });

  test("a ProgressDeadlineExceeded rollout still fails as before", async () => {
    const status = {
      observedGeneration: 3,
      conditions: [{ type: "Progressing", reason: "ProgressDeadlineExceeded", message: "timed out" }],
    };
    await expect(verify(deployment(stored(), status))).resolves.toMatchObject({
      state: "failed",
      reason: "ProgressDeadlineExceeded",
    });
  });

  test("a StatefulSet: the newest ControllerRevision's template is compared", async () => {
    const sts = workload("StatefulSet");
    sts.spec!.template = stored();
    sts.status = { observedGeneration: 3, replicas: 2, readyReplicas: 2, currentRevision: "r2", updateRevision: "r2" };
    const cr = (revision: number, template: object): KubeObject => ({
      metadata: { name: `r${revision}`, namespace: NS, ownerReferences: [{ uid: "uid-web" }] },
      revision,
      data: { spec: { template: { ...template, $patch: "replace" } } } as unknown as Record<string, string>,
    });
    const manifestSts = { ...m(), kind: "StatefulSet" };
    const run = (crs: KubeObject[]) =>
      DeployAction.verify(
        ctx(
          spec("deploy", "StatefulSet", { manifest: manifestSts }),
          new FakeKube().put("StatefulSet", sts).list("ControllerRevision", crs),
        ),
      );
    await expect(run([cr(1, stored({ hostNetwork: true })), cr(2, stored())])).resolves.toMatchObject({
      state: "done",
    });
    // The newest revision holds another template than the StatefulSet (not recorded yet): wait.
    await expect(run([cr(2, stored()), cr(3, stored({ hostNetwork: true }))])).resolves.toMatchObject({
      state: "waiting",
    });
  });

  test("the image form keeps the plain rollout verify (no history read)", async () => {
    const d = deployment(stored());
    const kube = new FakeKube().put("Deployment", d);
    await expect(DeployAction.verify(ctx(spec("deploy", "Deployment", { image: "p:2" }), kube))).resolves.toMatchObject(
      {
        state: "done",
      },
    );
    expect(kube.requests).toEqual([]);
  });
});
