// deploy: image (one container, strategic merge by name) or manifest (server-side apply that must
// name exactly the target), and creation only when configuration allows it.
import { DeployAction } from "../../../capabilities/deploy";
import { ANNOTATION_APPLIED_BY } from "../../../crds/agenttask";
import { config, ctx, FakeKube, NS, spec, UID, workload } from "./fake";

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
    expect(plan.params).toEqual({ image: "nginx:1.28", container: "app" });
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
  test("server-side apply with force, marker merged into the manifest's annotations, resourceVersion of the target", async () => {
    const m = manifest({}, { annotations: { team: "shop" } });
    const plan = await DeployAction.plan(
      ctx(spec("deploy", "Deployment", { manifest: m }), new FakeKube()),
      workload("Deployment"),
    );
    expect(plan.write).toMatchObject({ method: "PATCH", patchType: "apply", query: { force: "true" } });
    const body = plan.write.body as { metadata: { resourceVersion?: string; annotations: Record<string, string> } };
    expect(body.metadata.resourceVersion).toBe("42");
    expect(body.metadata.annotations).toMatchObject({ team: "shop", [ANNOTATION_APPLIED_BY]: UID });
    expect(m.metadata).not.toHaveProperty("resourceVersion");
    expect(plan.context).toMatchObject({
      exists: true,
      currentImages: { app: "nginx:1.27" },
      newImages: { app: "nginx:1.28" },
    });
    expect(plan.params).toMatchObject({
      mode: "manifest",
      create: false,
      images: { app: "nginx:1.28" },
      replicas: 2,
      privileged: false,
    });
  });

  test("a missing target is created only when ATB_ALLOW_CREATE is true", async () => {
    const s = spec("deploy", "Deployment", { manifest: manifest() });
    await expect(DeployAction.plan(ctx(s, new FakeKube()), undefined)).rejects.toMatchObject({
      kind: "TARGET_NOT_FOUND",
      message: "Deployment shop/web does not exist and creation is disabled (ATB_ALLOW_CREATE=false)",
    });
    const plan = await DeployAction.plan(ctx(s, new FakeKube(), config({ ATB_ALLOW_CREATE: "true" })), undefined);
    expect((plan.write.body as { metadata: Record<string, unknown> }).metadata.resourceVersion).toBeUndefined();
    expect(plan.params).toMatchObject({ create: true });
  });
});
