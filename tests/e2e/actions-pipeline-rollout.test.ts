// GIVEN the whole product on the real control plane (admission webhooks, the operator's pipeline,
// the reference broker over mTLS with real OPA, controllers and KWOK nodes), WHEN an agent asks
// for scale, restart and deploy through AgentTasks carrying correctly approved PoA tokens, THEN
// each task ends Completed with the policy's risk tier, the workload is in the state kubectl and
// the controllers would produce, and every change was written exactly once.
import { e2eCluster } from "../helpers/cluster-env";
import {
  checkAtMostOnce,
  checkNoLeaks,
  Harness,
  images,
  revisionOf,
  revisionTemplate,
  TIER,
  type Obj,
  type Task,
  type Workload,
} from "../helpers/pipeline-tasks";

const RESTARTED_AT = "kubectl.kubernetes.io/restartedAt";
const h = new Harness(e2eCluster(), "ap-rollout", "stack-actions-pipeline-rollout");

beforeAll(() => h.start());
afterAll(() => h.stop());

function completed(t: Task): void {
  expect({ phase: t.status?.phase, message: t.status?.message }).toEqual({
    phase: "Completed",
    message: expect.any(String),
  });
  expect(t.status?.atbResult).toMatchObject({ allowed: true, riskTier: TIER[t.spec.action], reason: "allowed" });
}

describe("scale", () => {
  test.each(["Deployment", "StatefulSet", "ReplicaSet"] as const)("%s: 2 → 4 replicas, all ready (LOW)", async kind => {
    const name = `scale-${kind.toLowerCase()}`;
    await h.ready(kind, name);
    const t = await h.run(`scale-${kind.toLowerCase()}`, {
      action: "scale",
      kind,
      target: name,
      payload: { replicas: 4 },
    });
    completed(t);
    expect(t.status?.atbResult?.riskTier).toBe("LOW");
    const o = h.get(kind, name);
    expect([o.spec?.replicas, o.status?.replicas, o.status?.readyReplicas]).toEqual([4, 4, 4]);
  });
});

describe("restart", () => {
  test("Deployment: restartedAt set, a new ReplicaSet rolled out (MEDIUM)", async () => {
    const before = await h.ready("Deployment", "restart-deployment");
    expect(h.owned("ReplicaSet", before)).toHaveLength(1);
    const t = await h.run("restart-deployment", {
      action: "restart",
      kind: "Deployment",
      target: "restart-deployment",
    });
    completed(t);
    const d = h.get("Deployment", "restart-deployment");
    const stamp = d.spec!.template!.metadata!.annotations![RESTARTED_AT];
    expect(Date.parse(stamp)).toBe(Date.parse(t.metadata.creationTimestamp));
    const rs = h.owned("ReplicaSet", d);
    expect(rs.map(r => [revisionOf(r), r.spec?.replicas])).toEqual([
      [1, 0],
      [2, 2],
    ]);
    expect(rs[1].spec!.template!.metadata!.annotations![RESTARTED_AT]).toBe(stamp);
    expect(rs[1].status?.readyReplicas).toBe(2);
  });

  test.each(["StatefulSet", "DaemonSet"] as const)(
    "%s: restartedAt set, a new ControllerRevision rolled out (MEDIUM)",
    async kind => {
      const name = `restart-${kind.toLowerCase()}`;
      const before = await h.ready(kind, name);
      const t = await h.run(name, { action: "restart", kind, target: name });
      completed(t);
      const o = h.get(kind, name);
      const stamp = o.spec!.template!.metadata!.annotations![RESTARTED_AT];
      expect(Date.parse(stamp)).toBe(Date.parse(t.metadata.creationTimestamp));
      const crs = h.owned("ControllerRevision", o);
      expect(crs.map(revisionOf)).toEqual([1, 2]);
      expect(revisionTemplate(crs[0]).metadata?.annotations?.[RESTARTED_AT]).toBeUndefined();
      expect(revisionTemplate(crs[1]).metadata!.annotations![RESTARTED_AT]).toBe(stamp);
      rolledOutTo(kind, before, o, crs[1]);
    },
  );
});

/** The controller finished rolling the workload to revision `cr`. */
function rolledOutTo(kind: Workload, before: Obj, after: Obj, cr: Obj): void {
  const s = after.status!;
  if (kind === "StatefulSet") {
    expect(s.updateRevision).not.toBe(before.status?.updateRevision);
    expect([s.currentRevision, s.updateRevision, s.readyReplicas, s.updatedReplicas]).toEqual([
      cr.metadata.name,
      cr.metadata.name,
      2,
      2,
    ]);
  } else {
    expect(s.desiredNumberScheduled).toBe(3);
    expect([s.updatedNumberScheduled, s.numberAvailable]).toEqual([3, 3]);
  }
}

describe("deploy", () => {
  test("Deployment image: the latest ReplicaSet runs the new image (HIGH)", async () => {
    await h.ready("Deployment", "deploy-deployment");
    const t = await h.run("deploy-deployment", {
      action: "deploy",
      kind: "Deployment",
      target: "deploy-deployment",
      payload: { image: "nginx:1.28" },
    });
    completed(t);
    const d = h.get("Deployment", "deploy-deployment");
    expect(images(d.spec!.template)).toEqual(["nginx:1.28"]);
    const rs = h.owned("ReplicaSet", d);
    const latest = rs[rs.length - 1];
    expect([revisionOf(latest), images(latest.spec!.template), latest.status?.readyReplicas]).toEqual([
      2,
      ["nginx:1.28"],
      2,
    ]);
    expect(rs.slice(0, -1).map(r => r.spec?.replicas)).toEqual([0]);
  });

  test.each(["StatefulSet", "DaemonSet"] as const)(
    "%s image: the newest ControllerRevision holds the new image (HIGH)",
    async kind => {
      const name = `deploy-${kind.toLowerCase()}`;
      const before = await h.ready(kind, name);
      const t = await h.run(name, { action: "deploy", kind, target: name, payload: { image: "nginx:1.28" } });
      completed(t);
      const o = h.get(kind, name);
      expect(images(o.spec!.template)).toEqual(["nginx:1.28"]);
      const crs = h.owned("ControllerRevision", o);
      expect(crs.map(cr => [revisionOf(cr), images(revisionTemplate(cr))])).toEqual([
        [1, ["nginx:1.27"]],
        [2, ["nginx:1.28"]],
      ]);
      rolledOutTo(kind, before, o, crs[1]);
    },
  );

  test("Deployment manifest: its spec replaces the Deployment's, written under the operator's field manager, and rolled out (HIGH)", async () => {
    await h.ready("Deployment", "deploy-manifest");
    const manifest = h.workload("Deployment", "deploy-manifest", "nginx:1.29", { replicas: 3 });
    const t = await h.run("deploy-manifest", {
      action: "deploy",
      kind: "Deployment",
      target: "deploy-manifest",
      payload: { manifest },
    });
    completed(t);
    const d = h.get("Deployment", "deploy-manifest");
    expect([d.spec?.replicas, images(d.spec!.template), d.status?.readyReplicas, d.status?.updatedReplicas]).toEqual([
      3,
      ["nginx:1.29"],
      3,
      3,
    ]);
    const fields = JSON.parse(
      h.kube.run(["get", "deployment", "deploy-manifest", "-n", h.ns, "--show-managed-fields", "-o", "json"]),
    ) as Obj;
    // One JSON patch (an Update in managedFields terms), not a server-side apply: see ADR 0005.
    expect(fields.metadata.managedFields!.some(f => f.manager === "atb-operator" && f.operation === "Update")).toBe(
      true,
    );
    const rs = h.owned("ReplicaSet", d);
    const latest = rs[rs.length - 1];
    expect([revisionOf(latest), images(latest.spec!.template), latest.status?.readyReplicas]).toEqual([
      2,
      ["nginx:1.29"],
      3,
    ]);
  });
});

test("at most once: one write per applied task, none after an operator restart", () => checkAtMostOnce(h));

test("no token leaks into logs, the broker's audit, events or task statuses", () => checkNoLeaks(h));
