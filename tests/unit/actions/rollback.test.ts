// rollback: the revision kubectl rollout undo would pick, the template copied without
// pod-template-hash, ControllerRevision data applied as a strategic merge patch, clear refusals.
import { canonicalChange } from "../../../capabilities/change";
import { RollbackAction } from "../../../capabilities/rollback";
import { selectorString } from "../../../capabilities/rollback/history";
import { isUnchanged, type KubeObject, type Plan, type Planned } from "../../../capabilities/lib/action";
import { ANNOTATION_APPLIED_BY } from "../../../crds/agenttask";
import { ctx, FakeKube, NS, spec, UID, workload } from "./fake";

/** The plan as a change to write (the test fails on a plan with nothing to write). */
function change(p: Planned): Plan {
  if (isUnchanged(p)) throw new Error(`expected a write, got nothing to write: ${p.noChange}`);
  return p;
}

function template(image: string, hash?: string) {
  return {
    metadata: { labels: { app: "web", ...(hash ? { "pod-template-hash": hash } : {}) } },
    spec: { containers: [{ name: "app", image }] },
  };
}

function rs(revision: number, image: string, owner = "uid-web"): KubeObject {
  return {
    metadata: {
      name: `web-${revision}`,
      namespace: NS,
      labels: { app: "web", "pod-template-hash": `h${revision}` },
      annotations: { "deployment.kubernetes.io/revision": String(revision) },
      ownerReferences: [{ uid: owner, controller: true }],
    },
    spec: { template: template(image, `h${revision}`) },
  };
}

function deployment(revision: number, image: string): KubeObject {
  const d = workload("Deployment");
  d.metadata.annotations = { "deployment.kubernetes.io/revision": String(revision) };
  d.spec!.template = template(image);
  return d;
}

describe("rollback validate()", () => {
  test.each([
    [undefined, []],
    [{}, []],
    [{ revision: 3 }, []],
    [{ revision: 0 }, ["spec.payload.revision: must be a whole number >= 1 (omit it for the previous revision)"]],
    [{ revision: "2" }, ["spec.payload.revision: must be a whole number >= 1 (omit it for the previous revision)"]],
    [{ toRevision: 2 }, ["spec.payload.toRevision: not a field of action rollback (allowed: revision, reason)"]],
  ])("%p → %p", (payload, errors) => {
    expect(
      RollbackAction.validate(
        spec("rollback", "Deployment", payload as Record<string, unknown> | undefined),
        {} as never,
      ),
    ).toEqual(errors);
  });
});

describe("rollback plan() for a Deployment", () => {
  const kube = () =>
    new FakeKube().list("ReplicaSet", [
      rs(3, "nginx:3"),
      rs(1, "nginx:1"),
      rs(2, "nginx:2"),
      rs(9, "other:9", "someone-else"),
    ]);

  test("default: the highest revision below the current one, template without pod-template-hash, one JSON patch", async () => {
    const k = kube();
    const plan = change(await RollbackAction.plan(ctx(spec("rollback", "Deployment"), k), deployment(3, "nginx:3")));
    expect(k.requests[0]).toMatchObject({ method: "GET", query: { labelSelector: "app=web" } });
    // The canonical change: the resolved revision and its ReplicaSet's pod-template-hash.
    expect(plan.params).toEqual({ revision: 2, template_hash: "h2" });
    expect(plan.params).toEqual(canonicalChange(spec("rollback", "Deployment"), { revision: 2, templateHash: "h2" }));
    expect(plan.context).toMatchObject({
      requestedRevision: "previous",
      currentRevision: 3,
      targetRevision: 2,
      revisions: [1, 2, 3],
      targetImages: { app: "nginx:2" },
    });
    expect(plan.write.patchType).toBe("json");
    const ops = plan.write.body as { op: string; path: string; value: unknown }[];
    expect(ops[0]).toEqual({ op: "replace", path: "/metadata/resourceVersion", value: "42" });
    expect(ops[1]).toEqual({ op: "replace", path: "/spec/template", value: template("nginx:2") });
    expect(ops.slice(2)).toContainEqual({
      op: "add",
      path: "/metadata/annotations/atb.siemens.com~1applied-by-task",
      value: UID,
    });
    expect(plan.retryOnConflict).toBe(false);
  });

  test("an explicit revision is used and may be retried on conflict", async () => {
    const plan = change(
      await RollbackAction.plan(ctx(spec("rollback", "Deployment", { revision: 1 }), kube()), deployment(3, "nginx:3")),
    );
    expect(plan.params).toEqual({ revision: 1, template_hash: "h1" });
    expect(plan.context.requestedRevision).toBe(1);
    expect(plan.retryOnConflict).toBe(true);
  });

  test.each([
    [{ revision: 7 }, deployment(3, "nginx:3"), "revision 7 of deployment web does not exist (revisions: 1, 2, 3)"],
    [
      {},
      Object.assign(workload("Deployment", { extra: { paused: true } })),
      "deployment web is paused; resume it first (kubectl rollout resume)",
    ],
  ])("refuses %p with a clear message", async (payload, target, message) => {
    await expect(
      RollbackAction.plan(ctx(spec("rollback", "Deployment", payload), kube()), target),
    ).rejects.toMatchObject({ kind: "TASK_INVALID", message });
  });

  test("the revision that already runs: nothing to write (NoChange), as kubectl rollout undo skips it", async () => {
    const k = kube();
    const plan = await RollbackAction.plan(
      ctx(spec("rollback", "Deployment", { revision: 3, reason: "regression in v3" }), k),
      deployment(3, "nginx:3"),
    );
    expect(isUnchanged(plan)).toBe(true);
    expect(plan).toMatchObject({
      params: { revision: 3, template_hash: "h3" },
      context: { requestedRevision: 3, currentRevision: 3, targetRevision: 3, noChange: true },
      noChange:
        "skipped rollback: the current template of deployment web already matches revision 3; nothing was written",
    });
    expect(k.requests.filter(r => r.method !== "GET")).toEqual([]);
  });

  test("no earlier revision: TASK_INVALID naming what exists", async () => {
    const k = new FakeKube().list("ReplicaSet", [rs(1, "nginx:1")]);
    await expect(
      RollbackAction.plan(ctx(spec("rollback", "Deployment"), k), deployment(1, "nginx:1")),
    ).rejects.toMatchObject({
      message: "deployment web has no revision before 1 to roll back to (revisions: 1)",
    });
  });
});

/** A ControllerRevision with the hash label its controller writes (StatefulSet: controller.kubernetes.io/hash,
 * DaemonSet: controller-revision-hash). */
function cr(revision: number, image: string, hashLabel = "controller.kubernetes.io/hash"): KubeObject {
  return {
    metadata: {
      name: `web-${revision}`,
      namespace: NS,
      labels: { app: "web", [hashLabel]: `c${revision}` },
      ownerReferences: [{ uid: "uid-web", controller: true }],
    },
    revision,
    data: { spec: { template: { ...template(image), $patch: "replace" } } } as never,
  };
}

describe("rollback plan() for StatefulSet and DaemonSet", () => {
  test.each(["StatefulSet", "DaemonSet"] as const)(
    "%s: the ControllerRevision data as a strategic merge patch plus marker",
    async kind => {
      const label = kind === "StatefulSet" ? "controller.kubernetes.io/hash" : "controller-revision-hash";
      const k = new FakeKube().list("ControllerRevision", [cr(1, "nginx:1", label), cr(2, "nginx:2", label)]);
      const target = workload(kind);
      target.spec!.template = template("nginx:2");
      if (kind === "StatefulSet") target.status = { updateRevision: "web-2" };
      const plan = change(await RollbackAction.plan(ctx(spec("rollback", kind), k), target));
      expect(plan.params).toEqual({ revision: 1, template_hash: "c1" });
      expect(plan.write.patchType).toBe("strategic");
      expect(plan.write.body).toEqual({
        spec: { template: { ...template("nginx:1"), $patch: "replace" } },
        metadata: { resourceVersion: "42", annotations: expect.objectContaining({ [ANNOTATION_APPLIED_BY]: UID }) },
      });
      expect(plan.context).toMatchObject({ currentRevision: 2, targetRevision: 1, targetImages: { app: "nginx:1" } });
    },
  );

  test.each(["StatefulSet", "DaemonSet"] as const)("%s: the revision that already runs is NoChange", async kind => {
    const k = new FakeKube().list("ControllerRevision", [cr(1, "nginx:1"), cr(2, "nginx:2")]);
    const target = workload(kind);
    target.spec!.template = template("nginx:2");
    if (kind === "StatefulSet") target.status = { updateRevision: "web-2" };
    const plan = await RollbackAction.plan(ctx(spec("rollback", kind, { revision: 2 }), k), target);
    expect(isUnchanged(plan) && plan.noChange).toMatch(/already matches revision 2; nothing was written$/);
  });

  test("a revision that does not exist is named with the ones that do", async () => {
    const k = new FakeKube().list("ControllerRevision", [cr(1, "nginx:1"), cr(2, "nginx:2")]);
    const target = workload("DaemonSet");
    await expect(
      RollbackAction.plan(ctx(spec("rollback", "DaemonSet", { revision: 5 }), k), target),
    ).rejects.toMatchObject({
      message: "revision 5 of daemon set web does not exist (revisions: 1, 2)",
    });
  });
});

test("selectorString renders matchLabels and matchExpressions as the API expects", () => {
  expect(
    selectorString({
      matchLabels: { app: "web", tier: "fe" },
      matchExpressions: [
        { key: "env", operator: "In", values: ["a", "b"] },
        { key: "x", operator: "NotIn", values: ["c"] },
        { key: "y", operator: "Exists" },
        { key: "z", operator: "DoesNotExist" },
      ],
    }),
  ).toBe("app=web,tier=fe,env in (a,b),x notin (c),y,!z");
});
