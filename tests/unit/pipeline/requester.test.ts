// Holder binding in the pipeline: GIVEN a task WHEN it is authorized THEN the broker's preflight and
// decision carry the requester its annotation records; GIVEN a task without a well-formed record
// (created before the webhook, or with the webhook bypassed) THEN it ends Denied requester_mismatch
// without a broker call or a read of the target, and the record never reaches a metric label.
import { register } from "prom-client";
import { requesterText } from "../../../capabilities/lib/requester";
import { deny } from "../../helpers/fake-broker";
import { condition, deployPath, deployment, drive, REQUESTER, submit, world } from "./harness";

describe("the requester in the broker's questions", () => {
  test("GIVEN a recorded requester THEN the preflight and the decision both carry it", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t");
    const done = await drive(w, key);
    expect(done.task.status?.phase).toBe("Completed");
    expect(w.broker.preflights.map(p => p.request.requester)).toEqual([REQUESTER]);
    expect(w.broker.calls.map(c => c.request.requester)).toEqual([REQUESTER]);
  });

  test("GIVEN the broker denies requester_mismatch at the preflight THEN the task is Denied with that reason, the target unread", async () => {
    const w = world();
    deployment(w);
    w.broker.preflightDefault = () => deny("requester_mismatch");
    const key = submit(w, "t");
    const done = await drive(w, key);
    expect(done.task.status).toMatchObject({
      phase: "Denied",
      atbResult: { allowed: false, reason: "requester_mismatch" },
    });
    expect(condition(done.task, "Authorized")).toMatchObject({ status: "False", reason: "PolicyDenied" });
    expect(w.broker.calls).toHaveLength(0);
    expect(w.kube.audit.filter(e => e.path === deployPath())).toEqual([]);
  });
});

describe("a task without a requester record", () => {
  const other = requesterText({ ...REQUESTER, username: "someone-else" });
  test.each([
    ["no annotation", null],
    ["an empty annotation", ""],
    ["text that is not the webhook's JSON", "system:serviceaccount:shop:agent"],
    ["the webhook's JSON re-spaced", other.replace(",", ", ")],
    ["keys in another order", JSON.stringify({ groups: REQUESTER.groups, username: REQUESTER.username })],
    ["an unknown key", JSON.stringify({ username: REQUESTER.username, groups: [], extra: { x: ["y"] } })],
  ])(
    "GIVEN %s THEN Denied requester_mismatch by the operator: no broker call, no read of the target",
    async (_w, requester) => {
      const w = world();
      deployment(w);
      const key = submit(w, "t", { requester });
      const done = await drive(w, key);
      const status = done.task.status!;
      expect(status.phase).toBe("Denied");
      expect(status.atbResult).toEqual({ allowed: false, reason: "requester_mismatch" });
      expect(status.message).toMatch(
        /^denied without asking ATB: requester_mismatch: no requester was recorded at admission/,
      );
      for (const type of ["Authorized", "Succeeded"])
        expect(condition(done.task, type)).toMatchObject({ status: "False", reason: "RequesterNotRecorded" });
      expect(w.broker.preflights).toHaveLength(0);
      expect(w.broker.calls).toHaveLength(0);
      expect(w.kube.audit.filter(e => e.path === deployPath())).toEqual([]);
    },
  );

  test("GIVEN such a denial THEN it is counted by its reason code, and no metric names the requester", async () => {
    const w = world();
    deployment(w);
    await drive(w, submit(w, "t", { requester: null }));
    await drive(w, submit(w, "u"));
    const text = (await w.metrics.registry.metrics()) + (await register.metrics());
    expect(text).toMatch(
      /atb_operator_tasks_denied\{action="scale",risk_tier="UNKNOWN",reason="requester_mismatch"\} 1/,
    );
    for (const piece of [REQUESTER.username, REQUESTER.uid!, "system:authenticated", "someone-else"])
      expect(text).not.toContain(piece);
  });
});
