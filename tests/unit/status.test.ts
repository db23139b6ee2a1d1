// Status math: conditions follow the API conventions; merge patches clear what a transition drops.
import { nextStatus, setCondition, statusPatch } from "../../capabilities/lib/status/conditions";
import type { AgentTask } from "../../crds/agenttask";

const t0 = new Date("2026-01-01T00:00:00Z");
const t1 = new Date("2026-01-01T00:00:05Z");

describe("setCondition", () => {
  test("lastTransitionTime changes only when the status flips", () => {
    let list = setCondition(
      undefined,
      { type: "Authorized", status: "Unknown", reason: "Authorizing", message: "asking" },
      1,
      t0,
    );
    list = setCondition(
      list,
      { type: "Authorized", status: "Unknown", reason: "RetryScheduled", message: "again" },
      1,
      t1,
    );
    expect(list[0]).toMatchObject({ reason: "RetryScheduled", lastTransitionTime: t0.toISOString() });
    list = setCondition(list, { type: "Authorized", status: "True", reason: "Authorized", message: "ok" }, 1, t1);
    expect(list[0].lastTransitionTime).toBe(t1.toISOString());
  });

  test("keeps one entry per type in a stable order", () => {
    let list = setCondition(undefined, { type: "Succeeded", status: "True", reason: "Completed", message: "" }, 1, t0);
    list = setCondition(list, { type: "Authorized", status: "True", reason: "Authorized", message: "" }, 1, t0);
    list = setCondition(list, { type: "Executed", status: "True", reason: "Applied", message: "" }, 1, t0);
    expect(list.map(c => c.type)).toEqual(["Authorized", "Executed", "Succeeded"]);
  });
});

describe("nextStatus and statusPatch", () => {
  const task = {
    metadata: { name: "t", namespace: "n", generation: 1 },
    status: {
      phase: "Processing",
      attempts: 2,
      nextAttemptAt: t0.toISOString(),
      lastError: "AT_ERR_BROKER_UNAVAILABLE",
      startedAt: t0.toISOString(),
    },
  } as unknown as AgentTask;

  test("a terminal transition sets finishedAt, keeps startedAt and clears retry fields with null", () => {
    const next = nextStatus(task, { phase: "Failed", reason: "BrokerUnavailable", message: "gave up" }, t1);
    expect(next).toMatchObject({
      phase: "Failed",
      startedAt: t0.toISOString(),
      finishedAt: t1.toISOString(),
      attempts: 2,
      observedGeneration: 1,
    });
    const patch = statusPatch(task.status, next);
    expect(patch.nextAttemptAt).toBeNull();
    expect(patch.lastError).toBeNull();
  });

  test("a retry records attempts and the next attempt time", () => {
    const next = nextStatus(
      task,
      { phase: "Processing", reason: "RetryScheduled", message: "m", attempts: 3, nextAttemptAt: t1, lastError: "X" },
      t0,
    );
    expect(next).toMatchObject({ attempts: 3, nextAttemptAt: t1.toISOString(), lastError: "X" });
  });
});
