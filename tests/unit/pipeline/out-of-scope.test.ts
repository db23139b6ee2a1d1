// The pipeline on a task in a namespace the operator never processes: a protected namespace it
// watches is Failed/OutOfScope at once; a namespace outside WATCH_NAMESPACE only once the task
// has had no status for the grace (another instance may serve it), through the status writer
// like every transition (one conditional patch, one Event, the failure counted).
import { outOfScope, unclaimed } from "../../../capabilities/lib/pipeline/out-of-scope";
import { parseConfig } from "../../../capabilities/lib/config";
import type { AgentTask } from "../../../crds/agenttask";
import { deployment, submit, T0, task, trail, world } from "./harness";

const SCOPED = { WATCH_NAMESPACE: "shop" };
const writes = (w: ReturnType<typeof world>) => w.kube.audit.filter(e => e.method !== "GET");

describe("Pipeline.reconcile", () => {
  test("GIVEN a task outside WATCH_NAMESPACE without status WHEN the grace has not passed THEN nothing is written; WHEN it has THEN Failed/OutOfScope", async () => {
    const w = world({ env: SCOPED });
    const key = submit(w, "t", { namespace: "elsewhere" });
    w.clock.advance(59_999);
    expect(await w.pipeline.reconcile(key)).toEqual({});
    expect(writes(w)).toEqual([]);

    w.clock.advance(1);
    await w.pipeline.reconcile(key);
    const t = task(w, key);
    expect(t.status).toMatchObject({ phase: "Failed" });
    const conditions = new Map(t.status?.conditions?.map(c => [c.type, c]));
    expect([...conditions.keys()].sort()).toEqual(["Authorized", "Succeeded"]);
    expect(conditions.get("Authorized")).toMatchObject({ status: "False", reason: "OutOfScope" });
    expect(conditions.get("Succeeded")).toMatchObject({
      status: "False",
      reason: "OutOfScope",
      message:
        'metadata.namespace: "elsewhere" is not served by the ATB operator (WATCH_NAMESPACE=shop): it never processes AgentTasks in it; no operator picked the task up within 60s',
    });
    expect(trail(w, key)).toEqual(["Failed:OutOfScope"]);
    expect(w.broker.calls).toHaveLength(0);
    expect((await w.metrics.tasksFailed.get()).values).toEqual([
      expect.objectContaining({ labels: { action: "scale", reason: "OutOfScope" }, value: 1 }),
    ]);
  });

  test("GIVEN a task outside WATCH_NAMESPACE that has a status THEN it is never touched, however old", async () => {
    const w = world({ env: SCOPED });
    const key = submit(w, "t", { namespace: "elsewhere", status: { phase: "Pending" } });
    w.clock.advance(3_600_000);
    expect(await w.pipeline.reconcile(key)).toEqual({});
    expect(writes(w)).toEqual([]);
  });

  test("GIVEN an operator serving every namespace and a task in a protected one THEN Failed/OutOfScope at once, no broker call", async () => {
    const w = world();
    deployment(w, "web", 2, "kube-system");
    const key = submit(w, "t", { namespace: "kube-system", status: { phase: "Pending" } });
    await w.pipeline.reconcile(key);
    expect(task(w, key).status?.phase).toBe("Failed");
    expect(trail(w, key)).toEqual(["Failed:OutOfScope"]);
    expect(w.broker.calls).toHaveLength(0);
  });

  test("GIVEN kube-system allowed (not in ATB_PROTECTED_NAMESPACES) THEN a task there runs", async () => {
    const w = world({ env: { ATB_PROTECTED_NAMESPACES: "pepr-system" }, kube: { autoRollout: true } });
    deployment(w, "web", 2, "kube-system");
    const key = submit(w, "t", { namespace: "kube-system" });
    await w.pipeline.reconcile(key);
    expect(task(w, key).status?.phase).toBe("Completed");
  });
});

describe("unclaimed and outOfScope (the rule, pure)", () => {
  const at = (ms: number) => new Date(T0 + ms);
  const t = (namespace: string, status?: AgentTask["status"]): AgentTask =>
    ({
      metadata: { name: "t", namespace, creationTimestamp: new Date(T0).toISOString() },
      status,
    }) as unknown as AgentTask;

  test.each([
    ["no status, older than the grace", SCOPED, t("elsewhere"), 60_000, true],
    ["an empty status counts as none", SCOPED, t("elsewhere", {}), 60_000, true],
    ["younger than the grace", SCOPED, t("elsewhere"), 59_999, false],
    ["has a status", SCOPED, t("elsewhere", { phase: "Pending" }), 600_000, false],
    ["in WATCH_NAMESPACE", SCOPED, t("shop"), 600_000, false],
    ["grace 0: off", { ...SCOPED, ATB_OUT_OF_SCOPE_GRACE_SECONDS: "0" }, t("elsewhere"), 600_000, false],
    [
      "not among the namespaces checked",
      { ...SCOPED, ATB_OUT_OF_SCOPE_NAMESPACES: "orphans" },
      t("elsewhere"),
      600_000,
      false,
    ],
    [
      "among the namespaces checked",
      { ...SCOPED, ATB_OUT_OF_SCOPE_NAMESPACES: "orphans" },
      t("orphans"),
      600_000,
      true,
    ],
    ["no creation time", SCOPED, { metadata: { namespace: "elsewhere" } } as AgentTask, 600_000, false],
  ])("unclaimed: %s", (...[, env, task, afterMs, expected]) => {
    expect(unclaimed(task, parseConfig(env), at(afterMs))).toBe(expected);
  });

  test("outOfScope: served → undefined; another's → leave; protected and watched → Failed at once", () => {
    const all = parseConfig({});
    expect(outOfScope(t("shop"), all, at(0))).toBeUndefined();
    expect(outOfScope(t("elsewhere"), parseConfig(SCOPED), at(0))).toBe("leave");
    expect(outOfScope(t("kube-system", { phase: "Executing" }), all, at(0))).toMatchObject({
      phase: "Failed",
      reason: "OutOfScope",
    });
    // outside the watch, a protected namespace follows the grace rule like any other
    expect(outOfScope(t("kube-system"), parseConfig(SCOPED), at(0))).toBe("leave");
    expect(outOfScope(t("kube-system"), parseConfig(SCOPED), at(60_000))).toMatchObject({ reason: "OutOfScope" });
  });
});
