// Restarts: the process dies at a chosen request (the in-memory API server refuses everything the
// old process sends afterwards) and a new Pipeline, with empty memory, carries on over the same
// stored objects. After each phase that can be stored, the task must still finish, with its
// change written at most once and never without an allow for it.
import type { AgentTask } from "../../../crds/agenttask";
import { decisionTransition, Pipeline, Reason } from "../../../capabilities/lib/pipeline";
import { createStatusWriter } from "../../../capabilities/lib/status/writer";
import { OperatorMetrics } from "../../../capabilities/lib/metrics";
import { createLogger } from "../../../capabilities/lib/logger";
import { KubeError } from "../../../capabilities/lib/kube";
import { deny, FakeBroker } from "../../helpers/fake-broker";
import { FakeCrash, FakeKube, withExecutors, type RequestInfo } from "../../helpers/fake-kube";
import { ScaleAction } from "../../../capabilities/scale";
import {
  applyWrites,
  condition,
  deployPath,
  deployment,
  drive,
  ENV,
  submit,
  task,
  token,
  trail,
  uidOf,
  world,
  type World,
  requesterMetadata,
} from "./harness";
import { parseConfig } from "../../../capabilities/lib/config";
import { Writable } from "node:stream";
import { startedStatus } from "../../helpers/statuses";

const statusPhase = (r: RequestInfo) =>
  r.method === "PATCH" && r.path.endsWith("/status") ? (r.body as { status: { phase: string } }).status.phase : "";
const isTargetWrite = (r: RequestInfo) => r.path === deployPath() && r.method === "PATCH" && !r.dryRun;

/** Crashes the process at the first request matching `when` (before it runs, or after it is stored). */
function crashAt(w: World, when: (r: RequestInfo) => boolean, after = false): void {
  let done = false;
  w.kube.onRequest(r => {
    if (done || !when(r)) return undefined;
    done = true;
    const error = new FakeCrash(`${r.method} ${r.path}`);
    return after ? { error, when: "after" } : error;
  });
}

/** Runs the task into the crash, then starts a new process; returns the stored task it starts from. */
async function crashThenRestart(w: World, key: string): Promise<AgentTask> {
  await w.pipeline.reconcile(key).catch(() => undefined);
  expect(w.kube.crashed).toBe(true);
  w.restart();
  return task(w, key);
}

interface RestartCase {
  what: string;
  crash: (r: RequestInfo) => boolean;
  after?: boolean;
  /** The last transition stored (and logged) when the process died; undefined: nothing stored yet. */
  stored?: string;
  brokerCalls: number;
}

describe("a new process after each stored phase", () => {
  test.each<RestartCase>([
    // Pending and Processing are carried by the decision's write: before it, nothing is stored.
    { what: "Processing, before the dry run", crash: r => r.dryRun, brokerCalls: 1 },
    { what: "Processing, the allow not yet stored", crash: r => statusPhase(r) === "Executing", brokerCalls: 2 },
    {
      what: "Executing, before the write",
      crash: isTargetWrite,
      stored: "Executing:Authorized",
      brokerCalls: 2,
    },
    {
      what: "Executing, written but Applied not yet stored",
      crash: isTargetWrite,
      after: true,
      stored: "Executing:Authorized",
      brokerCalls: 1,
    },
    {
      what: "Completed stored, its Event not",
      crash: r => r.method === "POST" && (r.body as { reason?: string }).reason === "Completed",
      stored: "Completed:Completed", // an Event is best-effort: the transition is stored and logged
      brokerCalls: 1,
    },
  ])("GIVEN a crash in $what THEN the new process finishes it, one write, $brokerCalls decision(s)", async c => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t");
    crashAt(w, c.crash, c.after);

    await crashThenRestart(w, key);
    expect(trail(w, key).at(-1)).toBe(c.stored);
    const { task: t } = await drive(w, key);

    expect(t.status!.phase).toBe("Completed");
    expect(applyWrites(w, uidOf(w, key))).toHaveLength(1);
    expect(w.broker.calls).toHaveLength(c.brokerCalls);
    const write = applyWrites(w, uidOf(w, key))[0];
    expect(w.broker.calls.filter(call => call.outcome === "allow" && call.stamp < write.seq).length).toBeGreaterThan(0);
  });

  test("GIVEN the crash came after the write THEN the new process finds the marker and says so", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t");
    crashAt(w, isTargetWrite, true);
    await crashThenRestart(w, key);
    await drive(w, key);
    const applied = w.transitions.filter(x => x.reason === "Applied").map(x => x.detail);
    expect(applied).toEqual(["the change was already applied (marker found on the target)"]);
    expect(w.kube.audit.filter(isTargetWrite)).toHaveLength(1);
  });

  test("GIVEN the crash came before the write THEN the new process authorizes again with the same token", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t");
    crashAt(w, isTargetWrite);
    const stored = await crashThenRestart(w, key);
    expect(condition(stored, "Authorized")!.status).toBe("True");

    await drive(w, key);

    expect(trail(w, key)).toContain("Processing:Reauthorizing");
    const [first, second] = w.broker.calls;
    expect(second.request.token).toBe(first.request.token);
  });

  test("GIVEN the crash came before the write and the PoA has expired since THEN Failed PoAExpired, nothing written", async () => {
    const w = world();
    deployment(w);
    const key = submit(w, "t", { exp: w.clock.t + 60_000 });
    crashAt(w, isTargetWrite);
    await crashThenRestart(w, key);
    w.clock.advance(61_000);

    await w.pipeline.reconcile(key);

    const t = task(w, key);
    expect(t.status!.message).toMatch(/and the PoA token has expired since, so the change was not applied$/);
    expect(condition(t, "Executed")).toMatchObject({ status: "False", reason: Reason.PoAExpired });
    expect(condition(t, "Authorized")!.status).toBe("True");
    expect(applyWrites(w, uidOf(w, key))).toHaveLength(0);
    expect(w.broker.calls).toHaveLength(1);
  });

  test("GIVEN the new process finds an Executing task whose token no longer decodes THEN Failed PoAExpired", async () => {
    const w = world();
    deployment(w);
    const key = submit(w, "t", { poaToken: "garbage", status: startedStatus(w.clock.now()) });
    await w.pipeline.reconcile(key);
    expect(condition(task(w, key), "Succeeded")!.reason).toBe("PoAExpired");
  });

  test("GIVEN the change was applied before the crash THEN verify only: no decision, no write", async () => {
    const w = world();
    deployment(w);
    const key = submit(w, "t");
    await w.pipeline.reconcile(key); // applied, rollout pending
    const calls = w.broker.calls.length;
    const writes = w.kube.audit.filter(isTargetWrite).length;
    w.restart();
    w.kube.completeRollout(deployPath());

    await w.pipeline.reconcile(key);

    expect(task(w, key).status!.phase).toBe("Completed");
    expect(w.broker.calls).toHaveLength(calls);
    expect(w.kube.audit.filter(isTargetWrite)).toHaveLength(writes);
  });

  test.each(["Completed", "Denied", "Failed"])(
    "GIVEN a %s task THEN a new process reads it and does nothing else",
    async phase => {
      const w = world({ kube: { autoRollout: true } });
      deployment(w);
      if (phase === "Denied") w.broker.answer(deny());
      if (phase === "Failed") w.kube.onRequest(r => (r.dryRun ? new Error("boom") : undefined));
      const key = submit(w, "t");
      await w.pipeline.reconcile(key);
      expect(task(w, key).status!.phase).toBe(phase);
      w.restart();
      const before = w.kube.audit.length;
      const calls = w.broker.calls.length;

      expect(await w.pipeline.reconcile(key)).toEqual({});

      expect(w.kube.audit.slice(before).map(e => e.method)).toEqual(["GET"]);
      expect(w.broker.calls).toHaveLength(calls);
    },
  );
});

describe("targets after a restart", () => {
  test("GIVEN a task that was past Pending THEN the new process re-takes its target before a Pending task can", async () => {
    const w = world();
    deployment(w);
    const a = submit(w, "a");
    crashAt(w, isTargetWrite);
    await crashThenRestart(w, a);
    const b = submit(w, "b");

    // what the operator's first sweep does before any work
    w.pipeline.holdTargetIfStarted(task(w, a));
    w.pipeline.holdTargetIfStarted(task(w, b));
    expect(w.pipeline.locks.holder("Deployment/shop/web")).toBe(a);

    // b waits, Pending implied (an operator serving every namespace never stores it).
    expect(await w.pipeline.reconcile(b)).toEqual({ requeueAfterMs: 60_000 });
    expect(task(w, b).status).toBeUndefined();
    expect(w.broker.callsFor(uidOf(w, b))).toHaveLength(0);
    await drive(w, a, { between: () => w.kube.completeRollout(deployPath()) });
    expect(w.wakes).toEqual([b]);
  });

  test("GIVEN the sweep no longer finds the holder open THEN its target goes to the waiter", async () => {
    const w = world();
    deployment(w);
    const a = submit(w, "a");
    await w.pipeline.reconcile(a);
    const b = submit(w, "b");
    await w.pipeline.reconcile(b);

    w.pipeline.locks.retain(new Set([b]));

    expect(w.wakes).toEqual([b]);
    expect(w.pipeline.locks.holder("Deployment/shop/web")).toBe(b);
  });

  test("GIVEN several waiters THEN the target goes to them one at a time, in arrival order", async () => {
    const w = world();
    deployment(w);
    const [a, b, c] = [submit(w, "a"), submit(w, "b"), submit(w, "c")];
    await w.pipeline.reconcile(a);
    await w.pipeline.reconcile(b);
    await w.pipeline.reconcile(c);
    await drive(w, a, { between: () => w.kube.completeRollout(deployPath()) });
    expect(w.wakes).toEqual([b]);
    expect(await w.pipeline.reconcile(c)).toEqual({ requeueAfterMs: expect.any(Number) }); // still waiting
    expect(w.broker.callsFor(uidOf(w, c))).toHaveLength(0);
    await drive(w, b, { between: () => w.kube.completeRollout(deployPath()) });
    expect(w.wakes).toEqual([b, c]);
  });

  test("GIVEN a sweep finds a waiter gone and the holder open THEN the holder keeps the target and nobody is woken", async () => {
    const w = world();
    deployment(w);
    const a = submit(w, "a");
    await w.pipeline.reconcile(a);
    await w.pipeline.reconcile(submit(w, "b"));
    w.pipeline.locks.retain(new Set([a]));
    expect(w.pipeline.locks.holder("Deployment/shop/web")).toBe(a);
    await drive(w, a, { between: () => w.kube.completeRollout(deployPath()) });
    expect(w.wakes).toEqual([]);
  });

  test("GIVEN no wake callback THEN a released target still goes to the waiter, which finds it on its next look", async () => {
    const w = world({ noWake: true });
    deployment(w);
    const a = submit(w, "a");
    const b = submit(w, "b");
    await w.pipeline.reconcile(a);
    await w.pipeline.reconcile(b);
    await drive(w, a, { between: () => w.kube.completeRollout(deployPath()) });
    expect(w.pipeline.locks.holder("Deployment/shop/web")).toBe(b);
    const { task: t } = await drive(w, b, { between: () => w.kube.completeRollout(deployPath()) });
    expect(t.status!.phase).toBe("Completed");
  });

  test("GIVEN a started task without a target THEN holding its target is a no-op, not a crash", () => {
    const w = world();
    const bare = { metadata: { name: "x", namespace: "shop" }, status: { phase: "Processing" } } as AgentTask;
    expect(() => w.pipeline.holdTargetIfStarted(bare)).not.toThrow();
  });
});

describe("statuses an earlier process (or a person) left behind", () => {
  test("GIVEN Processing without an attempts count THEN the decision's request id counts from 0", async () => {
    const w = world({ kube: { autoRollout: true } });
    deployment(w);
    const key = submit(w, "t", { status: { phase: "Processing" } });
    await w.pipeline.reconcile(key);
    expect(w.broker.calls[0].options.requestIdBase).toBe(`${uidOf(w, key)}.0`);
  });

  test("GIVEN Processing without an attempts count and a transient error THEN attempts becomes 1", async () => {
    const w = world();
    deployment(w);
    w.kube.onRequest(r => (r.dryRun ? new KubeError(500, "", "x") : undefined));
    const key = submit(w, "t", { status: { phase: "Processing" } });
    await w.pipeline.reconcile(key);
    expect(task(w, key).status!.attempts).toBe(1);
  });

  test("GIVEN Executed=True without a lastTransitionTime THEN the rollout wait counts from now", async () => {
    const w = world();
    deployment(w);
    w.kube.mutate(deployPath(), o => (o.spec!.replicas = 3)); // applied, not rolled out
    const status = startedStatus(w.clock.now());
    status.conditions!.push({ type: "Executed", status: "True", reason: "Applied", message: "m" } as never);
    const key = submit(w, "t", { status });
    expect(await w.pipeline.reconcile(key)).toEqual({ requeueAfterMs: 500 });
  });

  test("GIVEN a task without a spec THEN Failed InvalidTask", async () => {
    const w = world();
    w.kube.put("/apis/atb.siemens.com/v1alpha1/namespaces/shop/agenttasks/bare", { metadata: {} });
    await w.pipeline.reconcile("shop/bare");
    expect(task(w, "shop/bare").status).toMatchObject({
      phase: "Failed",
      message: "action undefined has no module in this operator",
    });
    expect(await w.metrics.tasksFailed.get()).toMatchObject({
      values: [{ labels: { action: "unknown", reason: Reason.InvalidTask } }],
    });
  });
});

describe("defaults", () => {
  test("GIVEN no clock and no wake THEN the pipeline runs on the system time", async () => {
    const kube = withExecutors(new FakeKube({ autoRollout: true }), ["shop"]);
    const log = createLogger("error", "test", new Writable({ write: (_c, _e, cb) => cb() }));
    const config = parseConfig(ENV);
    const pipeline = new Pipeline({
      kube,
      broker: new FakeBroker(),
      actions: { scale: ScaleAction } as never,
      config,
      log,
      metrics: new OperatorMetrics(),
      status: createStatusWriter({ kube, log }),
    });
    kube.put(deployPath(), { kind: "Deployment", metadata: {}, spec: { replicas: 1 } });
    kube.put("/apis/atb.siemens.com/v1alpha1/namespaces/shop/agenttasks/t", {
      metadata: requesterMetadata(),
      spec: {
        agentId: "spiffe://x/y",
        poaToken: token(Date.now() + 60_000),
        action: "scale",
        target: { kind: "Deployment", name: "web", namespace: "shop" },
        payload: { replicas: 2 },
      },
    });
    await pipeline.reconcile("shop/t");
    const t = kube.read<AgentTask>("/apis/atb.siemens.com/v1alpha1/namespaces/shop/agenttasks/t")!;
    expect(t.status!.phase).toBe("Completed");
    expect(Math.abs(Date.parse(t.status!.finishedAt!) - Date.now())).toBeLessThan(10_000);
  });

  test("the Denied transition is the one decisionTransition describes", async () => {
    const w = world();
    deployment(w);
    const d = deny("maintenance_window", "HIGH");
    w.broker.answer(d);
    const key = submit(w, "t");
    await w.pipeline.reconcile(key);
    const want = decisionTransition(d);
    expect(task(w, key).status).toMatchObject({ phase: want.phase, message: want.message });
  });
});
