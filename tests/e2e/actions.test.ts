// GIVEN the real control plane (kube-apiserver, controller-manager, scheduler, KWOK nodes), WHEN
// each action module is driven the way the pipeline drives it (plan → dry-run write → write →
// verify until done), THEN the target ends in the state kubectl and the controllers would
// produce, and the failure cases end with a message naming the cause. No broker here: this file
// tests the action modules; the pipeline's e2e covers the broker path.
import { randomUUID } from "node:crypto";
import type { AgentTask, AgentTaskSpec } from "../../crds/agenttask";
import {
  isUnchanged,
  type ActionModule,
  type KubeObject,
  type Plan,
  type TaskContext,
  type VerifyResult,
} from "../../capabilities/lib/action";
import { parseConfig, type OperatorConfig } from "../../capabilities/lib/config";
import { isStaleWrite, KubeClient, KubeError, resourcePath } from "../../capabilities/lib/kube";
import { createLogger } from "../../capabilities/lib/logger";
import { isApplied } from "../../capabilities/lib/action/marker";
import { ScaleAction } from "../../capabilities/scale";
import { RESTARTED_AT, RestartAction } from "../../capabilities/restart";
import { UpdateConfigAction } from "../../capabilities/update-config";
import { DeployAction } from "../../capabilities/deploy";
import { RollbackAction } from "../../capabilities/rollback";
import { PatchAction } from "../../capabilities/patch";

const NS = `actions-${randomUUID().slice(0, 8)}`;
const CFG = parseConfig({ ATB_MAX_REPLICAS: "20" });
const log = createLogger("error", "e2e-actions");
let kube: KubeClient;

type Kind = AgentTaskSpec["target"]["kind"];
type Obj = KubeObject & { data?: Record<string, string> };

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
const path = (kind: string, name?: string) => resourcePath(kind, NS, name);
const get = (kind: string, name: string) => kube.get<Obj>(path(kind, name));
const create = (kind: string, obj: object) => kube.request<Obj>({ method: "POST", path: path(kind), body: obj });

function taskSpec(
  action: AgentTaskSpec["action"],
  kind: Kind,
  name: string,
  payload?: Record<string, unknown>,
): AgentTaskSpec {
  return {
    agentId: "spiffe://atb.example.com/agent/e2e",
    poaToken: "a.b.c",
    action,
    target: { kind, name, namespace: NS },
    payload,
  };
}

function context(spec: AgentTaskSpec, config: Readonly<OperatorConfig> = CFG): TaskContext {
  const uid = randomUUID();
  const creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const task = {
    metadata: { name: `t-${uid.slice(0, 8)}`, namespace: NS, uid, creationTimestamp },
    spec,
  } as unknown as AgentTask;
  return { task, spec, uid, kube, config, log };
}

const isConflict = (err: unknown) => err instanceof KubeError && err.status === 409;

/** What the pipeline does after an allow: plan on a fresh GET, dry-run, then the one real write;
 * on 409 Conflict (controllers keep bumping resourceVersion with status writes) it re-reads and
 * re-plans when the plan allows it. */
async function apply(mod: ActionModule, spec: AgentTaskSpec, config = CFG): Promise<{ c: TaskContext; plan: Plan }> {
  expect(mod.validate(spec, config)).toEqual([]);
  const c = context(spec, config);
  for (let attempt = 1; ; attempt++) {
    const plan = await mod.plan(c, await get(spec.target.kind, spec.target.name));
    if (isUnchanged(plan)) throw new Error(`expected a change, got nothing to write: ${plan.noChange}`);
    try {
      await kube.request(plan.write, true);
      await kube.request(plan.write);
      return { c, plan };
    } catch (err) {
      if (!isConflict(err) || !plan.retryOnConflict || attempt >= 5) throw err;
    }
  }
}

/** verify() every 500 ms, as the pipeline does, until done/failed or the timeout. */
async function settle(mod: ActionModule, c: TaskContext, timeoutMs = 90_000): Promise<VerifyResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await mod.verify(c);
    if (r.state !== "waiting" || Date.now() > deadline) return r;
    await sleep(500);
  }
}

async function run(
  mod: ActionModule,
  spec: AgentTaskSpec,
  config = CFG,
): Promise<{ c: TaskContext; plan: Plan; result: VerifyResult }> {
  const { c, plan } = await apply(mod, spec, config);
  return { c, plan, result: await settle(mod, c) };
}

function podSpec(name: string, image: string, extra: Record<string, unknown> = {}) {
  return {
    metadata: { labels: { app: name } },
    spec: { containers: [{ name: "app", image }], terminationGracePeriodSeconds: 0, ...extra },
  };
}

function workload(kind: string, name: string, image: string, spec: Record<string, unknown> = {}) {
  const base: Record<string, unknown> = { selector: { matchLabels: { app: name } }, template: podSpec(name, image) };
  if (kind === "StatefulSet") Object.assign(base, { serviceName: name, podManagementPolicy: "Parallel", replicas: 2 });
  if (kind === "Deployment" || kind === "ReplicaSet") base.replicas = 2;
  return { apiVersion: "apps/v1", kind, metadata: { name, namespace: NS }, spec: { ...base, ...spec } };
}

/** Creates a workload and waits until its first rollout is complete. */
async function ready(
  kind: "Deployment" | "StatefulSet" | "DaemonSet",
  name: string,
  image = "nginx:1.27",
  spec = {},
): Promise<Obj> {
  await create(kind, workload(kind, name, image, spec));
  const c = context(taskSpec("restart", kind, name));
  const r = await settle(RestartAction, c);
  expect(r).toMatchObject({ state: "done" });
  return (await get(kind, name))!;
}

async function owned(kind: "ReplicaSet" | "ControllerRevision", owner: Obj): Promise<Obj[]> {
  const list = await kube.request<{ items: Obj[] }>({ method: "GET", path: path(kind) });
  const mine = list.items.filter(i =>
    (i.metadata.ownerReferences as { uid: string }[] | undefined)?.some(r => r.uid === owner.metadata.uid),
  );
  const rev = (o: Obj) =>
    typeof o.revision === "number"
      ? o.revision
      : Number(o.metadata.annotations?.["deployment.kubernetes.io/revision"] ?? 0);
  return mine.sort((a, b) => rev(a) - rev(b));
}

const images = (t: unknown) =>
  ((t as { spec: { containers: { image: string }[] } }).spec.containers ?? []).map(c => c.image);
const revisionImages = (cr: Obj) => images((cr.data as unknown as { spec: { template: unknown } }).spec.template);

beforeAll(async () => {
  kube = await KubeClient.fromEnvironment({ qps: 50 });
  await kube.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name: NS } } });
});
afterAll(async () => {
  await kube?.request({ method: "DELETE", path: `/api/v1/namespaces/${NS}` }).catch(() => undefined);
  await kube?.close();
});

describe("scale", () => {
  test.each(["Deployment", "StatefulSet", "ReplicaSet"] as const)(
    "%s reaches the requested ready replicas and carries the marker",
    async kind => {
      const name = `scale-${kind.toLowerCase()}`;
      await create(kind, workload(kind, name, "nginx:1.27"));
      const { c, plan, result } = await run(ScaleAction, taskSpec("scale", kind, name, { replicas: 4 }));
      expect(plan.context).toMatchObject({ current: { replicas: 2 }, requested: { replicas: 4 } });
      expect(result).toMatchObject({ state: "done" });
      const after = (await get(kind, name))!;
      expect(after.spec?.replicas).toBe(4);
      expect(after.status?.readyReplicas).toBe(4);
      // Re-running the task finds its marker: the pipeline skips the write.
      expect(isApplied(after, c.uid)).toBe(true);
      const writes = kube.counts.writes;
      await ScaleAction.plan(c, after);
      expect(kube.counts.writes).toBe(writes);
    },
  );

  test("a missing target is TARGET_NOT_FOUND", async () => {
    await expect(apply(ScaleAction, taskSpec("scale", "Deployment", "nope", { replicas: 1 }))).rejects.toMatchObject({
      kind: "TARGET_NOT_FOUND",
      message: `Deployment ${NS}/nope does not exist`,
    });
  });
});

describe("restart", () => {
  test("Deployment: restartedAt set and a new ReplicaSet rolled out", async () => {
    const before = await ready("Deployment", "restart-d");
    const { c, result } = await run(RestartAction, taskSpec("restart", "Deployment", "restart-d"));
    expect(result).toMatchObject({ state: "done" });
    const after = (await get("Deployment", "restart-d"))!;
    const stamp = (after.spec!.template as { metadata: { annotations: Record<string, string> } }).metadata.annotations[
      RESTARTED_AT
    ];
    expect(stamp).toBe(c.task.metadata!.creationTimestamp);
    const rs = await owned("ReplicaSet", after);
    expect(rs.length).toBe(2);
    expect(rs[1].metadata.annotations?.["deployment.kubernetes.io/revision"]).toBe("2");
    expect(rs[1].status?.readyReplicas).toBe(2);
    expect(after.metadata.generation).toBeGreaterThan(before.metadata.generation!);
  });

  test.each(["StatefulSet", "DaemonSet"] as const)("%s: a new ControllerRevision rolled out", async kind => {
    const name = `restart-${kind.toLowerCase()}`;
    const before = await ready(kind, name);
    const { result } = await run(RestartAction, taskSpec("restart", kind, name));
    expect(result).toMatchObject({ state: "done" });
    const after = (await get(kind, name))!;
    expect((await owned("ControllerRevision", after)).length).toBe(2);
    if (kind === "StatefulSet") {
      expect(after.status?.updateRevision).not.toBe(before.status?.updateRevision);
      expect(after.status?.currentRevision).toBe(after.status?.updateRevision);
    } else {
      expect(after.status?.updatedNumberScheduled).toBe(3);
    }
  });

  test("a paused Deployment is refused", async () => {
    await ready("Deployment", "restart-paused");
    await kube.request({
      method: "PATCH",
      path: path("Deployment", "restart-paused"),
      body: { spec: { paused: true } },
    });
    await expect(apply(RestartAction, taskSpec("restart", "Deployment", "restart-paused"))).rejects.toMatchObject({
      kind: "TASK_INVALID",
      message: "deployment restart-paused is paused; resume it first (kubectl rollout resume)",
    });
  });
});

describe("update-config", () => {
  test("ConfigMap: keys merged and removed", async () => {
    await create("ConfigMap", { metadata: { name: "cfg" }, data: { keep: "1", old: "2", LOG_LEVEL: "info" } });
    const { result } = await run(
      UpdateConfigAction,
      taskSpec("update-config", "ConfigMap", "cfg", { data: { LOG_LEVEL: "debug", new: "x" }, remove: ["old"] }),
    );
    expect(result).toMatchObject({ state: "done" });
    expect((await get("ConfigMap", "cfg"))!.data).toEqual({ keep: "1", LOG_LEVEL: "debug", new: "x" });
  });

  test("Secret: values by reference, read from the source Secret and copied byte for byte", async () => {
    const b64 = (v: string | Buffer) => Buffer.from(v).toString("base64");
    const input = { password: "p@ss wörd\nline2", user: "admin" };
    const binary = Buffer.from([0, 255, 10, 128]);
    await create("Secret", {
      metadata: { name: "sec-source" },
      type: "Opaque",
      data: { pw: b64(input.password), name: b64(input.user), blob: b64(binary) },
    });
    await create("Secret", { metadata: { name: "sec" }, type: "Opaque", data: { user: b64("root"), old: "eA==" } });
    const ref = (key: string) => ({ valueFrom: { secretKeyRef: { name: "sec-source", key } } });
    const { plan, result } = await run(
      UpdateConfigAction,
      taskSpec("update-config", "Secret", "sec", {
        data: { password: ref("pw"), user: ref("name"), blob: ref("blob") },
        remove: ["old"],
      }),
    );
    expect(result).toMatchObject({ state: "done" });
    const data = (await get("Secret", "sec"))!.data!;
    expect(Object.keys(data).sort()).toEqual(["blob", "password", "user"]);
    expect(data).toEqual({ password: b64(input.password), user: b64(input.user), blob: b64(binary) });
    expect(JSON.stringify([plan.params, plan.context, result])).not.toContain("p@ss");
    expect(JSON.stringify([plan.params, plan.context, result])).not.toContain(b64(input.password));
  });

  test("Secret: an inline value is refused, a missing source fails the plan naming the field", async () => {
    expect(UpdateConfigAction.validate(taskSpec("update-config", "Secret", "sec", { data: { a: "x" } }), CFG)).toEqual([
      expect.stringMatching(/^spec\.payload\.data\["a"\]: a Secret's values are given by reference, never inline/),
    ]);
    const spec = taskSpec("update-config", "Secret", "sec", {
      data: { a: { valueFrom: { secretKeyRef: { name: "sec-missing", key: "a" } } } },
    });
    await expect(UpdateConfigAction.plan(context(spec), await get("Secret", "sec"))).rejects.toMatchObject({
      kind: "SECRET_REF_NOT_FOUND",
      message: `spec.payload.data["a"].valueFrom.secretKeyRef: Secret ${NS}/sec-missing does not exist`,
    });
  });
});

describe("deploy", () => {
  test("Deployment image: the latest ReplicaSet runs the new image", async () => {
    await ready("Deployment", "deploy-d");
    const { plan, result } = await run(
      DeployAction,
      taskSpec("deploy", "Deployment", "deploy-d", { image: "nginx:1.28" }),
    );
    expect(plan.context).toMatchObject({ currentImage: "nginx:1.27", newImage: "nginx:1.28" });
    expect(result).toMatchObject({ state: "done" });
    const rs = await owned("ReplicaSet", (await get("Deployment", "deploy-d"))!);
    expect(images(rs[rs.length - 1].spec!.template)).toEqual(["nginx:1.28"]);
  });

  test.each(["StatefulSet", "DaemonSet"] as const)(
    "%s image: the newest ControllerRevision holds the new image",
    async kind => {
      const name = `deploy-${kind.toLowerCase()}`;
      await ready(kind, name);
      const { result } = await run(DeployAction, taskSpec("deploy", kind, name, { image: "nginx:1.28" }));
      expect(result).toMatchObject({ state: "done" });
      const crs = await owned("ControllerRevision", (await get(kind, name))!);
      expect(revisionImages(crs[crs.length - 1])).toEqual(["nginx:1.28"]);
    },
  );

  test("manifest: replaces an existing Deployment's spec, and creates a missing one when allowed", async () => {
    await ready("Deployment", "deploy-m");
    const manifest = workload("Deployment", "deploy-m", "nginx:1.29", { replicas: 3 });
    const { result } = await run(DeployAction, taskSpec("deploy", "Deployment", "deploy-m", { manifest }));
    expect(result).toMatchObject({ state: "done" });
    const after = (await get("Deployment", "deploy-m"))!;
    expect([after.spec?.replicas, images(after.spec!.template)]).toEqual([3, ["nginx:1.29"]]);
    expect(
      (after.metadata.managedFields as { manager: string; operation: string }[]).some(
        f => f.manager === "atb-operator" && f.operation === "Update",
      ),
    ).toBe(true);

    const fresh = taskSpec("deploy", "Deployment", "deploy-new", {
      manifest: workload("Deployment", "deploy-new", "nginx:1.29"),
    });
    await expect(apply(DeployAction, fresh)).rejects.toMatchObject({ kind: "TARGET_NOT_FOUND" });
    const created = await run(DeployAction, fresh, parseConfig({ ATB_ALLOW_CREATE: "true" }));
    expect(created.result).toMatchObject({ state: "done" });
    expect(isApplied(await get("Deployment", "deploy-new"), created.c.uid)).toBe(true);
  });

  test("a rollout that cannot progress fails with ProgressDeadlineExceeded", async () => {
    await ready("Deployment", "deploy-stuck", "nginx:1.27", { progressDeadlineSeconds: 3 });
    const manifest = workload("Deployment", "deploy-stuck", "nginx:1.28", { progressDeadlineSeconds: 3 });
    (manifest.spec.template as { spec: Record<string, unknown> }).spec.nodeSelector = { "no-such-node": "true" };
    const { result } = await run(DeployAction, taskSpec("deploy", "Deployment", "deploy-stuck", { manifest }));
    expect(result).toMatchObject({ state: "failed", reason: "ProgressDeadlineExceeded" });
    expect((result as { message: string }).message).toMatch(
      /deploy-stuck exceeded its progress deadline: .*timed out progressing/,
    );
  });
});

describe("rollback", () => {
  test("Deployment: the previous template from the controller's history runs again", async () => {
    await ready("Deployment", "rb-d", "nginx:1.27");
    expect(
      (await run(DeployAction, taskSpec("deploy", "Deployment", "rb-d", { image: "nginx:1.28" }))).result.state,
    ).toBe("done");
    const { plan, result } = await run(RollbackAction, taskSpec("rollback", "Deployment", "rb-d"));
    expect(plan.context).toMatchObject({ currentRevision: 2, targetRevision: 1 });
    expect(result).toMatchObject({ state: "done" });
    const d = (await get("Deployment", "rb-d"))!;
    expect(images(d.spec!.template)).toEqual(["nginx:1.27"]);
    expect(d.metadata.annotations?.["deployment.kubernetes.io/revision"]).toBe("3");
    const rs = await owned("ReplicaSet", d);
    // The controller re-used revision 1's ReplicaSet as revision 3: two ReplicaSets, not three.
    expect(
      rs.map(r => [r.metadata.annotations?.["deployment.kubernetes.io/revision"], images(r.spec!.template)[0]]),
    ).toEqual([
      ["2", "nginx:1.28"],
      ["3", "nginx:1.27"],
    ]);
    await expect(
      apply(RollbackAction, taskSpec("rollback", "Deployment", "rb-d", { revision: 99 })),
    ).rejects.toMatchObject({
      kind: "TASK_INVALID",
      message: "revision 99 of deployment rb-d does not exist (revisions: 2, 3)",
    });
    await kube.request({ method: "PATCH", path: path("Deployment", "rb-d"), body: { spec: { paused: true } } });
    await expect(
      apply(RollbackAction, taskSpec("rollback", "Deployment", "rb-d", { revision: 2 })),
    ).rejects.toMatchObject({
      message: "deployment rb-d is paused; resume it first (kubectl rollout resume)",
    });
  });

  test.each(["StatefulSet", "DaemonSet"] as const)(
    "%s: the previous ControllerRevision is restored and rolled out",
    async kind => {
      const name = `rb-${kind.toLowerCase()}`;
      await ready(kind, name, "nginx:1.27");
      expect((await run(DeployAction, taskSpec("deploy", kind, name, { image: "nginx:1.28" }))).result.state).toBe(
        "done",
      );
      const { plan, result } = await run(RollbackAction, taskSpec("rollback", kind, name));
      expect(plan.context).toMatchObject({ currentRevision: 2, targetRevision: 1 });
      expect(result).toMatchObject({ state: "done" });
      const obj = (await get(kind, name))!;
      expect(images(obj.spec!.template)).toEqual(["nginx:1.27"]);
      const crs = await owned("ControllerRevision", obj);
      expect(crs.map(cr => [cr.revision, revisionImages(cr)[0]])).toEqual([
        [2, "nginx:1.28"],
        [3, "nginx:1.27"],
      ]);
    },
  );
});

describe("patch", () => {
  test("Deployment: replicas and a label, no rollout needed", async () => {
    await ready("Deployment", "patch-d");
    const ops = [
      { op: "replace", path: "/spec/replicas", value: 3 },
      { op: "add", path: "/metadata/labels", value: { tier: "fe" } },
    ];
    const { result } = await run(
      PatchAction,
      taskSpec("patch", "Deployment", "patch-d", { patch: JSON.stringify(ops) }),
    );
    expect(result).toMatchObject({ state: "done" });
    const d = (await get("Deployment", "patch-d"))!;
    expect([d.spec?.replicas, d.metadata.labels]).toEqual([3, { tier: "fe" }]);
  });

  test.each([
    ["StatefulSet", [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "nginx:1.28" }]],
    ["DaemonSet", [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "nginx:1.28" }]],
    ["ReplicaSet", [{ op: "replace", path: "/spec/replicas", value: 1 }]],
  ] as const)("%s: patch applied (and rolled out when the template changed)", async (kind, ops) => {
    const name = `patch-${kind.toLowerCase()}`;
    if (kind === "ReplicaSet") {
      // A patch applies only to the version the broker judged: let the controller settle first.
      await create(kind, workload(kind, name, "nginx:1.27"));
      expect(await settle(ScaleAction, context(taskSpec("scale", kind, name, { replicas: 2 })))).toMatchObject({
        state: "done",
      });
    } else await ready(kind, name);
    const { result } = await run(PatchAction, taskSpec("patch", kind, name, { patch: ops as unknown as unknown[] }));
    expect(result).toMatchObject({ state: "done" });
    const obj = (await get(kind, name))!;
    if (kind === "ReplicaSet") expect(obj.spec?.replicas).toBe(1);
    else expect(images(obj.spec!.template)).toEqual(["nginx:1.28"]);
  });

  test("ConfigMap and Service", async () => {
    await create("ConfigMap", { metadata: { name: "patch-cm" }, data: { a: "1" } });
    await create("Service", {
      metadata: { name: "patch-svc" },
      spec: { selector: { app: "x" }, ports: [{ port: 80 }] },
    });
    await run(
      PatchAction,
      taskSpec("patch", "ConfigMap", "patch-cm", { patch: [{ op: "add", path: "/data/b", value: "2" }] }),
    );
    await run(
      PatchAction,
      taskSpec("patch", "Service", "patch-svc", {
        patch: [{ op: "replace", path: "/spec/ports/0/port", value: 8080 }],
      }),
    );
    expect((await get("ConfigMap", "patch-cm"))!.data).toEqual({ a: "1", b: "2" });
    expect(((await get("Service", "patch-svc"))!.spec as { ports: { port: number }[] }).ports[0].port).toBe(8080);
  });

  test("an object changed after planning: the resourceVersion precondition fails and nothing is applied", async () => {
    await create("ConfigMap", { metadata: { name: "patch-stale" }, data: { a: "1" } });
    const spec = taskSpec("patch", "ConfigMap", "patch-stale", {
      patch: [{ op: "replace", path: "/data/a", value: "agent" }],
    });
    const c = context(spec);
    const plan = await PatchAction.plan(c, await get("ConfigMap", "patch-stale"));
    await kube.request({ method: "PATCH", path: path("ConfigMap", "patch-stale"), body: { data: { a: "human" } } });
    const err = await kube.request(plan.write).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeError);
    expect({
      stale: isStaleWrite(err),
      status: (err as KubeError).status,
      message: (err as KubeError).message,
    }).toEqual({
      stale: true,
      status: 409,
      message: expect.stringMatching(/the object has been modified/),
    });
    const after = (await get("ConfigMap", "patch-stale"))!;
    expect(after.data).toEqual({ a: "human" });
    expect(isApplied(after, c.uid)).toBe(false);
  });
});
