// Finished tasks go away (capabilities/lib/runtime/ttl.ts): GIVEN finished and open tasks in the
// fake API server, WHEN the runtime's sweep lists them, THEN exactly the finished ones past
// their TTL are deleted, each after an Expired Event and with the uid and resourceVersion the
// sweep saw as preconditions; a TTL of 0 keeps a task, an open task is never deleted, and a
// failed deletion (403, 409, network) is logged and counted and retried by the next sweep.
import { Writable } from "node:stream";
import type { AgentTask } from "../../crds/agenttask";
import type { ActionRegistry } from "../../capabilities/lib/action";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import { MAX_TTL_SECONDS, parseConfig } from "../../capabilities/lib/config";
import { KubeError, resourcePath } from "../../capabilities/lib/kube";
import { createLogger } from "../../capabilities/lib/logger";
import { OperatorMetrics } from "../../capabilities/lib/metrics";
import { OperatorRuntime } from "../../capabilities/lib/runtime";
import {
  deleteErrorCode,
  ExpiredBatch,
  expired,
  finishedAt,
  MAX_TTL_DELETES_PER_SWEEP,
  TtlReaper,
  ttlSeconds,
} from "../../capabilities/lib/runtime/ttl";
import { createStatusWriter } from "../../capabilities/lib/status/writer";
import { ScaleAction } from "../../capabilities/scale";
import { FakeBroker } from "../helpers/fake-broker";
import { FakeKube, type AuditEntry } from "../helpers/fake-kube";
import { token } from "./pipeline/harness";

const NS = "shop";
const taskPath = (name: string) => resourcePath("AgentTask", NS, name);
const EVENTS = resourcePath("Event", NS);
const NOW = new Date("2026-05-01T12:00:00Z");
const ago = (s: number, from = NOW) => new Date(from.getTime() - s * 1000).toISOString();

function finished(phase: "Completed" | "Denied" | "Failed", at: string): AgentTask["status"] {
  return {
    phase,
    message: "done",
    finishedAt: at,
    conditions: [{ type: "Succeeded", status: "True", reason: "Completed", message: "done", lastTransitionTime: at }],
  };
}

function addTask(kube: FakeKube, name: string, status?: AgentTask["status"], ttl?: number): AgentTask {
  kube.put(taskPath(name), {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: {},
    spec: {
      agentId: "spiffe://atb.example.com/agent/test",
      poaToken: token(Date.now() + 300_000),
      action: "scale",
      target: { kind: "Deployment", name: "web", namespace: NS },
      payload: { replicas: 2 },
      ...(ttl !== undefined ? { ttlSecondsAfterFinished: ttl } : {}),
    },
    ...(status ? { status: status as Record<string, unknown> } : {}),
  });
  return kube.read<AgentTask>(taskPath(name))!;
}

describe("the setting and the field", () => {
  test("ATB_TTL_SECONDS_AFTER_FINISHED: a day by default, 0 allowed, bounded, named when invalid", () => {
    expect(parseConfig({}).ttlSecondsAfterFinished).toBe(86_400);
    expect(parseConfig({ ATB_TTL_SECONDS_AFTER_FINISHED: "0" }).ttlSecondsAfterFinished).toBe(0);
    expect(parseConfig({ ATB_TTL_SECONDS_AFTER_FINISHED: String(MAX_TTL_SECONDS) }).ttlSecondsAfterFinished).toBe(
      MAX_TTL_SECONDS,
    );
    for (const bad of ["-1", "1d", "1.5", String(MAX_TTL_SECONDS + 1)])
      expect(() => parseConfig({ ATB_TTL_SECONDS_AFTER_FINISHED: bad })).toThrow(
        /^ATB_TTL_SECONDS_AFTER_FINISHED: must be/,
      );
  });

  test("the CRD's spec.ttlSecondsAfterFinished: an integer from 0 to the same maximum, under the immutable spec", () => {
    const crd = load(readFileSync(join(__dirname, "..", "..", "crds", "agenttask.yaml"), "utf8")) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: Record<string, unknown> } } } }[] };
    };
    const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec as {
      properties: Record<string, Record<string, unknown>>;
      required: string[];
      "x-kubernetes-validations": { rule: string }[];
    };
    expect(spec.properties.ttlSecondsAfterFinished).toMatchObject({
      type: "integer",
      minimum: 0,
      maximum: MAX_TTL_SECONDS,
    });
    expect(spec.required).not.toContain("ttlSecondsAfterFinished");
    expect(spec["x-kubernetes-validations"].map(v => v.rule)).toContain("self == oldSelf");
  });
});

describe("when a finished task is due", () => {
  const kube = new FakeKube();
  const task = (status?: AgentTask["status"], ttl?: number, name = "t") => {
    kube.remove(taskPath(name));
    return addTask(kube, name, status, ttl);
  };

  test("the TTL is the task's own, else the default; 0 is a TTL of its own (keep)", () => {
    expect(ttlSeconds(task(undefined, 5), 86_400)).toBe(5);
    expect(ttlSeconds(task(undefined, 0), 86_400)).toBe(0);
    expect(ttlSeconds(task(undefined), 86_400)).toBe(86_400);
  });

  test("finished at status.finishedAt, else the conditions' latest transition, else unknown", () => {
    expect(finishedAt(task(finished("Completed", ago(10))))).toEqual(new Date(ago(10)));
    const noFinish = { ...finished("Failed", ago(10)), finishedAt: undefined };
    noFinish.conditions = [
      { type: "Authorized", status: "True", reason: "Authorized", message: "", lastTransitionTime: ago(30) },
      { type: "Succeeded", status: "False", reason: "X", message: "", lastTransitionTime: ago(20) },
    ];
    expect(finishedAt(task(noFinish))).toEqual(new Date(ago(20)));
    expect(finishedAt(task({ phase: "Completed" }))).toBeUndefined();
  });

  test("due exactly when finish + TTL is not after now, for each terminal phase", () => {
    for (const phase of ["Completed", "Denied", "Failed"] as const) {
      const t = task(finished(phase, ago(5)), 5);
      const due = expired(t, 86_400, NOW);
      expect(due).toMatchObject({
        name: "t",
        namespace: NS,
        uid: t.metadata!.uid,
        resourceVersion: t.metadata!.resourceVersion,
        phase,
        ttlSeconds: 5,
        finishedAt: new Date(ago(5)),
        expiresAt: NOW,
      });
      expect(expired(t, 86_400, new Date(NOW.getTime() - 1))).toBeUndefined();
    }
  });

  test("never due: TTL 0, open phases (whatever their status says), no finish time", () => {
    expect(expired(task(finished("Completed", ago(1e6)), 0), 1, NOW)).toBeUndefined();
    expect(expired(task(finished("Completed", ago(1e6))), 0, NOW)).toBeUndefined();
    for (const phase of ["Pending", "Processing", "Executing"] as const)
      expect(expired(task({ ...finished("Completed", ago(1e6)), phase }, 1), 1, NOW)).toBeUndefined();
    expect(expired(task(undefined, 1), 1, NOW)).toBeUndefined();
    expect(expired(task({ phase: "Denied" }, 1), 1, NOW)).toBeUndefined();
  });

  test("the default applies to tasks without a TTL of their own", () => {
    const t = task(finished("Denied", ago(100)));
    expect(expired(t, 101, NOW)).toBeUndefined();
    expect(expired(t, 100, NOW)?.ttlSeconds).toBe(100);
  });

  test("error classes are a bounded set", () => {
    expect(deleteErrorCode(new KubeError(403, "Forbidden", "x"))).toBe("forbidden");
    expect(deleteErrorCode(new KubeError(409, "Conflict", "x"))).toBe("conflict");
    expect(deleteErrorCode(new KubeError(0, "NetworkError", "x"))).toBe("network");
    expect(deleteErrorCode(new KubeError(503, "ServiceUnavailable", "x"))).toBe("server");
    expect(deleteErrorCode(new KubeError(429, "TooManyRequests", "x"))).toBe("throttled");
    expect(deleteErrorCode(new Error("x"))).toBe("other");
  });
});

// ---- the sweep, on the runtime ----

const running: OperatorRuntime[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map(rt => rt.stop()));
});

function runtime(kube: FakeKube, env: Record<string, string> = {}) {
  const lines: string[] = [];
  const log = createLogger("debug", "test", new Writable({ write: (c, _e, cb) => cb(void lines.push(String(c))) }));
  // Every sweep after the start-up one (which lists the open tasks only) lists the finished ones.
  const config = parseConfig({
    LOG_LEVEL: "info",
    ATB_METRICS_PORT: "0",
    ATB_SWEEP_INTERVAL_SECONDS: "3600",
    ATB_SWEEP_FINISHED_EVERY: "1",
    ...env,
  });
  /** start(), then the first sweep that lists the finished tasks. */
  const started = async () => {
    await rt.start();
    await rt.sweep();
  };
  const rt = new OperatorRuntime(config, { scale: ScaleAction } as unknown as ActionRegistry, log, {
    kube: async () => kube,
    broker: () => new FakeBroker(),
  });
  running.push(rt);
  return { rt, lines, started };
}

const deletes = (kube: FakeKube) => kube.audit.filter(e => e.method === "DELETE");
const expiredEvents = (kube: FakeKube) =>
  kube.audit.filter(
    e => e.method === "POST" && e.path === EVENTS && (e.body as { reason: string }).reason === "Expired",
  );
const counter = async (rt: OperatorRuntime) =>
  Object.fromEntries((await rt.metrics.tasksDeleted.get()).values.map(v => [String(v.labels.reason), v.value]));
const errors = async (rt: OperatorRuntime) =>
  (await rt.metrics.taskDeleteErrors.get()).values.map(v => [v.labels.reason, v.labels.code, v.value]);

describe("the sweep deletes expired tasks", () => {
  test("GIVEN finished tasks past, before and without their TTL and open tasks THEN only the expired are deleted, each after its Event, with preconditions", async () => {
    const kube = new FakeKube();
    const now = new Date();
    const gone = addTask(kube, "expired-own", finished("Completed", ago(6, now)), 5);
    const goneDefault = addTask(kube, "expired-default", finished("Denied", ago(120, now)));
    addTask(kube, "young", finished("Failed", ago(1, now)), 3600);
    addTask(kube, "keep", finished("Completed", ago(1e6, now)), 0);
    addTask(kube, "open-pending", { phase: "Pending", finishedAt: ago(1e6, now) }, 1);
    addTask(kube, "open-new", undefined, 1);
    const { rt, lines, started } = runtime(kube, { ATB_TTL_SECONDS_AFTER_FINISHED: "60" });

    await started();

    expect(kube.read(taskPath("expired-own"))).toBeUndefined();
    expect(kube.read(taskPath("expired-default"))).toBeUndefined();
    for (const name of ["young", "keep", "open-pending", "open-new"]) expect(kube.read(taskPath(name))).toBeDefined();

    const del = deletes(kube);
    expect(del.map(e => e.path).sort()).toEqual([taskPath("expired-default"), taskPath("expired-own")]);
    for (const [t, e] of [
      [gone, del.find(d => d.path === taskPath("expired-own"))!],
      [goneDefault, del.find(d => d.path === taskPath("expired-default"))!],
    ] as [AgentTask, AuditEntry][]) {
      expect(e.body).toEqual({
        apiVersion: "v1",
        kind: "DeleteOptions",
        preconditions: { uid: t.metadata!.uid, resourceVersion: t.metadata!.resourceVersion },
      });
      expect(e.status).toBe(200);
      const ev = expiredEvents(kube).find(
        x => (x.body as { involvedObject: { uid: string } }).involvedObject.uid === t.metadata!.uid,
      )!;
      expect(ev.seq).toBeLessThan(e.seq);
      expect(ev.body).toMatchObject({
        type: "Normal",
        reason: "Expired",
        action: "Delete",
        involvedObject: { kind: "AgentTask", name: t.metadata!.name, namespace: NS },
      });
    }
    const own = expiredEvents(kube).find(
      x => (x.body as { involvedObject: { name: string } }).involvedObject.name === "expired-own",
    )!;
    expect((own.body as { message: string }).message).toBe(
      `deleting the task: it finished (Completed) at ${ago(6, now)} and its ttlSecondsAfterFinished of 5 s has passed`,
    );
    expect(JSON.stringify(expiredEvents(kube))).not.toContain(gone.spec!.poaToken);
    expect(await counter(rt)).toEqual({ ttl: 2 });
    const logged = lines
      .map(l => JSON.parse(l) as Record<string, unknown>)
      .filter(l => l.message === "deleted a finished task after its TTL");
    expect(logged.map(l => [l.task, l.ttlSeconds, l.phase]).sort()).toEqual([
      [`${NS}/expired-default`, 60, "Denied"],
      [`${NS}/expired-own`, 5, "Completed"],
    ]);
    // The phase gauge still counts what the listing saw.
    const gauge = Object.fromEntries((await rt.metrics.tasksByPhase.get()).values.map(v => [v.labels.phase, v.value]));
    expect(gauge.Completed).toBe(2);
  });

  test("GIVEN ATB_TTL_SECONDS_AFTER_FINISHED=0 THEN tasks without a TTL of their own are kept, those with one are not", async () => {
    const kube = new FakeKube();
    addTask(kube, "default", finished("Completed", ago(1e7, new Date())));
    addTask(kube, "own", finished("Completed", ago(10, new Date())), 5);
    const { started } = runtime(kube, { ATB_TTL_SECONDS_AFTER_FINISHED: "0" });
    await started();
    expect(kube.read(taskPath("default"))).toBeDefined();
    expect(kube.read(taskPath("own"))).toBeUndefined();
  });

  test("GIVEN the delete is forbidden THEN the sweep still succeeds, the failure is logged and counted, and the next sweep deletes it with no second Event", async () => {
    const kube = new FakeKube();
    addTask(kube, "x", finished("Completed", ago(10, new Date())), 5);
    kube.onRequest(r =>
      r.method === "DELETE"
        ? new KubeError(403, "Forbidden", 'agenttasks.atb.siemens.com "x" is forbidden')
        : undefined,
    );
    const { rt, lines, started } = runtime(kube);
    await started();
    expect(kube.read(taskPath("x"))).toBeDefined();
    expect((await rt.metrics.sweeps.get()).values).toEqual([
      expect.objectContaining({ labels: { result: "ok" }, value: 2 }),
    ]);
    expect(await errors(rt)).toEqual([["ttl", "forbidden", 1]]);
    expect(lines.join("")).toContain("could not delete a finished task after its TTL");

    kube.clearFaults();
    await rt.sweep();
    expect(kube.read(taskPath("x"))).toBeUndefined();
    expect(expiredEvents(kube)).toHaveLength(1);
    expect(deletes(kube)).toHaveLength(2);
    expect(await counter(rt)).toEqual({ ttl: 1 });
  });

  test("GIVEN a network error THEN it is counted as network and retried", async () => {
    const kube = new FakeKube();
    addTask(kube, "x", finished("Failed", ago(10, new Date())), 5);
    let fail = true;
    kube.onRequest(r =>
      r.method === "DELETE" && fail ? new KubeError(0, "NetworkError", "socket hang up") : undefined,
    );
    const { rt, started } = runtime(kube);
    await started();
    expect(await errors(rt)).toEqual([["ttl", "network", 1]]);
    fail = false;
    await rt.sweep();
    expect(kube.read(taskPath("x"))).toBeUndefined();
  });
});

describe("the preconditions (TtlReaper on a stale view)", () => {
  function reaper(kube: FakeKube) {
    const metrics = new OperatorMetrics();
    const lines: string[] = [];
    const log = createLogger("debug", "test", new Writable({ write: (c, _e, cb) => cb(void lines.push(String(c))) }));
    return { metrics, lines, reaper: new TtlReaper({ kube, status: createStatusWriter({ kube, log }), log, metrics }) };
  }

  test("GIVEN the task was recreated under the same name after the listing THEN the new one is not deleted (409)", async () => {
    const kube = new FakeKube();
    const old = expired(addTask(kube, "x", finished("Completed", ago(10, NOW)), 5), 86_400, NOW)!;
    kube.remove(taskPath("x"));
    const fresh = addTask(kube, "x", finished("Completed", ago(10, NOW)), 5);
    const { reaper: r, metrics, lines } = reaper(kube);
    await r.reap([old]);
    expect(kube.read<AgentTask>(taskPath("x"))?.metadata?.uid).toBe(fresh.metadata!.uid);
    expect(kube.audit.find(e => e.method === "DELETE")?.status).toBe(409);
    expect((await metrics.taskDeleteErrors.get()).values).toEqual([
      expect.objectContaining({ labels: { reason: "ttl", code: "conflict" }, value: 1 }),
    ]);
    expect(lines.join("")).toContain("Precondition failed: UID in precondition");
  });

  test("GIVEN the task changed after the listing THEN it is not deleted now (409), and is on the next look", async () => {
    const kube = new FakeKube();
    const seen = expired(addTask(kube, "x", finished("Completed", ago(10, NOW)), 5), 86_400, NOW)!;
    kube.mutate(taskPath("x"), o => (o.metadata.labels = { touched: "yes" }));
    const { reaper: r } = reaper(kube);
    await r.reap([seen]);
    expect(kube.read(taskPath("x"))).toBeDefined();
    const again = expired(kube.read<AgentTask>(taskPath("x"))!, 86_400, NOW)!;
    await r.reap([again]);
    expect(kube.read(taskPath("x"))).toBeUndefined();
    expect(expiredEvents(kube)).toHaveLength(1);
  });

  test("GIVEN the task is already gone THEN nothing is counted as an error", async () => {
    const kube = new FakeKube();
    const seen = expired(addTask(kube, "x", finished("Completed", ago(10, NOW)), 5), 86_400, NOW)!;
    kube.remove(taskPath("x"));
    const { reaper: r, metrics } = reaper(kube);
    await r.reap([seen]);
    expect((await metrics.taskDeleteErrors.get()).values).toEqual([]);
  });

  test(`GIVEN more expired tasks than ${MAX_TTL_DELETES_PER_SWEEP} THEN one reap deletes that many, oldest expiry first`, async () => {
    const kube = new FakeKube();
    const due = [];
    for (let i = 0; i < MAX_TTL_DELETES_PER_SWEEP + 20; i++)
      due.push(
        expired(
          addTask(kube, `t${String(i).padStart(3, "0")}`, finished("Completed", ago(1000 - i, NOW)), 5),
          86_400,
          NOW,
        )!,
      );
    const { reaper: r } = reaper(kube);
    await r.reap(due.reverse());
    const left = due.filter(d => kube.read(taskPath(d.name))).map(d => d.name);
    expect(left).toHaveLength(20);
    expect(left.every(n => Number(n.slice(1)) >= MAX_TTL_DELETES_PER_SWEEP)).toBe(true);
  });

  test("GIVEN a listing of many expired tasks THEN the sweep keeps the oldest expiries only, and the task's identity, not the whole task", () => {
    const kube = new FakeKube();
    const batch = new ExpiredBatch();
    const n = 10 * MAX_TTL_DELETES_PER_SWEEP + 7;
    // Newest first, so every trim has older ones to keep.
    for (let i = n - 1; i >= 0; i--)
      batch.add(
        expired(
          addTask(kube, `t${String(i).padStart(5, "0")}`, finished("Completed", ago(100_000 - i, NOW)), 5),
          86_400,
          NOW,
        )!,
      );
    const kept = batch.take();
    expect(batch.found).toBe(n);
    expect(kept.map(k => k.name)).toEqual(
      Array.from({ length: MAX_TTL_DELETES_PER_SWEEP }, (_, i) => `t${String(i).padStart(5, "0")}`),
    );
    expect(Object.keys(kept[0].task)).toEqual(["apiVersion", "kind", "metadata"]);
    expect(kept[0].task.metadata).toEqual({
      name: kept[0].name,
      namespace: NS,
      uid: kept[0].uid,
      resourceVersion: kept[0].resourceVersion,
    });
  });
});
