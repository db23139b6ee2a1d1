// restart: kubectl rollout restart semantics, a stamp fixed per task, paused Deployments refused.
import { RESTARTED_AT, RestartAction } from "../../../capabilities/restart";
import { ANNOTATION_APPLIED_BY } from "../../../crds/agenttask";
import { config, CREATED, ctx, FakeKube, spec, UID, workload } from "./fake";

describe("restart validate()", () => {
  test.each([
    [undefined, []],
    [{}, []],
    [{ force: true }, ["spec.payload.force: not a field of action restart (allowed: reason)"]],
  ])("%p → %p", (payload, errors) => {
    expect(
      RestartAction.validate(spec("restart", "Deployment", payload as Record<string, unknown> | undefined), config()),
    ).toEqual(errors);
  });
});

describe("restart plan()", () => {
  test.each(["Deployment", "StatefulSet", "DaemonSet"] as const)(
    "%s: only the restartedAt template annotation, stamped with the task's creation time",
    async kind => {
      const target = workload(kind);
      target.spec!.template = { metadata: { labels: { app: "web" }, annotations: { keep: "me" } }, spec: {} };
      const c = ctx(spec("restart", kind), new FakeKube());
      const first = await RestartAction.plan(c, target);
      const again = await RestartAction.plan(c, target);
      // The change is the intent; the stamp (the operator's, fixed per task) is context.
      expect(first.params).toEqual({ restart: true });
      expect(first.context).toMatchObject({ restartedAt: CREATED, previousRestartedAt: null });
      expect(first.write.patchType).toBe("merge");
      const body = first.write.body as {
        metadata: { resourceVersion: string; annotations: Record<string, string> };
        spec: unknown;
      };
      expect(body.spec).toEqual({ template: { metadata: { annotations: { [RESTARTED_AT]: CREATED } } } });
      expect(body.metadata.resourceVersion).toBe("42");
      expect(body.metadata.annotations[ANNOTATION_APPLIED_BY]).toBe(UID);
      // Same task, same write: a retried write changes nothing.
      expect(again.write).toEqual(first.write);
    },
  );

  test("a paused Deployment is refused with the kubectl hint", async () => {
    const target = workload("Deployment", { extra: { paused: true } });
    await expect(RestartAction.plan(ctx(spec("restart", "Deployment"), new FakeKube()), target)).rejects.toMatchObject({
      kind: "TASK_INVALID",
      message: "deployment web is paused; resume it first (kubectl rollout resume)",
    });
  });

  test("a missing target is TARGET_NOT_FOUND", async () => {
    await expect(
      RestartAction.plan(ctx(spec("restart", "DaemonSet"), new FakeKube()), undefined),
    ).rejects.toMatchObject({ kind: "TARGET_NOT_FOUND" });
  });
});

describe("restart verify", () => {
  test("waits for the rollout, then is done", async () => {
    const kube = new FakeKube();
    const d = workload("Deployment", { replicas: 2 });
    d.metadata.generation = 4;
    kube.put("Deployment", d);
    const c = ctx(spec("restart", "Deployment"), kube);
    expect((await RestartAction.verify(c)).state).toBe("waiting");
    d.status = { observedGeneration: 4, replicas: 2, updatedReplicas: 2, availableReplicas: 2 };
    expect((await RestartAction.verify(c)).state).toBe("done");
  });
});
