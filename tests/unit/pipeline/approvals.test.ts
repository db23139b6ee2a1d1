// Waiting for approval (lib/pipeline/approvals.ts). GIVEN the broker denies a task with approval
// codes only THEN it waits in AwaitingApproval (Authorized=False ApprovalRequired, status.approvals,
// an Event saying who must approve what); WHEN an AgentTaskApproval names it THEN the broker is
// asked once more with the task's and the approvals' attestations (never twice for the same
// approval objects, never for an approval naming another task); an allow goes on to Completed,
// another denial ends Denied, and the PoA's exp or the task deadline ends the wait Denied
// ApprovalTimeout without a broker call. A denial with any other code, or without details, is
// Denied as before (fail closed).
import type { Decision } from "../../../capabilities/lib/broker/client";
import { parseDetails } from "../../../capabilities/lib/broker/details";
import { parseDecisionBody } from "../../../capabilities/lib/broker/response";
import { changeDigest } from "../../../capabilities/lib/change-digest";
import { resourcePath } from "../../../capabilities/lib/kube";
import { APPROVAL_CODES, MAX_ATTESTATIONS, waitsForApproval } from "../../../capabilities/lib/pipeline/approvals";
import { allow, deny } from "../../helpers/fake-broker";
import { condition, deployment, drive, NS, submit, task, trail, world, type World } from "./harness";

const TWO_NEEDED = "high_risk_dual_control_required";

/** A broker denial with the reference policy's details. */
function denyWith(
  denies: string[],
  o: { counted?: string[]; ignored?: { id?: string; why: string }[] } = {},
): Decision {
  return {
    ...deny(denies[0], "HIGH"),
    details: { denies, counted: o.counted ?? [], ignored: o.ignored ?? [] },
  };
}

/** Reconciles the task `times` times, 5 s apart (a wake, the sweep, a timer): returns the stored task. */
async function look(w: World, key: string, times = 3): Promise<{ task: ReturnType<typeof task> }> {
  for (let i = 0; i < times; i++) {
    await w.pipeline.reconcile(key);
    w.clock.advance(5_000);
  }
  return { task: task(w, key) };
}

const approvalPath = (name: string, ns = NS): string => resourcePath("AgentTaskApproval", ns, name);

/** An approver's AgentTaskApproval as the API server stores it. */
function approve(w: World, name: string, taskName: string, o: { attestation?: string; ns?: string } = {}): void {
  const attestation = o.attestation ?? `h.${name}.s`;
  w.kube.put(approvalPath(name, o.ns ?? NS), {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTaskApproval",
    metadata: {},
    spec: { taskRef: { name: taskName }, attestation },
  });
}

/** The broker the tests script: it counts the attestations it is sent (as if each verified). */
function countingBroker(w: World, needed = 2): void {
  w.broker.byDefault(req => {
    const n = req.attestations?.length ?? 0;
    return n >= needed
      ? allow("HIGH")
      : denyWith([TWO_NEEDED], { counted: (req.attestations ?? []).map((_, i) => `approver-${i}`) });
  });
}

describe("which denials wait", () => {
  test.each([...APPROVAL_CODES].map(c => [c]))("GIVEN only %s THEN the task waits", code => {
    expect(waitsForApproval(denyWith([code]))).toBe(true);
  });

  test("GIVEN several approval codes THEN it waits; GIVEN one other code among them THEN it does not", () => {
    expect(waitsForApproval(denyWith(["approval_expired", TWO_NEEDED]))).toBe(true);
    expect(waitsForApproval(denyWith(["change_digest_required", TWO_NEEDED]))).toBe(false);
    expect(waitsForApproval(denyWith(["self_approval_not_allowed", TWO_NEEDED]))).toBe(false);
  });

  test("GIVEN no details, empty denies or an allow THEN it does not wait (fail closed)", () => {
    expect(waitsForApproval(deny(TWO_NEEDED, "HIGH"))).toBe(false);
    expect(waitsForApproval(denyWith([]))).toBe(false);
    expect(waitsForApproval({ ...allow("HIGH"), details: { denies: [], ignored: [] } })).toBe(false);
  });

  test("the broker's details are parsed bounded: unknown shapes dropped, ids printable, codes snake_case", () => {
    expect(parseDetails({ denies: "x" })).toBeUndefined();
    expect(parseDetails(null)).toBeUndefined();
    const d = parseDetails({
      denies: [TWO_NEEDED, 7, "Not A Code", "approval_expired"],
      counted_approvers: ["alice", "bad id\n", 3],
      ignored_approvals: [
        { id: "bob", why: "change_digest_mismatch", source: "attestation" },
        { why: 1 },
        { why: "x" },
      ],
    });
    expect(d).toEqual({
      denies: [TWO_NEEDED, "approval_expired"],
      counted: ["alice"],
      ignored: [{ id: "bob", why: "change_digest_mismatch" }, { why: "x" }],
    });
    const body = JSON.stringify({
      allowed: false,
      risk_tier: "HIGH",
      reason: TWO_NEEDED,
      metadata: { details: { denies: [TWO_NEEDED], ignored_approvals: [] } },
    });
    expect(parseDecisionBody(body, "r")).toMatchObject({ details: { denies: [TWO_NEEDED], ignored: [] } });
  });
});

describe("a task that needs approvals", () => {
  test("GIVEN approval codes only THEN AwaitingApproval with what is needed, an Event naming it, the target untouched", async () => {
    const w = world();
    deployment(w);
    countingBroker(w);
    const key = submit(w, "t");
    const r = await look(w, key);
    const t = r.task;
    expect(t.status?.phase).toBe("AwaitingApproval");
    expect(condition(t, "Authorized")).toMatchObject({ status: "False", reason: "ApprovalRequired" });
    expect(condition(t, "Succeeded")).toBeUndefined();
    expect(t.status?.approvals).toMatchObject({ required: { count: 2 }, counted: [], ignored: [], seen: [] });
    expect(t.status?.approvals?.sentence).toMatch(
      /^HIGH: 2 distinct approvers other than the agent must approve the scale of Deployment shop\/web \(task shop\/t\)/,
    );
    expect(t.status?.atbResult).toMatchObject({ allowed: false, riskTier: "HIGH", reason: TWO_NEEDED });
    // The approvers see what they are asked to approve: the digest to bind and the dry run's diff.
    expect(t.status?.plan).toMatchObject({
      changeSha256: changeDigest(w.broker.calls[0].request.params),
      riskTier: "HIGH",
      approvalsRequired: { count: 2 },
      diffTruncated: false,
    });
    expect(t.status?.plan?.diff).toMatch(/^-  replicas: 2$/m);
    expect(t.status?.plan?.diff).toMatch(/^\+  replicas: 3$/m);
    expect(trail(w, key)).toEqual(["Pending:Queued", "Processing:Authorizing", "AwaitingApproval:ApprovalRequired"]);
    // one decision: the sweep and the timers only look while nothing new arrived
    expect(w.broker.calls).toHaveLength(1);
    expect(w.kube.writes(e => e.path.includes("/deployments/"))).toEqual([]);
  });

  test("GIVEN two AgentTaskApprovals THEN each is decided once, with every attestation so far, and the second completes the task", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    countingBroker(w);
    const key = submit(w, "t");
    await look(w, key);
    approve(w, "a1", "t");
    let r = await look(w, key);
    expect(r.task.status?.phase).toBe("AwaitingApproval");
    expect(r.task.status?.approvals?.seen).toEqual([`a1@${w.kube.read(approvalPath("a1"))!.metadata.resourceVersion}`]);
    expect(r.task.status?.approvals?.counted).toEqual(["approver-0"]);
    expect(w.broker.calls.map(c => c.request.attestations)).toEqual([undefined, ["h.a1.s"]]);
    // a restart and several sweeps later: still no new decision
    w.restart();
    await look(w, key);
    expect(w.broker.calls).toHaveLength(2);
    approve(w, "a2", "t");
    r = await drive(w, key);
    expect(r.task.status?.phase).toBe("Completed");
    expect(w.broker.calls.map(c => c.request.attestations)).toEqual([undefined, ["h.a1.s"], ["h.a1.s", "h.a2.s"]]);
    expect(r.task.status?.approvals?.seen).toHaveLength(2);
    expect(trail(w, key)).toContain("Executing:Authorized");
  });

  test("GIVEN a task waiting for approvals THEN another task on the same target goes on; an approval then waits its turn for the target", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    // The waiting task's decisions need two attestations; the other task's (no attestations, LOW) is allowed.
    w.broker.byDefault(req =>
      req.context?.task && (req.context.task as { name?: string }).name === "other"
        ? allow("LOW")
        : (req.attestations?.length ?? 0) >= 1
          ? allow("HIGH")
          : denyWith([TWO_NEEDED]),
    );
    const waiting = submit(w, "t");
    await look(w, waiting);
    expect(task(w, waiting).status?.phase).toBe("AwaitingApproval");
    const other = submit(w, "other", { payload: { replicas: 4 } });
    const r = await drive(w, other);
    expect(r.task.status?.phase).toBe("Completed");
    // Someone else holds the target when an approval arrives: the task is decided only once it is released.
    w.pipeline.locks.acquire(`Deployment/${NS}/web`, `${NS}/holder`);
    approve(w, "a1", "t");
    await w.pipeline.reconcile(waiting);
    expect(task(w, waiting).status?.phase).toBe("AwaitingApproval");
    expect(w.broker.calls.filter(c => c.request.attestations?.length)).toHaveLength(0);
    w.pipeline.locks.release(`${NS}/holder`);
    expect(w.wakes).toContain(waiting);
    const done = await drive(w, waiting);
    expect(done.task.status?.phase).toBe("Completed");
    expect(w.broker.calls.filter(c => c.request.attestations?.length)).toHaveLength(1);
  });

  test("GIVEN the task's own attestations THEN they go first, the approvals' after; an approval naming another task is ignored", async () => {
    const w = world();
    deployment(w);
    countingBroker(w, 3);
    const key = submit(w, "t");
    const stored = task(w, key);
    stored.spec!.attestations = ["own.att.s"];
    w.kube.put(resourcePath("AgentTask", NS, "t"), stored as never);
    await look(w, key);
    approve(w, "other", "not-t");
    approve(w, "elsewhere", "t", { attestation: "h.x.s", ns: "elsewhere" });
    await look(w, key);
    expect(w.broker.calls).toHaveLength(1);
    approve(w, "mine", "t");
    await look(w, key);
    expect(w.broker.calls.map(c => c.request.attestations)).toEqual([["own.att.s"], ["own.att.s", "h.mine.s"]]);
  });

  test("GIVEN an approval the broker does not count THEN the task stays, status.approvals lists why, and it is not asked again", async () => {
    const w = world();
    deployment(w);
    w.broker.byDefault(() => denyWith([TWO_NEEDED], { ignored: [{ id: "mallory", why: "approver_unknown" }] }));
    const key = submit(w, "t");
    await look(w, key);
    approve(w, "a1", "t");
    const r = await look(w, key, 5);
    expect(r.task.status?.phase).toBe("AwaitingApproval");
    expect(r.task.status?.approvals?.ignored).toEqual([{ id: "mallory", why: "approver_unknown" }]);
    expect(r.task.status?.approvals?.sentence).toContain("not counted: mallory (approver_unknown)");
    expect(w.broker.calls).toHaveLength(2);
  });

  test("GIVEN a denial with another code after an approval THEN Denied PolicyDenied with it", async () => {
    const w = world();
    deployment(w);
    w.broker.answer(denyWith([TWO_NEEDED]), denyWith(["self_approval_not_allowed", TWO_NEEDED]));
    const key = submit(w, "t");
    await look(w, key);
    approve(w, "a1", "t");
    const r = await drive(w, key);
    expect(r.task.status).toMatchObject({ phase: "Denied", atbResult: { reason: "self_approval_not_allowed" } });
    expect(condition(r.task, "Authorized")).toMatchObject({ status: "False", reason: "PolicyDenied" });
    expect(r.task.status?.approvals?.seen).toHaveLength(1);
  });

  test("GIVEN approval codes and another code, or no details THEN Denied at once, as before", async () => {
    for (const answer of [denyWith(["change_digest_required", TWO_NEEDED]), deny(TWO_NEEDED, "HIGH")]) {
      const w = world();
      deployment(w);
      w.broker.byDefault(answer);
      const r = await drive(w, submit(w, "t"));
      expect(r.task.status?.phase).toBe("Denied");
      expect(condition(r.task, "Authorized")).toMatchObject({ reason: "PolicyDenied" });
      expect(r.task.status?.approvals).toBeUndefined();
    }
  });

  test("GIVEN more approvals than the broker judges THEN the oldest are sent, up to its limit with the task's own", async () => {
    const w = world();
    deployment(w);
    w.broker.byDefault(() => denyWith([TWO_NEEDED]));
    const key = submit(w, "t");
    await look(w, key);
    for (let i = 0; i < MAX_ATTESTATIONS + 3; i++) {
      approve(w, `a${String(i).padStart(2, "0")}`, "t");
      w.clock.advance(1000);
    }
    await look(w, key);
    const sent = w.broker.calls[1].request.attestations!;
    expect(sent).toHaveLength(MAX_ATTESTATIONS);
    expect(sent[0]).toBe("h.a00.s");
    expect(w.broker.calls).toHaveLength(2);
  });
});

describe("the wait is bounded", () => {
  test("GIVEN the PoA expires while waiting THEN Denied ApprovalTimeout, no broker call after the first", async () => {
    const w = world();
    deployment(w);
    countingBroker(w);
    const key = submit(w, "t", { exp: w.clock.t + 120_000 });
    const r = await drive(w, key, { maxCalls: 10 });
    expect(r.task.status?.phase).toBe("Denied");
    expect(condition(r.task, "Authorized")).toMatchObject({ status: "False", reason: "ApprovalTimeout" });
    expect(condition(r.task, "Succeeded")).toMatchObject({ status: "False", reason: "ApprovalTimeout" });
    expect(r.task.status?.message).toMatch(/the PoA expired at /);
    expect(w.broker.calls).toHaveLength(1);
    expect(trail(w, key).at(-1)).toBe("Denied:ApprovalTimeout");
    // an approval arriving later changes nothing
    approve(w, "late", "t");
    await w.pipeline.reconcile(key);
    expect(w.broker.calls).toHaveLength(1);
  });

  test("GIVEN the task deadline passes first THEN Denied ApprovalTimeout naming the deadline", async () => {
    const w = world({ env: { ATB_TASK_DEADLINE_SECONDS: "90" } });
    deployment(w);
    countingBroker(w);
    const key = submit(w, "t");
    const r = await drive(w, key, { maxCalls: 10 });
    expect(r.task.status).toMatchObject({ phase: "Denied" });
    expect(condition(r.task, "Authorized")).toMatchObject({ reason: "ApprovalTimeout" });
    expect(r.task.status?.message).toMatch(/deadline/);
    expect(w.broker.calls).toHaveLength(1);
  });

  test("GIVEN the approvals arrive after the exp THEN the broker is not asked (no decision on a dead token)", async () => {
    const w = world();
    deployment(w);
    countingBroker(w);
    const key = submit(w, "t", { exp: w.clock.t + 120_000 });
    await look(w, key, 2);
    expect(task(w, key).status?.phase).toBe("AwaitingApproval");
    w.clock.advance(200_000);
    approve(w, "a1", "t");
    approve(w, "a2", "t");
    const r = await drive(w, key);
    expect(r.task.status?.phase).toBe("Denied");
    expect(w.broker.calls).toHaveLength(1);
  });
});
