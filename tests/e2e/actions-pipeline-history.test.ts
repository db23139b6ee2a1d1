// GIVEN the whole product on the real control plane, WHEN an agent rolls workloads back through
// AgentTasks (HIGH: two approvers), THEN the template of the earlier revision, taken from the
// history the controllers produced, runs again; and WHEN the change cannot be made (missing
// target, paused Deployment, unknown revision, a rollout that cannot progress), THEN the task ends
// Failed with a message naming the cause, and nothing else was written.
import { e2eCluster } from "../helpers/cluster-env";
import {
  checkAtMostOnce,
  checkNoLeaks,
  executed,
  Harness,
  images,
  revisionOf,
  revisionTemplate,
  type Task,
} from "../helpers/pipeline-tasks";

const h = new Harness(e2eCluster(), "ap-history", "stack-actions-pipeline-history");

// A bound on rollout waits, in case a deadline the test relies on never fires.
beforeAll(() => h.start({ ATB_ROLLOUT_TIMEOUT_SECONDS: "150" }));
afterAll(() => h.stop());

function completed(t: Task): void {
  expect({ phase: t.status?.phase, message: t.status?.message }).toEqual({
    phase: "Completed",
    message: expect.any(String),
  });
  expect(t.status?.atbResult).toMatchObject({ allowed: true, riskTier: "HIGH", reason: "allowed" });
}

function failed(t: Task, reason: string, message: string | RegExp): void {
  expect(t.status?.phase).toBe("Failed");
  expect(t.status?.message).toEqual(
    typeof message === "string" ? expect.stringContaining(message) : expect.stringMatching(message),
  );
  expect(t.status?.conditions?.find(c => c.type === "Succeeded")).toMatchObject({ status: "False", reason });
}

describe("rollback", () => {
  test("Deployment: after a deploy task made revision 2, revision 1's template runs again (HIGH)", async () => {
    await h.ready("Deployment", "rb-deployment", "nginx:1.27");
    completed(
      await h.run("rb-deployment-deploy", {
        action: "deploy",
        kind: "Deployment",
        target: "rb-deployment",
        payload: { image: "nginx:1.28" },
      }),
    );
    const before = h.get("Deployment", "rb-deployment");
    expect(h.owned("ReplicaSet", before).map(r => [revisionOf(r), images(r.spec!.template)])).toEqual([
      [1, ["nginx:1.27"]],
      [2, ["nginx:1.28"]],
    ]);
    const t = await h.run("rb-deployment", { action: "rollback", kind: "Deployment", target: "rb-deployment" });
    completed(t);
    const d = h.get("Deployment", "rb-deployment");
    expect(images(d.spec!.template)).toEqual(["nginx:1.27"]);
    expect(d.metadata.annotations?.["deployment.kubernetes.io/revision"]).toBe("3");
    // The controller re-used revision 1's ReplicaSet as revision 3 (as after `kubectl rollout undo`).
    const rs = h.owned("ReplicaSet", d);
    expect(rs.map(r => [revisionOf(r), images(r.spec!.template), r.spec?.replicas])).toEqual([
      [2, ["nginx:1.28"], 0],
      [3, ["nginx:1.27"], 2],
    ]);
    expect(rs[1].status?.readyReplicas).toBe(2);
  });

  test.each(["StatefulSet", "DaemonSet"] as const)(
    "%s: after a kubectl change made revision 2, revision 1's template runs again (HIGH)",
    async kind => {
      const name = `rb-${kind.toLowerCase()}`;
      await h.ready(kind, name, "nginx:1.27");
      h.kube.run(["set", "image", `${kind.toLowerCase()}/${name}`, "app=nginx:1.28", "-n", h.ns]);
      const before = await h.rolledOut(kind, name);
      expect(h.owned("ControllerRevision", before).map(cr => [revisionOf(cr), images(revisionTemplate(cr))])).toEqual([
        [1, ["nginx:1.27"]],
        [2, ["nginx:1.28"]],
      ]);
      const t = await h.run(name, { action: "rollback", kind, target: name });
      completed(t);
      const o = h.get(kind, name);
      expect(images(o.spec!.template)).toEqual(["nginx:1.27"]);
      const crs = h.owned("ControllerRevision", o);
      // The controller re-used revision 1's ControllerRevision as revision 3.
      expect(crs.map(cr => [revisionOf(cr), images(revisionTemplate(cr))])).toEqual([
        [2, ["nginx:1.28"]],
        [3, ["nginx:1.27"]],
      ]);
      const s = o.status!;
      if (kind === "StatefulSet") {
        expect([s.currentRevision, s.updateRevision, s.readyReplicas]).toEqual([
          crs[1].metadata.name,
          crs[1].metadata.name,
          2,
        ]);
      } else {
        expect([s.desiredNumberScheduled, s.updatedNumberScheduled, s.numberAvailable]).toEqual([3, 3, 3]);
      }
    },
  );
});

describe("failures end Failed with the cause", () => {
  test("missing target: scale and deploy (creation disabled) fail before the broker is asked", async () => {
    const scale = await h.run("ghost-scale", {
      action: "scale",
      kind: "Deployment",
      target: "ghost",
      payload: { replicas: 1 },
    });
    failed(scale, "TargetNotFound", "Deployment ap-history/ghost does not exist");
    const manifest = h.workload("Deployment", "ghost", "nginx:1.27");
    const deploy = await h.run("ghost-deploy", {
      action: "deploy",
      kind: "Deployment",
      target: "ghost",
      payload: { manifest },
    });
    failed(
      deploy,
      "TargetNotFound",
      "Deployment ap-history/ghost does not exist and creation is disabled (ATB_ALLOW_CREATE=false)",
    );
    for (const t of [scale, deploy]) expect([executed(t), t.status?.atbResult]).toEqual([false, undefined]);
    expect(h.exists("deployment", "ghost")).toBe(false);
  });

  test("paused Deployment: restart and rollback are refused and the Deployment is unchanged", async () => {
    await h.ready("Deployment", "paused", "nginx:1.27");
    h.kube.run(["set", "image", "deployment/paused", "app=nginx:1.28", "-n", h.ns]);
    await h.rolledOut("Deployment", "paused");
    h.kube.run(["rollout", "pause", "deployment/paused", "-n", h.ns]);
    const before = h.get("Deployment", "paused");
    const restart = await h.run("paused-restart", { action: "restart", kind: "Deployment", target: "paused" });
    failed(restart, "InvalidTask", "deployment paused is paused; resume it first (kubectl rollout resume)");
    const rollback = await h.run("paused-rollback", { action: "rollback", kind: "Deployment", target: "paused" });
    failed(rollback, "InvalidTask", "deployment paused is paused; resume it first (kubectl rollout resume)");
    const after = h.get("Deployment", "paused");
    expect([after.metadata.generation, after.metadata.annotations, after.spec]).toEqual([
      before.metadata.generation,
      before.metadata.annotations,
      before.spec,
    ]);
  });

  test("a revision that does not exist", async () => {
    const before = await h.ready("Deployment", "norev", "nginx:1.27");
    const t = await h.run("norev", {
      action: "rollback",
      kind: "Deployment",
      target: "norev",
      payload: { revision: 99 },
    });
    failed(t, "InvalidTask", "revision 99 of deployment norev does not exist (revisions: 1)");
    const after = h.get("Deployment", "norev");
    expect([after.metadata.generation, after.spec]).toEqual([before.metadata.generation, before.spec]);
  });

  test("a deploy whose rollout cannot progress (unschedulable pods) fails with ProgressDeadlineExceeded", async () => {
    await h.ready("Deployment", "stuck", "nginx:1.27", { progressDeadlineSeconds: 5 });
    const manifest = h.workload("Deployment", "stuck", "nginx:1.28", { progressDeadlineSeconds: 5 }) as {
      spec: { template: { spec: Record<string, unknown> } };
    };
    manifest.spec.template.spec.nodeSelector = { "atb.example.com/no-such-node": "true" };
    const t = await h.run("stuck", { action: "deploy", kind: "Deployment", target: "stuck", payload: { manifest } });
    failed(t, "ProgressDeadlineExceeded", /deployment stuck exceeded its progress deadline: .*progress/);
    expect(executed(t)).toBe(true);
    expect(t.status?.atbResult).toMatchObject({ allowed: true, riskTier: "HIGH" });
    const d = h.get("Deployment", "stuck");
    const progressing = (d.status!.conditions as { type: string; reason: string }[]).find(
      c => c.type === "Progressing",
    );
    expect(progressing?.reason).toBe("ProgressDeadlineExceeded");
    // The old ReplicaSet still serves; the new one has no ready pod.
    const rs = h.owned("ReplicaSet", d);
    expect(rs.map(r => [revisionOf(r), images(r.spec!.template), r.status?.readyReplicas ?? 0])).toEqual([
      [1, ["nginx:1.27"], 2],
      [2, ["nginx:1.28"], 0],
    ]);
  });
});

test("at most once: one write per applied task, none after an operator restart", () => checkAtMostOnce(h));

test("no token leaks into logs, the broker's audit, events or task statuses", () => checkNoLeaks(h));
