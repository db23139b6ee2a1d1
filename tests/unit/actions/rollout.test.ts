// GIVEN a workload's status as the controllers report it, WHEN the rollout helper judges it,
// THEN it agrees with `kubectl rollout status` (plus the stricter equalities the actions need).
import type { KubeObject } from "../../../capabilities/lib/action";
import {
  daemonSetStatus,
  deploymentStatus,
  replicaSetStatus,
  rolloutStatus,
  statefulSetStatus,
} from "../../../capabilities/lib/kube/rollout";

function obj(spec: Record<string, unknown>, status: Record<string, unknown>, generation = 2): KubeObject {
  return { metadata: { name: "web", generation }, spec, status };
}

const progressing = (reason: string, message = "") => ({
  conditions: [{ type: "Progressing", status: "False", reason, message }],
});

describe("deploymentStatus", () => {
  test.each([
    [
      "spec not yet observed",
      {},
      { observedGeneration: 1, updatedReplicas: 3, replicas: 3, availableReplicas: 3 },
      "waiting",
      /observed/,
    ],
    ["never observed", {}, {}, "waiting", /observed/],
    [
      "new replicas not all updated",
      {},
      { observedGeneration: 2, updatedReplicas: 1, replicas: 3, availableReplicas: 3 },
      "waiting",
      /1 of 3 new/,
    ],
    [
      "old replicas pending termination",
      {},
      { observedGeneration: 2, updatedReplicas: 3, replicas: 4, availableReplicas: 3 },
      "waiting",
      /1 old replicas/,
    ],
    [
      "updated replicas not available",
      {},
      { observedGeneration: 2, updatedReplicas: 3, replicas: 3, availableReplicas: 2 },
      "waiting",
      /2 of 3 updated/,
    ],
    [
      "scale-down not yet done",
      {},
      { observedGeneration: 2, updatedReplicas: 5, replicas: 5, availableReplicas: 5 },
      "waiting",
      /5 of 3/,
    ],
    [
      "complete",
      {},
      { observedGeneration: 2, updatedReplicas: 3, replicas: 3, availableReplicas: 3 },
      "done",
      /successfully rolled out/,
    ],
    ["complete at zero replicas", { replicas: 0 }, { observedGeneration: 2 }, "done", /0 replicas/],
    [
      "progress deadline exceeded",
      {},
      {
        observedGeneration: 2,
        updatedReplicas: 1,
        replicas: 3,
        ...progressing("ProgressDeadlineExceeded", 'ReplicaSet "web-1" has timed out progressing.'),
      },
      "failed",
      /exceeded its progress deadline: ReplicaSet "web-1" has timed out/,
    ],
    [
      "paused and not rolled out",
      { paused: true },
      { observedGeneration: 2, updatedReplicas: 0, replicas: 3, availableReplicas: 3 },
      "failed",
      /paused/,
    ],
    [
      "paused but nothing to roll out",
      { paused: true },
      { observedGeneration: 2, updatedReplicas: 3, replicas: 3, availableReplicas: 3 },
      "done",
      /rolled out/,
    ],
  ])("%s → %s", (...[_what, spec, status, state, message]) => {
    const r = deploymentStatus(obj({ replicas: 3, ...spec }, status));
    expect(r.state).toBe(state);
    expect(r.message).toMatch(message);
    if (r.state === "failed") expect(r.reason).toMatch(/^(ProgressDeadlineExceeded|DeploymentPaused)$/);
  });

  test("spec.replicas defaults to 1 as the API server does", () => {
    expect(
      deploymentStatus(obj({}, { observedGeneration: 2, updatedReplicas: 1, replicas: 1, availableReplicas: 1 })).state,
    ).toBe("done");
  });
});

describe("statefulSetStatus", () => {
  const base = { replicas: 3, updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: 0 } } };
  test.each([
    [
      "not observed",
      base,
      { observedGeneration: 1, readyReplicas: 3, updateRevision: "a", currentRevision: "a" },
      "waiting",
    ],
    [
      "pods not ready",
      base,
      { observedGeneration: 2, readyReplicas: 2, updateRevision: "b", currentRevision: "b" },
      "waiting",
    ],
    [
      "revisions differ",
      base,
      { observedGeneration: 2, readyReplicas: 3, updatedReplicas: 2, updateRevision: "b", currentRevision: "a" },
      "waiting",
    ],
    [
      "complete",
      base,
      { observedGeneration: 2, readyReplicas: 3, currentReplicas: 3, updateRevision: "b", currentRevision: "b" },
      "done",
    ],
    [
      "partition not reached",
      { ...base, updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: 1 } } },
      { observedGeneration: 2, readyReplicas: 3, updatedReplicas: 1, updateRevision: "b", currentRevision: "a" },
      "waiting",
    ],
    [
      "partition reached",
      { ...base, updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: 1 } } },
      { observedGeneration: 2, readyReplicas: 3, updatedReplicas: 2, updateRevision: "b", currentRevision: "a" },
      "done",
    ],
    [
      "OnDelete",
      { ...base, updateStrategy: { type: "OnDelete" } },
      { observedGeneration: 2, readyReplicas: 3, updateRevision: "b", currentRevision: "a" },
      "done",
    ],
  ])("%s → %s", (_what, spec, status, state) => {
    expect(statefulSetStatus(obj(spec, status)).state).toBe(state);
  });
});

describe("daemonSetStatus", () => {
  test.each([
    [
      "not observed",
      { observedGeneration: 1, desiredNumberScheduled: 2, updatedNumberScheduled: 2, numberAvailable: 2 },
      "waiting",
    ],
    [
      "not all updated",
      { observedGeneration: 2, desiredNumberScheduled: 2, updatedNumberScheduled: 1, numberAvailable: 2 },
      "waiting",
    ],
    [
      "not all available",
      { observedGeneration: 2, desiredNumberScheduled: 2, updatedNumberScheduled: 2, numberAvailable: 1 },
      "waiting",
    ],
    [
      "complete",
      { observedGeneration: 2, desiredNumberScheduled: 2, updatedNumberScheduled: 2, numberAvailable: 2 },
      "done",
    ],
  ])("%s → %s", (_what, status, state) => {
    expect(daemonSetStatus(obj({ updateStrategy: { type: "RollingUpdate" } }, status)).state).toBe(state);
  });
});

describe("replicaSetStatus and the kind dispatch", () => {
  test.each([
    [{ observedGeneration: 2, replicas: 2, readyReplicas: 1 }, "waiting"],
    [{ observedGeneration: 2, replicas: 3, readyReplicas: 2 }, "waiting"],
    [{ observedGeneration: 1, replicas: 2, readyReplicas: 2 }, "waiting"],
    [{ observedGeneration: 2, replicas: 2, readyReplicas: 2 }, "done"],
  ])("%p → %s", (status, state) => {
    expect(replicaSetStatus(obj({ replicas: 2 }, status)).state).toBe(state);
  });

  test("kinds without a rollout are done; workload kinds go to their own rules", () => {
    expect(rolloutStatus("ConfigMap", obj({}, {})).state).toBe("done");
    expect(rolloutStatus("Service", obj({}, {})).state).toBe("done");
    expect(rolloutStatus("Deployment", obj({ replicas: 1 }, {})).state).toBe("waiting");
    expect(rolloutStatus("DaemonSet", obj({}, {})).state).toBe("waiting");
  });
});
