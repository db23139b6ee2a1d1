// Every transition of the pipeline's state machine, driven through Pipeline.reconcile on the
// in-memory API server: (none) → Pending → Processing → Executing → Applied → Completed, the
// waits (a held target, a rollout), Denied, and the verify outcomes.
import type { Metric } from "prom-client";
import { decideRequest, taskKey, reasonLabel } from "../../../capabilities/lib/pipeline";
import { resourcePath } from "../../../capabilities/lib/kube";
import type { TaskContext } from "../../../capabilities/lib/action";
import { valueDigest } from "../../../capabilities/lib/change-digest";
import { brokerError, deny } from "../../helpers/fake-broker";
import {
  applyWrites,
  condition,
  configMap,
  configMapPath,
  deployPath,
  deployment,
  drive,
  probe,
  probePlan,
  REQUESTER,
  submit,
  task,
  taskPath,
  trail,
  statusWrites,
  events,
  uidOf,
  world,
  type World,
} from "./harness";

async function metric(m: Metric, labels: Record<string, string>): Promise<number> {
  const { values } = await m.get();
  const hit = values.find(v => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return hit?.value ?? 0;
}

const statusPatches = (w: World, name: string) =>
  w.kube.audit.filter(e => e.method === "PATCH" && e.path.endsWith(`/agenttasks/${name}/status`));

describe("the happy path, one transition at a time", () => {
  test("GIVEN a scale task WHEN reconciled THEN Pending, Processing, Executing (authorized) stored; Applied stored once the rollout has run 5 s", async () => {
    const w = world();
    deployment(w, "web", 2);
    const key = submit(w, "scale-web", { payload: { replicas: 3 } });

    const r = await w.pipeline.reconcile(key);

    expect(trail(w, key)).toEqual(["Pending:Queued", "Processing:Authorizing", "Executing:Authorized"]);
    expect(r.requeueAfterMs).toBe(500); // the rollout has not been observed yet
    let t = task(w, key);
    expect(t.status).toMatchObject({ phase: "Executing", attempts: 0, observedGeneration: 1 });
    expect(condition(t, "Authorized")).toMatchObject({ status: "True", reason: "Authorized" });
    // Applied is kept in memory for up to 5 s: a change that takes effect by then costs no write.
    expect(condition(t, "Executed")).toBeUndefined();
    expect(w.kube.read(deployPath())!.spec!.replicas).toBe(3);
    expect(applyWrites(w, uidOf(w, key))).toHaveLength(1);

    w.clock.advance(500);
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: 500 });
    expect(statusWrites(w, key)).toHaveLength(1);
    w.clock.advance(4_500);
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: 500 });
    t = task(w, key);
    expect(trail(w, key).at(-1)).toBe("Executing:Applied");
    expect(condition(t, "Executed")).toMatchObject({
      status: "True",
      reason: "Applied",
      lastTransitionTime: "2026-05-01T10:00:00.000Z", // when the change was written
    });
    expect(condition(t, "Succeeded")).toBeUndefined();
    expect(statusWrites(w, key)).toHaveLength(2);
  });

  test("GIVEN the rollout completes WHEN reconciled again THEN Completed with every condition True", async () => {
    const w = world();
    deployment(w, "web", 2);
    const key = submit(w, "scale-web", { payload: { replicas: 3 } });
    await w.pipeline.reconcile(key);
    w.kube.completeRollout(deployPath());
    w.clock.advance(500);

    const r = await w.pipeline.reconcile(key);

    expect(r).toEqual({});
    expect(trail(w, key).at(-1)).toBe("Completed:Completed");
    const t = task(w, key);
    expect(t.status).toMatchObject({ phase: "Completed", message: "Deployment web has 3 ready replicas" });
    expect(t.status!.startedAt).toBe("2026-05-01T10:00:00.000Z");
    expect(t.status!.finishedAt).toBe("2026-05-01T10:00:00.500Z");
    expect(t.status!.atbResult).toMatchObject({ allowed: true, riskTier: "LOW", decisionId: expect.any(String) });
    for (const type of ["Authorized", "Executed", "Succeeded"]) expect(condition(t, type)!.status).toBe("True");
    expect(await metric(w.metrics.tasksAllowed, { action: "scale", risk_tier: "LOW" })).toBe(1);
    expect(await metric(w.metrics.tasksTotal, { action: "scale", phase: "Completed" })).toBe(1);
  });

  test("GIVEN a whole run THEN the status is stored at most three times, each under the resourceVersion it was decided from, with one Event", async () => {
    // A rollout that takes a while: the decision, the applied change while it rolls out, the end.
    const w = world();
    deployment(w);
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    w.clock.advance(5_000);
    await w.pipeline.reconcile(key); // Applied stored: the rollout is under way
    w.kube.completeRollout(deployPath());
    w.clock.advance(500);
    await w.pipeline.reconcile(key);
    const phases = (patches: ReturnType<typeof statusPatches>) =>
      patches.map(p => `${(p.body as { status: { phase: string } }).status.phase}`);
    expect(phases(statusPatches(w, "t"))).toEqual(["Executing", "Executing", "Completed"]);
    expect(statusWrites(w, key)).toHaveLength(3);
    // Every transition is still logged and counted, once, in order.
    expect(trail(w, key)).toEqual([
      "Pending:Queued",
      "Processing:Authorizing",
      "Executing:Authorized",
      "Executing:Applied",
      "Completed:Completed",
    ]);
    expect(events(w, key)).toEqual(["Completed:Completed"]);
    for (const p of statusPatches(w, "t")) {
      expect(p.status).toBe(200);
      expect((p.body as { metadata: { resourceVersion?: string } }).metadata.resourceVersion).toMatch(/^\d+$/);
    }
    // The first write carries Pending and Processing: startedAt is set, and the API server's
    // copy was read once at most (the task came from the pipeline's memory after its first write).
    expect(task(w, key).status!.startedAt).toBe("2026-05-01T10:00:00.000Z");
  });

  test("GIVEN a rollout done within 5 s of the write THEN two status writes (the decision, the end)", async () => {
    const w = world();
    deployment(w);
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    w.kube.completeRollout(deployPath());
    w.clock.advance(500);
    expect(await w.pipeline.reconcile(key)).toEqual({});
    expect(statusWrites(w, key).map(p => (p.body as { status: { phase: string } }).status.phase)).toEqual([
      "Executing",
      "Completed",
    ]);
    expect(trail(w, key)).toEqual([
      "Pending:Queued",
      "Processing:Authorizing",
      "Executing:Authorized",
      "Executing:Applied",
      "Completed:Completed",
    ]);
    expect(condition(task(w, key), "Executed")!.lastTransitionTime).toBe("2026-05-01T10:00:00.000Z");
  });

  test("GIVEN a rollout that is done at once THEN two status writes (the decision, the end) and no read of the target after the write", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    expect(statusWrites(w, key).map(p => (p.body as { status: { phase: string } }).status.phase)).toEqual([
      "Executing",
      "Completed",
    ]);
    const targetReads = w.kube.audit.filter(e => e.method === "GET" && e.path === deployPath());
    // One GET to plan; the write reuses it and verify judges the write's answer.
    expect(targetReads).toHaveLength(1);
    expect(events(w, key)).toEqual(["Completed:Completed"]);
  });

  test("GIVEN an allowed task and a rollout done at once THEN 7 API requests in all, the executor's check included (issue 16: at most 8)", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t");
    w.pipeline.observe(task(w, key)); // as the watch delivers it: no GET of the task
    const before = w.kube.audit.length;
    await w.pipeline.reconcile(key);
    const requests = w.kube.audit.slice(before).map(e => `${e.method}${e.dryRun ? "(dry run)" : ""} ${e.path}`);
    expect(requests).toEqual([
      `GET ${resourcePath("ServiceAccount", "shop", "atb-executor")}`,
      `GET ${deployPath()}`,
      `PATCH(dry run) ${deployPath()}`,
      `PATCH ${taskPath("t")}/status`,
      `PATCH ${deployPath()}`,
      `PATCH ${taskPath("t")}/status`,
      `POST ${resourcePath("Event", "shop")}`,
    ]);
  });

  test("GIVEN a denial THEN one status write and one Event", async () => {
    const w = world();
    deployment(w);
    w.broker.answer(deny("policy_says_no"));
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    expect(task(w, key).status?.phase).toBe("Denied");
    expect(statusWrites(w, key)).toHaveLength(1);
    expect(events(w, key)).toEqual(["Denied:PolicyDenied"]);
  });

  test("GIVEN an allow THEN the broker is asked once, about exactly the change, bounded by the PoA and the deadline", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w, "web", 2);
    const exp = w.clock.t + 120_000;
    const key = submit(w, "t", { payload: { replicas: 3 }, exp });
    await w.pipeline.reconcile(key);
    expect(w.broker.calls).toHaveLength(1);
    const [call] = w.broker.calls;
    expect(call.request).toMatchObject({
      action: "k8s.Deployment.scale",
      agentId: "spiffe://atb.example.com/agent/test",
      requester: REQUESTER,
      target: { kind: "Deployment", name: "web", namespace: "shop" },
      params: { replicas: 3 },
      context: { current: { replicas: 2 }, task: { uid: uidOf(w, key), name: "t", namespace: "shop" } },
    });
    expect(call.options.deadline.getTime()).toBe(Math.floor(exp / 1000) * 1000);
    expect(call.options.requestIdBase).toBe(`${uidOf(w, key)}.0`);
    // the dry run came before the decision and wrote nothing
    const dry = w.kube.audit.filter(e => e.dryRun);
    expect(dry).toHaveLength(1);
    expect(dry[0].seq).toBeLessThanOrEqual(call.stamp);
  });

  test("GIVEN an action's plan THEN the broker is asked exactly decideRequest(task, plan)", async () => {
    const w = world({ kube: { autoRollout: true } });
    const target = deployment(w);
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    await w.pipeline.reconcile(key);
    const t = task(w, key);
    const plan = probePlan({ spec: t.spec!, uid: uidOf(w, key) } as TaskContext, target);
    const { before, after, ...context } = w.broker.calls[0].request.context as Record<string, unknown>;
    expect({ ...w.broker.calls[0].request, context }).toEqual(decideRequest(t, plan, REQUESTER));
    expect(w.broker.calls[0].request.action).toBe("k8s.Deployment.patch");
    // The policy also gets the target as it is and as the dry run says it would be stored.
    expect(before).toMatchObject({ kind: "Deployment", metadata: { name: "web", annotations: {} } });
    expect(after).toMatchObject({ kind: "Deployment", metadata: { annotations: { "probe.example.com/value": "v" } } });
  });

  test("GIVEN an update-config task THEN the ConfigMap is merged and the task completes in one reconcile", async () => {
    const w = world();
    configMap(w, "flags", { a: "1", old: "x" });
    const key = submit(w, "cfg", {
      action: "update-config",
      kind: "ConfigMap",
      target: "flags",
      payload: { data: { b: "2" }, remove: ["old"] },
    });
    expect(await w.pipeline.reconcile(key)).toEqual({});
    expect(task(w, key).status!.phase).toBe("Completed");
    expect(w.kube.read(configMapPath())!.data).toEqual({ a: "1", b: "2" });
    // The canonical change (capabilities/change.ts): the value only as its digest.
    expect(w.broker.calls[0].request.params).toEqual({ data: { b: valueDigest("2") }, remove: ["old"] });
  });
});

describe("Processing: the token is checked before anything is read from the target", () => {
  test("GIVEN a good token THEN the preflight comes before the first read of the target and before the decision", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    w.broker.stamp = () => w.kube.audit.length;
    const key = submit(w, "t", { payload: { replicas: 3 } });
    await drive(w, key);
    expect(task(w, key).status?.phase).toBe("Completed");
    expect(w.broker.preflights).toHaveLength(1);
    const [pre] = w.broker.preflights;
    expect(pre.request).toEqual({
      action: "k8s.Deployment.scale",
      token: task(w, key).spec!.poaToken,
      agentId: "spiffe://atb.example.com/agent/test",
      requester: REQUESTER,
      target: { kind: "Deployment", name: "web", namespace: "shop" },
      context: { task: { uid: uidOf(w, key), name: "t", namespace: "shop" } },
    });
    const firstTargetRead = w.kube.audit.findIndex(e => e.path === deployPath());
    expect(pre.stamp).toBeLessThanOrEqual(firstTargetRead);
    expect(w.broker.calls[0].stamp).toBeGreaterThan(firstTargetRead);
  });

  test.each([
    ["the target exists", true],
    ["the target does not exist", false],
  ])(
    "GIVEN a token the broker refuses WHEN %s THEN the same Denied outcome, no decision, and not one request about the target",
    async (_name, exists) => {
      const w = world();
      if (exists) deployment(w);
      w.broker.answerPreflight(deny("poa_signature_invalid", "LOW"));
      const key = submit(w, "t", { payload: { replicas: 3 } });
      await drive(w, key);
      const t = task(w, key);
      expect({ phase: t.status?.phase, reason: t.status?.atbResult?.reason, message: t.status?.message }).toEqual({
        phase: "Denied",
        reason: "poa_signature_invalid",
        message: "ATB denied the action: poa_signature_invalid",
      });
      expect(w.broker.calls).toHaveLength(0);
      expect(w.kube.audit.filter(e => e.path.startsWith(deployPath()))).toEqual([]);
    },
  );

  test("GIVEN the broker is unreachable for the preflight THEN it is retried like a decision, and nothing is read meanwhile", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    w.broker.answerPreflight(brokerError("BROKER_UNAVAILABLE"));
    const key = submit(w, "t", { payload: { replicas: 3 } });
    await w.pipeline.reconcile(key);
    expect(task(w, key).status).toMatchObject({
      phase: "Processing",
      attempts: 1,
      lastError: "AT_ERR_BROKER_UNAVAILABLE",
    });
    expect(w.kube.audit.filter(e => e.path.startsWith(deployPath()))).toEqual([]);
    await drive(w, key);
    expect(task(w, key).status?.phase).toBe("Completed");
    expect(w.broker.preflights).toHaveLength(2);
  });
});

test("GIVEN approver attestations in the task THEN the decision gets them as they are, the preflight does not", async () => {
  const w = world({ kube: { autoRollout: true } });
  deployment(w);
  const key = submit(w, "t", { payload: { replicas: 3 } });
  const stored = task(w, key);
  const attestations = ["eyJhbGciOiJFZERTQSJ9.eyJhcHByb3ZlciI6ImFsaWNlIn0.c2ln", "eyJh.eyJi.c2"];
  w.kube.put(taskPath("t"), { ...stored, spec: { ...stored.spec, attestations } } as never);
  await drive(w, key);
  expect(w.broker.calls[0].request.attestations).toEqual(attestations);
  expect(w.broker.preflights[0].request).not.toHaveProperty("attestations");
});

test("GIVEN a task that got past admission with a target in a protected namespace THEN Failed InvalidTask, before the broker and any read", async () => {
  const w = world({ env: { ATB_ALLOW_CROSS_NAMESPACE: "true" } });
  deployment(w, "coredns", 2, "kube-system");
  const key = submit(w, "t", { target: "coredns", targetNamespace: "kube-system" });
  await drive(w, key);
  const t = task(w, key);
  expect({ phase: t.status?.phase, reason: condition(t, "Succeeded")?.reason }).toEqual({
    phase: "Failed",
    reason: "InvalidTask",
  });
  expect(t.status?.message).toContain('spec.target.namespace: "kube-system" is protected');
  expect(w.broker.preflights).toHaveLength(0);
  expect(w.kube.audit.filter(e => e.path.startsWith(deployPath("coredns", "kube-system")))).toEqual([]);
});

describe("nothing to write, and the agent's reason", () => {
  test("GIVEN a plan with nothing to write WHEN allowed THEN Completed/NoChange: asked once, no dry run, no write", async () => {
    const noChange = "skipped rollback: already at revision 3; nothing was written";
    const p = probe({ plan: () => ({ params: { revision: 3 }, context: { noChange: true }, noChange }) });
    const w = world({ probe: p });
    deployment(w);
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    await drive(w, key);
    const t = task(w, key);
    expect(t.status).toMatchObject({ phase: "Completed", message: noChange });
    expect(condition(t, "Succeeded")).toMatchObject({ status: "True", reason: "NoChange" });
    expect(condition(t, "Executed")).toMatchObject({ status: "True", reason: "NoChange" });
    expect(trail(w, key)).toEqual([
      "Pending:Queued",
      "Processing:Authorizing",
      "Executing:Authorized",
      "Completed:NoChange",
    ]);
    expect(w.broker.calls).toHaveLength(1);
    expect(w.kube.audit.filter(e => e.path === deployPath() && e.method !== "GET")).toEqual([]);
    expect(p.calls.verify).toBe(0);
  });

  test("GIVEN a plan with nothing to write WHEN denied THEN Denied, as for any other plan", async () => {
    const p = probe({ plan: () => ({ params: {}, context: {}, noChange: "nothing" }) });
    const w = world({ probe: p });
    deployment(w);
    w.broker.answer(deny("poa_signature_invalid"));
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    await drive(w, key);
    expect(task(w, key).status?.phase).toBe("Denied");
  });

  test("GIVEN a reason in the payload THEN the Queued transition's log line shows it (quoted, tokens redacted) and the broker gets it as context, not as a param", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const jws = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    const reason = `rollback after alert 4711 ${jws}`;
    const key = submit(w, "t", { action: "scale", payload: { replicas: 3, reason } });
    await drive(w, key);
    const queued = w.transitions.find(t => t.reason === "Queued");
    const text = JSON.stringify(queued);
    expect(text).toContain("rollback after alert 4711");
    expect(text).not.toContain(jws);
    const call = w.broker.calls[0].request;
    expect(call.context).toMatchObject({ task: { reason } });
    expect(call.params).toEqual({ replicas: 3 });
    expect(task(w, key).status?.phase).toBe("Completed");
  });
});

describe("Processing → Denied", () => {
  test.each([
    { reason: "target_mismatch", tier: "LOW" as const, label: "target_mismatch" },
    { reason: "high_risk_dual_control_required", tier: "HIGH" as const, label: "high_risk_dual_control_required" },
    { reason: "Not A Code!", tier: "MEDIUM" as const, label: "other" },
  ])(
    "GIVEN a deny ($reason) THEN Denied, nothing written, the reason counted as $label",
    async ({ reason, tier, label }) => {
      const w = world();
      deployment(w);
      w.broker.answer(deny(reason, tier));
      const key = submit(w, "t");

      expect(await w.pipeline.reconcile(key)).toEqual({});

      const t = task(w, key);
      expect(t.status).toMatchObject({ phase: "Denied", message: `ATB denied the action: ${reason}` });
      expect(t.status!.atbResult).toMatchObject({ allowed: false, riskTier: tier, reason });
      expect(condition(t, "Authorized")).toMatchObject({ status: "False", reason: "PolicyDenied" });
      expect(condition(t, "Succeeded")).toMatchObject({ status: "False", reason: "PolicyDenied" });
      expect(trail(w, key).at(-1)).toBe("Denied:PolicyDenied");
      expect(w.kube.writes(e => e.path === deployPath())).toHaveLength(0);
      expect(await metric(w.metrics.tasksDenied, { action: "scale", risk_tier: tier, reason: label })).toBe(1);
      expect(reasonLabel(reason)).toBe(label);
    },
  );

  test("GIVEN an allow with an empty reason and no decision id THEN the Authorized condition says 'allowed'", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    w.broker.answer({ allowed: true, riskTier: "LOW", reason: "", requestId: "r", evaluateMs: 0 });
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    const t = task(w, key);
    expect(condition(t, "Authorized")!.message).toBe("allowed");
    expect(t.status!.atbResult).toEqual({ allowed: true, riskTier: "LOW", reason: "", requestId: "r", evaluateMs: 0 });
  });
});

describe("Pending: one task per target", () => {
  test("GIVEN a task holding the target WHEN a second task arrives THEN it waits in Pending, unasked, until the holder finishes and wakes it", async () => {
    const w = world({ env: { WATCH_NAMESPACE: "shop" } }); // scoped: a long wait stores Pending
    deployment(w, "web", 2);
    const a = submit(w, "a", { payload: { replicas: 3 } });
    const b = submit(w, "b", { payload: { replicas: 4 } });
    await w.pipeline.reconcile(a); // applied, waiting for the rollout

    const waiting = await w.pipeline.reconcile(b);

    // Pending is implied (nothing stored) until the task has waited ATB_PENDING_CLAIM_SECONDS
    // (a third of the default 60 s out-of-scope grace).
    expect(waiting.requeueAfterMs).toBe(20_000);
    expect(task(w, b).status).toBeUndefined();
    expect(w.broker.callsFor(uidOf(w, b))).toHaveLength(0);
    w.clock.advance(20_000);
    expect(await w.pipeline.reconcile(b)).toEqual({ requeueAfterMs: 60_000 }); // still held: Pending stored
    expect(task(w, b).status).toMatchObject({ phase: "Pending", message: "Task received; waiting for a worker" });
    expect(statusWrites(w, b)).toHaveLength(1);
    expect(await w.pipeline.reconcile(b)).toEqual({ requeueAfterMs: 60_000 }); // stored once only
    expect(statusWrites(w, b)).toHaveLength(1);

    w.kube.completeRollout(deployPath());
    await w.pipeline.reconcile(a);
    expect(task(w, a).status!.phase).toBe("Completed");
    expect(w.wakes).toEqual([b]);

    w.kube.completeRollout(deployPath());
    await drive(w, b, { between: () => w.kube.completeRollout(deployPath()) });
    expect(task(w, b).status!.phase).toBe("Completed");
    expect(w.kube.read(deployPath())!.spec!.replicas).toBe(4);
  });

  test("GIVEN an operator serving every namespace THEN a waiting task's Pending is never stored (no scoped neighbour to tell)", async () => {
    const w = world();
    deployment(w);
    await w.pipeline.reconcile(submit(w, "a"));
    const b = submit(w, "b");
    expect(await w.pipeline.reconcile(b)).toEqual({ requeueAfterMs: 60_000 });
    w.clock.advance(60_000);
    expect(await w.pipeline.reconcile(b)).toEqual({ requeueAfterMs: 60_000 });
    expect(task(w, b).status).toBeUndefined();
    expect(statusWrites(w, b)).toHaveLength(0);
  });

  test("GIVEN a waiter close to its deadline THEN it looks again just after the deadline, and then fails", async () => {
    const w = world();
    deployment(w);
    const a = submit(w, "a");
    await w.pipeline.reconcile(a);
    const b = submit(w, "b");
    w.clock.advance(590_000); // b's deadline is 600 s after its creation

    const r = await w.pipeline.reconcile(b);

    expect(r.requeueAfterMs).toBe(11_000);
    w.clock.advance(r.requeueAfterMs!);
    await w.pipeline.reconcile(b);
    expect(task(w, b).status).toMatchObject({ phase: "Failed" });
    expect(condition(task(w, b), "Succeeded")!.reason).toBe("TaskDeadlineExceeded");
  });

  test("GIVEN tasks on different targets THEN neither waits for the other", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w, "web");
    deployment(w, "api");
    const a = submit(w, "a", { target: "web" });
    const b = submit(w, "b", { target: "api" });
    await w.pipeline.reconcile(a);
    await w.pipeline.reconcile(b);
    expect([task(w, a).status!.phase, task(w, b).status!.phase]).toEqual(["Completed", "Completed"]);
  });

  /** Task a holds the target (applied, rolling out), b waits for it; then a is deleted. */
  async function holderDeleted(): Promise<{ w: World; a: string; b: string }> {
    const w = world();
    deployment(w);
    const a = submit(w, "a");
    await w.pipeline.reconcile(a);
    const b = submit(w, "b");
    await w.pipeline.reconcile(b);
    w.kube.remove(taskPath("a"));
    return { w, a, b };
  }

  test("GIVEN the holder is deleted WHEN a sweep no longer lists it THEN the target goes to the waiter, and its key reads it (gone)", async () => {
    const { w, a, b } = await holderDeleted();

    w.pipeline.retain(new Set([b]));
    expect(w.wakes).toEqual([b]);
    expect(await w.pipeline.reconcile(a)).toEqual({});
    expect(w.kube.audit.at(-1)).toMatchObject({ method: "GET", path: taskPath("a") });
  });

  test("GIVEN the holder is deleted WHEN its next status write finds it gone THEN it is read again and forgotten", async () => {
    const { w, a, b } = await holderDeleted();
    w.kube.completeRollout(deployPath());

    const r = await w.pipeline.reconcile(a); // Completed: the write answers 404
    expect(r.requeueAfterMs).toBeDefined();
    expect(await w.pipeline.reconcile(a)).toEqual({});
    expect(w.wakes).toEqual([b]);
  });
});

describe("Executing, applied: verify", () => {
  async function applied(o: Parameters<typeof world>[0] = {}) {
    const w = world(o);
    deployment(w, "web", 2);
    const key = submit(w, "t", { payload: { replicas: 3 } });
    await w.pipeline.reconcile(key);
    expect(task(w, key).status!.phase).toBe("Executing");
    // Applied is stored once the rollout has not finished APPLIED_SHOWN_AFTER_MS (5 s) after the write.
    w.clock.advance(5_000);
    await w.pipeline.reconcile(key);
    expect(condition(task(w, key), "Executed")).toMatchObject({ status: "True", reason: "Applied" });
    return { w, key };
  }

  test.each([
    { waited: 5_000, requeue: 500 },
    { waited: 9_999, requeue: 500 },
    { waited: 15_000, requeue: 2_000 },
    { waited: 59_999, requeue: 2_000 },
    { waited: 70_000, requeue: 5_000 },
    { waited: 120_000, requeue: 5_000 },
  ])(
    "GIVEN a rollout still going after $waited ms THEN look again in $requeue ms, status untouched",
    async ({ waited, requeue }) => {
      const { w, key } = await applied();
      const rv = task(w, key).metadata!.resourceVersion;
      w.clock.advance(waited - 5_000); // waited since the write
      expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: requeue });
      expect(task(w, key).metadata!.resourceVersion).toBe(rv);
    },
  );

  test("GIVEN the rollout is not done after the rollout timeout THEN Failed RolloutTimeout (applied, not succeeded)", async () => {
    const { w, key } = await applied();
    w.clock.advance(115_001); // 120 s after the write (applied() waited 5 s)
    await w.pipeline.reconcile(key);
    const t = task(w, key);
    expect(t.status!.phase).toBe("Failed");
    expect(t.status!.message).toMatch(/not done 120s after the change was applied/);
    expect(condition(t, "Succeeded")).toMatchObject({ status: "False", reason: "RolloutTimeout" });
    expect(condition(t, "Executed")!.status).toBe("True");
    expect(await metric(w.metrics.tasksFailed, { action: "scale", reason: "RolloutTimeout" })).toBe(1);
  });

  test.each([
    {
      what: "someone else scaled the target",
      change: (o: { spec?: Record<string, unknown> }) => (o.spec!.replicas = 7),
      reason: "TargetChanged",
    },
    {
      what: "the rollout exceeded its progress deadline",
      change: (o: { metadata: { generation?: number }; status?: Record<string, unknown> }) =>
        (o.status = {
          observedGeneration: o.metadata.generation,
          conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded", message: "stuck" }],
        }),
      reason: "ProgressDeadlineExceeded",
    },
  ])("GIVEN $what THEN Failed $reason", async ({ change, reason }) => {
    const { w, key } = await applied();
    w.kube.mutate(deployPath(), change as never);
    await w.pipeline.reconcile(key);
    expect(condition(task(w, key), "Succeeded")).toMatchObject({ status: "False", reason });
    expect(condition(task(w, key), "Executed")).toMatchObject({ status: "True" });
  });

  test("GIVEN the target vanished after the write THEN Failed TargetNotFound", async () => {
    const { w, key } = await applied();
    w.kube.remove(deployPath());
    await w.pipeline.reconcile(key);
    expect(condition(task(w, key), "Succeeded")).toMatchObject({ reason: "TargetNotFound" });
  });

  test("GIVEN a later task changed the target since THEN Completed as superseded, without waiting", async () => {
    const { w, key } = await applied();
    w.kube.mutate(deployPath(), o => {
      const list = o.metadata.annotations!["atb.siemens.com/applied-tasks"];
      o.metadata.annotations!["atb.siemens.com/applied-tasks"] = `${list} later-uid`;
    });
    await w.pipeline.reconcile(key);
    expect(task(w, key).status).toMatchObject({
      phase: "Completed",
      message: "change applied; a later task (later-uid) has since changed the target",
    });
  });

  test("GIVEN an action whose verify fails with its own reason THEN Failed with that reason", async () => {
    const p = probe({ verify: () => ({ state: "failed", reason: "ProbeBroken", message: "probe says no" }) });
    const w = world({ probe: p });
    deployment(w);
    const key = submit(w, "t", { action: "patch", payload: { value: "v" } });
    await w.pipeline.reconcile(key);
    expect(task(w, key).status).toMatchObject({ phase: "Failed", message: "probe says no" });
    expect(condition(task(w, key), "Succeeded")!.reason).toBe("ProbeBroken");
  });
});

describe("tasks the pipeline leaves alone", () => {
  test.each([
    { what: "Completed", phase: "Completed" },
    { what: "Denied", phase: "Denied" },
    { what: "Failed", phase: "Failed" },
    { what: "an unknown phase", phase: "Paused" },
  ])("GIVEN a task $what THEN one GET and nothing else", async ({ phase }) => {
    const w = world();
    deployment(w);
    const key = submit(w, "t", { status: { phase: phase as "Completed" } });
    const before = w.kube.audit.length;
    expect(await w.pipeline.reconcile(key)).toEqual({});
    expect(w.kube.audit.slice(before).map(e => e.method)).toEqual(["GET"]);
    expect(w.broker.calls).toHaveLength(0);
  });

  test("GIVEN a task outside WATCH_NAMESPACE THEN nothing is written", async () => {
    const w = world({ env: { WATCH_NAMESPACE: "elsewhere" } });
    deployment(w);
    const key = submit(w, "t");
    expect(await w.pipeline.reconcile(key)).toEqual({});
    expect(task(w, key).status).toBeUndefined();
  });

  test("GIVEN a task in WATCH_NAMESPACE THEN it runs", async () => {
    const w = world({ env: { WATCH_NAMESPACE: "elsewhere,shop" }, kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    expect(task(w, key).status!.phase).toBe("Completed");
  });

  test("GIVEN a task that no longer exists THEN nothing, and no error", async () => {
    const w = world();
    expect(await w.pipeline.reconcile("shop/ghost")).toEqual({});
  });

  test("taskKey is namespace/name", () => {
    const w = world();
    const key = submit(w, "t");
    expect(taskKey(task(w, key))).toBe("shop/t");
  });
});

async function eventually(check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise(r => setTimeout(r, 5));
  }
}

describe("a rollout followed through a watch (ATB_ROLLOUT_WATCH)", () => {
  const targetGets = (w: World) => w.kube.audit.filter(e => e.method === "GET" && e.path === deployPath()).length;

  test("GIVEN a watch follows the target THEN its events end the wait: the task is woken, no GET after the plan's", async () => {
    const w = world({ watches: true });
    try {
      deployment(w);
      const key = submit(w, "t");
      const first = await w.pipeline.reconcile(key);
      expect(first.requeueAfterMs).toBeLessThanOrEqual(5_000); // by when Applied would be stored;
      expect(w.watches!.stats()).toMatchObject({ streams: 1, interests: 1 });
      w.kube.completeRollout(deployPath());
      await eventually(() => w.wakes.includes(key));
      expect(await w.pipeline.reconcile(key)).toEqual({});
      expect(task(w, key).status!.phase).toBe("Completed");
      expect(targetGets(w)).toBe(1);
      expect(statusWrites(w, key)).toHaveLength(2);
      // Done: the interest is cancelled and the stream stops.
      await eventually(() => w.watches!.stats().streams === 0);
    } finally {
      await w.watches?.close();
    }
  });

  test("GIVEN a rollout that takes a while THEN the task looks again by itself only every 30 s (the watch wakes it), Applied stored after 5 s", async () => {
    const w = world({ watches: true });
    try {
      deployment(w);
      const key = submit(w, "t");
      await w.pipeline.reconcile(key);
      w.clock.advance(5_000);
      expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: 30_000 });
      expect(condition(task(w, key), "Executed")).toMatchObject({ status: "True", reason: "Applied" });
      expect(targetGets(w)).toBe(1);
    } finally {
      await w.watches?.close();
    }
  });

  test("GIVEN a ConfigMap (nothing rolls out) THEN no watch at all", async () => {
    const w = world({ watches: true });
    try {
      configMap(w, "flags", { a: "1" });
      const key = submit(w, "cfg", {
        action: "update-config",
        kind: "ConfigMap",
        target: "flags",
        payload: { data: { a: "2" } },
      });
      await w.pipeline.reconcile(key);
      expect(task(w, key).status!.phase).toBe("Completed");
      expect(w.watches!.stats().streams).toBe(0);
      expect(w.kube.audit.some(e => e.query?.watch === "1")).toBe(false);
    } finally {
      await w.watches?.close();
    }
  });
});
