// Every class of error the pipeline meets, and what becomes of the task: invalid tasks and tokens,
// deadlines, a missing target, API server refusals at the dry run and at the write, conflicts,
// transient failures (retried, recorded in status, bounded), our own status write failing, every
// broker error kind in the catalog, and exceptions nobody expected.
import { ErrorCodes, type ErrorKind } from "../../../capabilities/lib/errors";
import { KubeError } from "../../../capabilities/lib/kube";
import { allow, brokerError, deny } from "../../helpers/fake-broker";
import type { RequestInfo } from "../../helpers/fake-kube";
import { BARE_422 } from "../../helpers/fake-kube-patch";
import {
  applyWrites,
  condition,
  configMap,
  deployPath,
  deployment,
  drive,
  probe,
  probePlan,
  submit,
  task,
  taskPath,
  uidOf,
  world,
  type ProbeScript,
  type TaskOptions,
  type World,
} from "./harness";

const k = (status: number, reason = "", message = `simulated ${status}`) => new KubeError(status, reason, message);
const isTargetWrite = (r: RequestInfo) => r.path === deployPath() && r.method === "PATCH" && !r.dryRun;
const isDryRun = (r: RequestInfo) => r.path === deployPath() && r.dryRun;
const isStatusWrite = (r: RequestInfo) => r.method === "PATCH" && r.path.endsWith("/status");

/** A hook that fails the first `times` requests matching `when`. */
function failFirst(when: (r: RequestInfo) => boolean, error: Error, times = 1) {
  let left = times;
  return (r: RequestInfo) => (when(r) && left-- > 0 ? error : undefined);
}

interface Case {
  what: string;
  task?: TaskOptions;
  env?: Record<string, string>;
  probe?: ProbeScript;
  setup?: (w: World) => void;
  phase: string;
  reason: string;
  message?: RegExp;
  /** Writes that applied the task (0 or 1). */
  writes: number;
}

async function outcome(c: Case) {
  const w = world({ env: c.env, probe: c.probe ? probe(c.probe) : undefined, kube: { autoRollout: true } });
  deployment(w);
  c.setup?.(w);
  const key = submit(w, "t", c.task);
  const r = await drive(w, key);
  return { w, key, t: r.task, r };
}

async function expectOutcome(c: Case) {
  const { w, key, t } = await outcome(c);
  expect(t.status!.phase).toBe(c.phase);
  expect(condition(t, "Succeeded")).toMatchObject({ status: c.phase === "Completed" ? "True" : "False" });
  if (c.phase !== "Completed") expect(condition(t, "Succeeded")!.reason).toBe(c.reason);
  if (c.message) expect(t.status!.message).toMatch(c.message);
  expect(applyWrites(w, uidOf(w, key))).toHaveLength(c.writes);
  return { w, key, t };
}

describe("the task itself is invalid (defence in depth behind admission)", () => {
  test.each<Case>([
    {
      what: "a kind the action does not support",
      task: { kind: "ConfigMap", target: "flags" },
      setup: w => void configMap(w),
      phase: "Failed",
      reason: "InvalidTask",
      message: /spec.target.kind: ConfigMap is not supported by action scale/,
      writes: 0,
    },
    {
      what: "a target in another namespace",
      task: { targetNamespace: "other" },
      phase: "Failed",
      reason: "InvalidTask",
      message: /cross-namespace targets are disabled/,
      writes: 0,
    },
    {
      what: "a payload the action refuses",
      task: { payload: { replicas: -1 } },
      phase: "Failed",
      reason: "InvalidTask",
      message: /spec.payload.replicas/,
      writes: 0,
    },
    {
      what: "an action with no module",
      task: { action: "restart" },
      phase: "Failed",
      reason: "InvalidTask",
      message: /action restart has no module in this operator/,
      writes: 0,
    },
    {
      what: "an action named like a member of every object",
      task: { action: "constructor" },
      phase: "Failed",
      reason: "InvalidTask",
      message: /action constructor has no module in this operator/,
      writes: 0,
    },
    {
      what: "a token that is not a JWT",
      task: { poaToken: "not-a-jwt" },
      phase: "Failed",
      reason: "InvalidToken",
      message: /not a decodable JWT/,
      writes: 0,
    },
    {
      what: "a token without exp",
      task: {
        poaToken: `${Buffer.from("{}").toString("base64url")}.${Buffer.from('{"sub":"x"}').toString("base64url")}.s`,
      },
      phase: "Failed",
      reason: "InvalidToken",
      message: /no numeric exp claim/,
      writes: 0,
    },
    {
      what: "an expired token",
      task: { exp: Date.parse("2026-05-01T09:59:00Z") },
      phase: "Failed",
      reason: "PoAExpired",
      message: /expired at 2026-05-01T09:59:00.000Z, before the broker decided/,
      writes: 0,
    },
  ])("GIVEN $what THEN $phase $reason, the broker never asked", async c => {
    const { w, t } = await expectOutcome(c);
    expect(w.broker.calls).toHaveLength(0);
    expect(condition(t, "Authorized")).toMatchObject({ status: "False", reason: c.reason });
  });

  test("GIVEN cross-namespace targets are allowed THEN a task may target another namespace", async () => {
    const w = world({ env: { ATB_ALLOW_CROSS_NAMESPACE: "true" }, kube: { autoRollout: true } });
    deployment(w, "web", 2, "other");
    const key = submit(w, "t", { targetNamespace: "other" });
    expect((await drive(w, key)).task.status!.phase).toBe("Completed");
  });
});

describe("the task deadline", () => {
  test.each([
    { phase: "Pending", status: { phase: "Pending" as const } },
    { phase: "Processing", status: { phase: "Processing" as const } },
  ])("GIVEN a task in $phase older than the deadline THEN Failed TaskDeadlineExceeded", async ({ status }) => {
    const w = world();
    deployment(w);
    const key = submit(w, "t", { status });
    w.clock.advance(600_001);
    await w.pipeline.reconcile(key);
    expect(task(w, key).status!.message).toBe("the task did not finish within 600s of its creation");
    expect(condition(task(w, key), "Authorized")).toMatchObject({ status: "False", reason: "TaskDeadlineExceeded" });
  });

  test("GIVEN an applied task whose rollout outlives the deadline THEN Failed, Executed stays True", async () => {
    const w = world({ env: { ATB_ROLLOUT_TIMEOUT_SECONDS: "3600" } });
    deployment(w);
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    w.clock.advance(600_001);
    await w.pipeline.reconcile(key);
    const t = task(w, key);
    expect(condition(t, "Succeeded")!.reason).toBe("TaskDeadlineExceeded");
    expect(t.status!.conditions!.map(c => `${c.type}=${c.status}`)).toEqual([
      "Authorized=True",
      "Executed=True",
      "Succeeded=False",
    ]);
  });
});

describe("the target and the API server's refusals", () => {
  test.each<Case>([
    {
      what: "a missing target",
      task: { target: "nope" },
      phase: "Failed",
      reason: "TargetNotFound",
      message: /Deployment shop\/nope does not exist/,
      writes: 0,
    },
    {
      what: "a target deleted between read and dry run (404)",
      setup: w => void w.kube.onRequest(failFirst(isDryRun, k(404, "NotFound"))),
      phase: "Failed",
      reason: "TargetNotFound",
      message: /^the API server would reject this change: simulated 404/,
      writes: 0,
    },
    {
      what: "a dry run the API server rejects (422)",
      task: { payload: { replicas: 13 } },
      setup: w => void w.kube.onRequest(failFirst(isDryRun, k(422, "Invalid", "spec.replicas: unlucky"))),
      phase: "Failed",
      reason: "DryRunRejected",
      message: /^the API server would reject this change: spec.replicas: unlucky/,
      writes: 0,
    },
    {
      what: "a write the API server rejects (422)",
      setup: w => void w.kube.onRequest(failFirst(isTargetWrite, k(422, "Invalid", "spec: nope"))),
      phase: "Failed",
      reason: "ExecutionFailed",
      message: /^the API server rejected the change: spec: nope/,
      writes: 0,
    },
    {
      what: "a write the executor's RBAC forbids (403, and again when asked once more)",
      setup: w => void w.kube.onRequest(failFirst(isTargetWrite, k(403, "Forbidden"), 2)),
      phase: "Failed",
      reason: "ExecutorForbidden",
      message:
        /^the executor system:serviceaccount:shop:atb-executor may not patch deployments\.apps in namespace shop: .*simulated 403/,
      writes: 0,
    },
    {
      what: "a refused write of the target (403 to the executor, asked twice)",
      setup: w => {
        let n = 0; // the write and its second ask; the dry run before them was allowed
        w.kube.onRequest(r => (isTargetWrite(r) && [1, 2].includes(++n) ? k(403, "Forbidden") : undefined));
      },
      phase: "Failed",
      reason: "ExecutorForbidden",
      message:
        /^the executor system:serviceaccount:shop:atb-executor may not patch deployments\.apps in namespace shop/,
      writes: 0,
    },
    {
      what: "a conflict at the write of a re-plannable action (scale)",
      setup: w => void w.kube.onRequest(failFirst(isTargetWrite, k(409, "Conflict"))),
      phase: "Completed",
      reason: "Completed",
      writes: 1,
    },
    {
      what: "a conflict at the write of an action judged on the exact object",
      task: { action: "patch", payload: { value: "v" } },
      probe: {},
      setup: w => void w.kube.onRequest(failFirst(isTargetWrite, k(409, "Conflict"))),
      phase: "Failed",
      reason: "TargetChanged",
      message: /^the target changed after the broker's decision, so the change was not applied/,
      writes: 0,
    },
  ])("GIVEN $what THEN $phase $reason", async c => {
    const { t } = await expectOutcome(c);
    if (c.reason === "ExecutionFailed" || c.reason === "TargetChanged")
      expect(condition(t, "Executed")).toMatchObject({ status: "False", reason: c.reason });
  });

  test("GIVEN the target changes between the decision and a JSON patch with a test precondition THEN the bare 422 means TargetChanged", async () => {
    const p = probe({
      plan: (ctx, target) => {
        const plan = probePlan(ctx, target);
        const annotations = (plan.write.body as { metadata: { annotations: Record<string, string> } }).metadata
          .annotations;
        plan.write = {
          ...plan.write,
          patchType: "json",
          body: [
            { op: "test", path: "/metadata/generation", value: target!.metadata.generation },
            { op: "add", path: "/metadata/annotations", value: annotations },
          ],
        };
        return plan;
      },
    });
    const w = world({ probe: p });
    deployment(w);
    w.broker.answer(() => {
      w.kube.mutate(deployPath(), o => (o.spec!.replicas = 9)); // someone else, while the broker thinks
      return allow();
    });
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    await w.pipeline.reconcile(key);
    const t = task(w, key);
    expect(condition(t, "Succeeded")!.reason).toBe("TargetChanged");
    expect(t.status!.message).toContain(BARE_422);
    expect(w.kube.audit.filter(e => e.path === deployPath() && !e.dryRun && e.method === "PATCH")).toHaveLength(1);
  });

  test("GIVEN the target changes after the decision so the change would differ THEN authorized again, then written once", async () => {
    const p = probe({
      plan: (ctx, target) => ({ ...probePlan(ctx, target, true), params: { base: target!.metadata.labels?.base } }),
    });
    const w = world({ probe: p });
    deployment(w);
    w.broker.answer(() => {
      w.kube.mutate(deployPath(), o => (o.metadata.labels = { base: "moved" }));
      return allow();
    });
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Completed");
    expect(w.broker.calls.map(c => c.request.params)).toEqual([{}, { base: "moved" }]);
    // Processing again is carried by the new decision's write; its reason is in the log line.
    expect(w.transitions.find(x => x.reason === "Reauthorizing")?.detail).toContain("would now differ");
    expect(applyWrites(w, uidOf(w, key))).toHaveLength(1);
  });

  test("GIVEN the same change but what the plan resolved from the target differs after a conflict THEN authorized again", async () => {
    // As deploy: the canonical change names no container, the operator resolved one from the target.
    const p = probe({
      plan: (ctx, target) => ({ ...probePlan(ctx, target, true), resolved: { base: target!.metadata.labels?.base } }),
    });
    const w = world({ probe: p });
    deployment(w);
    w.broker.answer(() => {
      w.kube.mutate(deployPath(), o => (o.metadata.labels = { base: "moved" }));
      return allow();
    });
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Completed");
    expect(w.broker.calls.map(c => c.request.params)).toEqual([{ value: "v" }, { value: "v" }]);
    expect(applyWrites(w, uidOf(w, key))).toHaveLength(1);
  });

  test("GIVEN re-planning after a conflict fails THEN Failed with the plan's reason", async () => {
    const p = probe({
      plan: (ctx, target, n) => {
        if (n > 1) throw brokerError("TASK_INVALID");
        return probePlan(ctx, target, true);
      },
    });
    const w = world({ probe: p });
    deployment(w);
    w.kube.onRequest(failFirst(isTargetWrite, k(409, "Conflict")));
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    await w.pipeline.reconcile(key);
    expect(condition(task(w, key), "Succeeded")!.reason).toBe("InvalidTask");
  });

  test("GIVEN the target keeps changing at every write THEN one retry is scheduled, and the next attempt writes once", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    w.kube.onRequest(failFirst(isTargetWrite, k(409, "Conflict"), 4));
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    expect(task(w, key).status).toMatchObject({
      phase: "Executing",
      attempts: 1,
      lastError: "AT_ERR_KUBE_TRANSIENT",
      message: expect.stringMatching(/^the target kept changing while the change was being applied; attempt 2 of 3/),
    });
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Completed");
    expect(applyWrites(w, uidOf(w, key))).toHaveLength(1);
  });
});

describe("transient API server failures: retried, recorded, bounded", () => {
  test.each([
    { what: "500", error: k(500, "InternalError") },
    { what: "429", error: k(429, "TooManyRequests") },
    { what: "a network error", error: k(0, "NetworkError") },
    { what: "a 409 on the dry run", error: k(409, "Conflict") },
  ])("GIVEN $what while planning THEN Processing with attempts 1 and the next attempt recorded", async ({ error }) => {
    const w = world();
    deployment(w);
    w.kube.onRequest(failFirst(isDryRun, error));
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    const t = task(w, key);
    expect(t.status).toMatchObject({ phase: "Processing", attempts: 1, lastError: "AT_ERR_KUBE_TRANSIENT" });
    expect(t.status!.message).toMatch(/; attempt 2 of 3 in 0\.\d+s$/);
    const delay = Date.parse(t.status!.nextAttemptAt!) - w.clock.t;
    expect(delay).toBeGreaterThanOrEqual(50); // base 100 ms, jitter keeps the upper half
    expect(delay).toBeLessThanOrEqual(100);
    expect(condition(t, "Authorized")).toMatchObject({ status: "Unknown" });
  });

  test("GIVEN a retry is scheduled WHEN reconciled early THEN it waits, writing nothing", async () => {
    const w = world();
    deployment(w);
    w.kube.onRequest(failFirst(isDryRun, k(500)));
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    const due = Date.parse(task(w, key).status!.nextAttemptAt!) - w.clock.t;
    const before = w.kube.audit.length;
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: due });
    expect(w.kube.audit.length).toBe(before); // not even a GET: the task is in memory
  });

  test("GIVEN the failure persists THEN Failed after ATB_TASK_MAX_ATTEMPTS", async () => {
    const w = world();
    deployment(w);
    w.kube.onRequest(r => (isDryRun(r) ? k(503, "ServiceUnavailable") : undefined));
    const key = submit(w, "t");
    const { task: t, requeues } = await drive(w, key);
    expect(t.status).toMatchObject({ phase: "Failed", attempts: 2 });
    expect(t.status!.message).toMatch(/gave up after 3 attempts/);
    expect(condition(t, "Succeeded")!.reason).toBe("KubeTransient");
    expect(requeues).toHaveLength(2);
    expect(requeues[1]).toBeGreaterThanOrEqual(100); // the backoff doubled
    expect(await w.metrics.tasksFailed.get()).toMatchObject({
      values: [{ labels: { action: "scale", reason: "KubeTransient" }, value: 1 }],
    });
    // Only the scheduled retries count, not the attempt that gave up.
    expect(await w.metrics.retries.get()).toMatchObject({
      values: [{ labels: { reason: "KubeTransient" }, value: 2 }],
    });
  });

  test("GIVEN a transient failure of the write THEN the retry stays in Executing and the next attempt writes", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    w.kube.onRequest(failFirst(isTargetWrite, k(500)));
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    expect(task(w, key).status).toMatchObject({ phase: "Executing", attempts: 1 });
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Completed");
    expect(w.broker.calls).toHaveLength(1);
  });

  test("GIVEN the write's answer is lost after it was stored THEN the retry finds the marker and does not write again", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    let lost = false;
    w.kube.onRequest(r =>
      isTargetWrite(r) && !lost ? ((lost = true), { error: k(0, "NetworkError"), when: "after" }) : undefined,
    );
    const key = submit(w, "t");
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Completed");
    expect(applyWrites(w, uidOf(w, key))).toHaveLength(1);
    expect(w.kube.audit.filter(isTargetWrite)).toHaveLength(1);
  });

  test.each([
    { what: "transient (500)", error: k(500), after: { requeueAfterMs: 2_000 } },
    {
      what: "refused (403: the operator's RBAC, or an API server just restarted)",
      error: k(403, "Forbidden"),
      after: { requeueAfterMs: 2_000 },
    },
    { what: "rejected otherwise (400)", error: k(400, "BadRequest"), after: "throws" },
  ])("GIVEN reading the task fails, $what", async ({ error, after }) => {
    const w = world();
    const key = submit(w, "t");
    w.kube.onRequest(failFirst(r => r.path === taskPath("t"), error));
    if (after === "throws") await expect(w.pipeline.reconcile(key)).rejects.toBe(error);
    else expect(await w.pipeline.reconcile(key)).toEqual(after);
  });
});

describe("verify meets an error", () => {
  async function applied(verify: ProbeScript["verify"]) {
    const w = world({ probe: probe({ verify }) });
    deployment(w);
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    await w.pipeline.reconcile(key);
    return { w, key };
  }

  test("GIVEN a transient error THEN look again soon, nothing written, no attempt spent", async () => {
    const { w, key } = await applied((_ctx, n) => {
      if (n === 1) throw k(500);
      return { state: "done", message: "ok" };
    });
    expect(task(w, key).status).toMatchObject({ phase: "Executing", attempts: 0 });
    // Applied is in memory (not stored within 5 s of the write); the retry finishes from it.
    expect(w.transitions.map(x => x.reason)).not.toContain("Applied");
    w.clock.advance(2_000);
    await w.pipeline.reconcile(key);
    expect(task(w, key).status!.phase).toBe("Completed");
  });

  test("GIVEN a transient error THEN the answer is a requeue after 2 s", async () => {
    const p = probe({ verify: () => Promise.reject(k(500)) });
    const w = world({ probe: p });
    deployment(w);
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: 2_000 });
  });

  test.each([
    { what: "a refusal (403)", error: k(403, "Forbidden"), reason: "VerificationFailed" },
    { what: "a catalog error", error: brokerError("TASK_INVALID"), reason: "InvalidTask" },
    { what: "an unexpected exception", error: new Error("boom"), reason: "InternalError" },
  ])("GIVEN $what THEN Failed $reason, Executed stays True", async ({ error, reason }) => {
    const { w, key } = await applied(() => {
      throw error;
    });
    const t = task(w, key);
    expect(condition(t, "Succeeded")!.reason).toBe(reason);
    expect(condition(t, "Executed")!.status).toBe("True");
  });
});

describe("our own status write fails", () => {
  test("GIVEN a 409 on the status write THEN re-read at once and carry on", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    w.kube.onRequest(failFirst(isStatusWrite, k(409, "Conflict")));
    const key = submit(w, "t");
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: 0 });
    expect(task(w, key).status).toBeUndefined();
    await w.pipeline.reconcile(key);
    expect(task(w, key).status!.phase).toBe("Completed");
  });

  test("GIVEN someone else changed the task since it was read THEN the precondition answers 409 and the pipeline re-reads", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t");
    let touched = false;
    w.kube.onRequest(r => {
      if (isStatusWrite(r) && !touched) {
        touched = true;
        w.kube.mutate(taskPath("t"), o => (o.metadata.labels = { someone: "else" }));
      }
      return undefined;
    });
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: 0 });
    expect(w.kube.audit.find(isStatusWrite)!.status).toBe(409);
    await w.pipeline.reconcile(key);
    expect(task(w, key).status!.phase).toBe("Completed");
  });

  test.each([
    { what: "transient (500)", error: k(500), requeue: 2_000 },
    { what: "refused (403)", error: k(403, "Forbidden"), requeue: 10_000 },
  ])("GIVEN the status write is $what THEN look again in $requeue ms", async ({ error, requeue }) => {
    const w = world();
    deployment(w);
    w.kube.onRequest(failFirst(isStatusWrite, error));
    const key = submit(w, "t");
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: requeue });
    expect(task(w, key).status).toBeUndefined();
  });
});

describe("unexpected exceptions", () => {
  test("GIVEN an action's plan throws something outside the catalog THEN Failed InternalError", async () => {
    const p = probe({
      plan: () => {
        throw new Error("boom");
      },
    });
    const w = world({ probe: p });
    deployment(w);
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    await w.pipeline.reconcile(key);
    expect(task(w, key).status).toMatchObject({ phase: "Failed", message: "operator error: boom" });
    expect(condition(task(w, key), "Succeeded")!.reason).toBe("InternalError");
  });

  test("GIVEN a status write throws something unexpected once THEN the task is Failed InternalError", async () => {
    const w = world();
    deployment(w);
    w.kube.onRequest(failFirst(isStatusWrite, new Error("socket hang up")));
    const key = submit(w, "t");
    expect(await w.pipeline.reconcile(key)).toEqual({});
    expect(task(w, key).status).toMatchObject({ phase: "Failed", message: "operator error: socket hang up" });
  });

  test("GIVEN even the Failed write throws THEN look again later", async () => {
    const w = world();
    deployment(w);
    w.kube.onRequest(failFirst(isStatusWrite, new Error("socket hang up"), 2));
    const key = submit(w, "t");
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: 10_000 });
    expect(task(w, key).status).toBeUndefined();
  });
});

describe("broker errors", () => {
  const kinds = Object.keys(ErrorCodes) as ErrorKind[];
  const retryable = kinds.filter(kind => ErrorCodes[kind].retryable);
  const final = kinds.filter(kind => !ErrorCodes[kind].retryable);

  test.each(retryable)("GIVEN %s (retryable) THEN a retry in Processing, then the next decision", async kind => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    w.broker.answer(brokerError(kind));
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    expect(task(w, key).status).toMatchObject({ phase: "Processing", attempts: 1, lastError: ErrorCodes[kind].code });
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Completed");
    expect(w.broker.calls.map(c => c.options.requestIdBase)).toEqual([`${uidOf(w, key)}.0`, `${uidOf(w, key)}.1`]);
  });

  test.each(final)("GIVEN %s (not retryable) THEN Failed with its reason, asked once", async kind => {
    const w = world();
    deployment(w);
    w.broker.answer(brokerError(kind));
    const key = submit(w, "t");
    const { task: t } = await drive(w, key);
    expect(t.status).toMatchObject({ phase: "Failed", message: `simulated ${kind}` });
    expect(condition(t, "Succeeded")!.reason).toBe(ErrorCodes[kind].reason);
    expect(w.broker.calls).toHaveLength(1);
    expect((await w.metrics.brokerErrors.get()).values).toEqual([
      expect.objectContaining({ labels: { code: ErrorCodes[kind].code }, value: 1 }),
    ]);
  });

  test.each([
    { cause: "BROKER_UNAVAILABLE" as const, phase: "Processing" },
    { cause: "BROKER_TIMEOUT" as const, phase: "Processing" },
    { cause: "BROKER_BAD_REQUEST" as const, phase: "Failed" },
    { cause: "BROKER_MALFORMED" as const, phase: "Failed" },
  ])("GIVEN BROKER_DEADLINE caused by $cause THEN $phase", async ({ cause, phase }) => {
    const w = world();
    deployment(w);
    w.broker.answer(brokerError("BROKER_DEADLINE", brokerError(cause)));
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    expect(task(w, key).status!.phase).toBe(phase);
    if (phase === "Failed") expect(condition(task(w, key), "Succeeded")!.reason).toBe("BrokerDeadlineExceeded");
  });

  test("GIVEN the broker's own retries use up the PoA's lifetime THEN a retryable error is final", async () => {
    const w = world();
    deployment(w);
    const key = submit(w, "t", { exp: w.clock.t + 30_000 });
    w.broker.answer(() => {
      w.clock.advance(31_000);
      return brokerError("BROKER_UNAVAILABLE");
    });
    await w.pipeline.reconcile(key);
    expect(condition(task(w, key), "Succeeded")!.reason).toBe("BrokerUnavailable");
  });

  test("GIVEN the task deadline comes before the PoA's exp THEN it bounds the broker's deadline", async () => {
    const w = world({ env: { ATB_TASK_DEADLINE_SECONDS: "60" } });
    deployment(w);
    const key = submit(w, "t", { exp: w.clock.t + 300_000 });
    w.broker.answer(deny());
    await w.pipeline.reconcile(key);
    expect(w.broker.calls[0].options.deadline.getTime()).toBe(w.clock.t + 60_000);
  });

  test("GIVEN the broker client throws something outside the catalog THEN it counts as BrokerUnavailable (retried)", async () => {
    const w = world();
    deployment(w);
    w.broker.answer(() => {
      throw new TypeError("fetch failed");
    });
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    expect(task(w, key).status).toMatchObject({ phase: "Processing", lastError: "AT_ERR_BROKER_UNAVAILABLE" });
  });

  test("GIVEN the broker stays unavailable THEN Failed after ATB_TASK_MAX_ATTEMPTS decisions, nothing written", async () => {
    const w = world();
    deployment(w);
    w.broker.byDefault(brokerError("BROKER_UNAVAILABLE"));
    const key = submit(w, "t");
    const { task: t } = await drive(w, key);
    expect(t.status!.message).toBe("simulated BROKER_UNAVAILABLE (gave up after 3 attempts)");
    expect(condition(t, "Succeeded")!.reason).toBe("BrokerUnavailable");
    expect(w.broker.calls).toHaveLength(3);
    expect(w.kube.writes(e => e.path === deployPath())).toHaveLength(0);
  });
});
