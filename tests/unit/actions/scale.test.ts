// scale: admission rules, the one merge patch that carries the count and the marker, and when
// the task counts as done.
import { ScaleAction, scaleStatus } from "../../../capabilities/scale";
import { ANNOTATION_APPLIED_BY } from "../../../crds/agenttask";
import { ANNOTATION_APPLIED_TASKS } from "../../../capabilities/lib/action/marker";
import { AtbError } from "../../../capabilities/lib/errors";
import { config, ctx, FakeKube, spec, UID, workload } from "./fake";

const cfg = config({ ATB_MAX_REPLICAS: "50" });

describe("scale validate()", () => {
  test.each([
    [{ replicas: 0 }, []],
    [{ replicas: 50 }, []],
    [{ replicas: 51 }, ["spec.payload.replicas: must be an integer between 0 and 50 (ATB_MAX_REPLICAS)"]],
    [{ replicas: -1 }, ["spec.payload.replicas: must be an integer between 0 and 50 (ATB_MAX_REPLICAS)"]],
    [{ replicas: 2.5 }, ["spec.payload.replicas: must be an integer between 0 and 50 (ATB_MAX_REPLICAS)"]],
    [{ replicas: "3" }, ["spec.payload.replicas: must be an integer between 0 and 50 (ATB_MAX_REPLICAS)"]],
    [{}, ["spec.payload.replicas: must be an integer between 0 and 50 (ATB_MAX_REPLICAS)"]],
    [{ replicas: 3, foo: 1 }, ["spec.payload.foo: not a field of action scale (allowed: replicas, reason)"]],
  ])("%p → %p", (payload, errors) => {
    expect(ScaleAction.validate(spec("scale", "Deployment", payload), cfg)).toEqual(errors);
  });

  test("a missing payload is named", () => {
    expect(ScaleAction.validate(spec("scale", "Deployment"), cfg)).toEqual([
      "spec.payload: must be an object with field replicas",
    ]);
  });
});

describe("scale plan()", () => {
  test.each(["Deployment", "StatefulSet", "ReplicaSet"] as const)(
    "%s: merge patch of spec.replicas + marker under the observed resourceVersion",
    async kind => {
      const target = workload(kind, { replicas: 2 });
      target.status = { readyReplicas: 2 };
      const kube = new FakeKube();
      const plan = await ScaleAction.plan(ctx(spec("scale", kind, { replicas: 5 }), kube, cfg), target);
      expect(plan.params).toEqual({ replicas: 5 });
      expect(plan.context).toEqual({ current: { replicas: 2, readyReplicas: 2 }, requested: { replicas: 5 } });
      expect(plan.write.method).toBe("PATCH");
      expect(plan.write.patchType).toBe("merge");
      expect(plan.write.path).toMatch(/\/namespaces\/shop\/(deployments|statefulsets|replicasets)\/web$/);
      expect(plan.write.body).toEqual({
        metadata: {
          resourceVersion: "42",
          annotations: { [ANNOTATION_APPLIED_BY]: UID, [ANNOTATION_APPLIED_TASKS]: UID },
        },
        spec: { replicas: 5 },
      });
      expect(plan.retryOnConflict).toBe(true);
      expect(kube.requests).toEqual([]);
    },
  );

  test("a missing target is TARGET_NOT_FOUND", async () => {
    await expect(
      ScaleAction.plan(ctx(spec("scale", "Deployment", { replicas: 1 }), new FakeKube()), undefined),
    ).rejects.toMatchObject({
      kind: "TARGET_NOT_FOUND",
      message: "Deployment shop/web does not exist",
    });
    await expect(
      ScaleAction.plan(ctx(spec("scale", "Deployment", { replicas: 1 }), new FakeKube()), undefined),
    ).rejects.toBeInstanceOf(AtbError);
  });
});

describe("scale verify", () => {
  const d = (specReplicas: number, status: Record<string, unknown>) => {
    const w = workload("Deployment", { replicas: specReplicas });
    w.status = { observedGeneration: 3, ...status };
    return w;
  };
  test.each([
    [
      "scaled up and ready",
      d(3, { replicas: 3, updatedReplicas: 3, availableReplicas: 3, readyReplicas: 3 }),
      3,
      "done",
    ],
    ["still starting", d(3, { replicas: 3, updatedReplicas: 3, availableReplicas: 2, readyReplicas: 2 }), 3, "waiting"],
    [
      "scale-down in progress",
      d(1, { replicas: 3, updatedReplicas: 3, availableReplicas: 3, readyReplicas: 3 }),
      1,
      "waiting",
    ],
    ["scaled to zero", d(0, {}), 0, "done"],
    [
      "someone else changed the count",
      d(4, { replicas: 4, updatedReplicas: 4, availableReplicas: 4, readyReplicas: 4 }),
      3,
      "failed",
    ],
  ])("%s → %s", (_what, obj, want, state) => {
    expect(scaleStatus("Deployment", obj, want).state).toBe(state);
  });

  test("verify re-reads the target and fails when it is gone", async () => {
    const kube = new FakeKube();
    const s = spec("scale", "ReplicaSet", { replicas: 2 });
    expect(await ScaleAction.verify(ctx(s, kube))).toMatchObject({ state: "failed", reason: "TargetNotFound" });
    const rs = workload("ReplicaSet", { replicas: 2 });
    rs.status = { observedGeneration: 3, replicas: 2, readyReplicas: 2 };
    kube.put("ReplicaSet", rs);
    expect(await ScaleAction.verify(ctx(s, kube))).toMatchObject({ state: "done" });
  });
});
