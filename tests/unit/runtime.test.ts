// The operator runtime on in-memory ports (tests/helpers/fake-kube.ts, fake-broker.ts): the
// start-up sweep (paged lists, the phase gauge, targets of started tasks re-taken before any
// work), Pepr's event callback (terminal tasks and echoes of our own writes cost nothing),
// readiness on the metrics port, and stop(). Real time and timers, kept short.
import { request } from "node:http";
import { Writable } from "node:stream";
import { LABEL_SHARD, OPEN_SELECTOR, TERMINAL_PHASES, type AgentTask } from "../../crds/agenttask";
import type { ActionRegistry } from "../../capabilities/lib/action";
import { parseConfig } from "../../capabilities/lib/config";
import { KubeError, resourcePath } from "../../capabilities/lib/kube";
import { createLogger } from "../../capabilities/lib/logger";
import { Pipeline } from "../../capabilities/lib/pipeline";
import { OperatorRuntime } from "../../capabilities/lib/runtime";
import { ScaleAction } from "../../capabilities/scale";
import { FakeBroker } from "../helpers/fake-broker";
import { startedStatus } from "../helpers/statuses";
import { FakeKube, withExecutors, type AuditEntry } from "../helpers/fake-kube";
import { requesterMetadata, token } from "./pipeline/harness";

const NS = "shop";
const TASKS = resourcePath("AgentTask");
const taskPath = (name: string) => resourcePath("AgentTask", NS, name);
const DEPLOY = resourcePath("Deployment", NS, "web");

interface Harness {
  rt: OperatorRuntime;
  kube: FakeKube;
  broker: FakeBroker;
  lines: string[];
}

const running: OperatorRuntime[] = [];
afterEach(async () => {
  jest.restoreAllMocks();
  await Promise.all(running.splice(0).map(rt => rt.stop()));
});

function harness(env: Record<string, string> = {}, kube = new FakeKube({ autoRollout: true })): Harness {
  const lines: string[] = [];
  const log = createLogger("info", "test", new Writable({ write: (c, _e, cb) => cb(void lines.push(String(c))) }));
  const config = parseConfig({
    LOG_LEVEL: "info",
    ATB_METRICS_PORT: "0",
    ATB_SWEEP_INTERVAL_SECONDS: "1",
    ATB_TASK_BACKOFF_MS: "10",
    ...env,
  });
  const broker = new FakeBroker();
  const rt = new OperatorRuntime(config, { scale: ScaleAction } as unknown as ActionRegistry, log, {
    kube: async () => kube,
    broker: () => broker,
  });
  running.push(rt);
  withExecutors(kube, ["shop", "other", "elsewhere"]);
  if (!kube.read(DEPLOY)) {
    kube.put(DEPLOY, { kind: "Deployment", metadata: {}, spec: { replicas: 1 } });
    kube.completeRollout(DEPLOY);
  }
  return { rt, kube, broker, lines };
}

/**
 * A task as admission leaves it: the requester record (plus `labels`; null drops one). A terminal
 * status gets the finishedAt the status writer sets with it, unless it names its own.
 */
function addTask(
  kube: FakeKube,
  name: string,
  status?: AgentTask["status"],
  replicas = 2,
  labels: Record<string, string | null> = {},
): AgentTask {
  const all: Record<string, string | null> = { ...labels };
  const finished = status?.phase && TERMINAL_PHASES.includes(status.phase) && !("finishedAt" in status);
  if (finished) status = { ...status, finishedAt: new Date().toISOString() };
  kube.put(taskPath(name), {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: {
      ...requesterMetadata(),
      labels: Object.fromEntries(Object.entries(all).filter((e): e is [string, string] => e[1] !== null)),
    },
    spec: {
      agentId: "spiffe://atb.example.com/agent/test",
      poaToken: token(Date.now() + 300_000),
      action: "scale",
      target: { kind: "Deployment", name: "web", namespace: NS },
      payload: { replicas },
    },
    ...(status ? { status: status as Record<string, unknown> } : {}),
  });
  return kube.read<AgentTask>(taskPath(name))!;
}

const phaseOf = (kube: FakeKube, name: string) => kube.read<AgentTask>(taskPath(name))?.status?.phase;

async function eventually(check: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise(r => setTimeout(r, 10));
  }
}

function http(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent: false }, res => {
      let body = "";
      res.on("data", c => (body += String(c)));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The open tasks' listing: no status.finishedAt (the terminal status write sets it). */
const OPEN = { fieldSelector: OPEN_SELECTOR };

const lists = (kube: FakeKube): AuditEntry[] => kube.audit.filter(e => e.method === "GET" && e.path === TASKS);
/** Passes of the pipeline over a task (it reads tasks from the watch and the sweep, so GETs no longer tell). */
function passes(): { of(name: string): number; restore(): void } {
  const spy = jest.spyOn(Pipeline.prototype, "reconcile");
  return {
    of: name => spy.mock.calls.filter(([key]) => key === `${NS}/${name}`).length,
    restore: () => spy.mockRestore(),
  };
}

const readsOf = (kube: FakeKube, name: string) =>
  kube.audit.filter(e => e.method === "GET" && e.path === taskPath(name)).length;

describe("start(): the first sweep", () => {
  test("GIVEN 7 open tasks and pages of 3 THEN three listing requests of the open tasks, joined by continue tokens", async () => {
    const kube = new FakeKube({ autoRollout: true });
    for (let i = 0; i < 7; i++) addTask(kube, `t${i}`, { phase: "Executing" });
    addTask(kube, "done", { phase: "Completed" });
    const { rt } = harness({ ATB_SWEEP_PAGE_SIZE: "3" }, kube);

    await rt.start();

    const pages = lists(kube);
    expect(pages.map(p => p.query)).toEqual([
      { ...OPEN, limit: "3" },
      { ...OPEN, limit: "3", continue: expect.any(String) },
      { ...OPEN, limit: "3", continue: expect.any(String) },
    ]);
  });

  test("GIVEN 10,000 finished tasks THEN the start-up sweep lists none of them; the next sweep lists them all in pages and counts them", async () => {
    const kube = new FakeKube({ autoRollout: true });
    for (let i = 0; i < 10_000; i++) addTask(kube, `t${String(i).padStart(5, "0")}`, { phase: "Completed" });
    addTask(kube, "open", undefined, 3);
    const { rt } = harness({ ATB_SWEEP_PAGE_SIZE: "500", ATB_SWEEP_FINISHED_EVERY: "3" }, kube);

    await rt.start();

    // One request: the one open task.
    expect(lists(kube).map(p => p.query)).toEqual([{ ...OPEN, limit: "500" }]);
    await eventually(() => phaseOf(kube, "open") === "Completed");
    const gauge = async () =>
      Object.fromEntries((await rt.metrics.tasksByPhase.get()).values.map(v => [String(v.labels.phase), v.value]));
    expect((await gauge()).Completed).toBe(0);

    const before = lists(kube).length;
    await rt.sweep(); // the first after start-up lists the finished tasks too
    const full = lists(kube).slice(before);
    expect(full).toHaveLength(21); // 10,001 tasks in pages of 500
    expect(full.every(e => e.query?.labelSelector === undefined && e.query?.fieldSelector === undefined)).toBe(true);
    expect((await gauge()).Completed).toBe(10_001);

    // The next two list the open tasks only, and keep the finished counts; the third lists them all again.
    for (const want of [1, 1, 21]) {
      const n = lists(kube).length;
      await rt.sweep();
      expect(lists(kube).length - n).toBe(want);
      expect((await gauge()).Completed).toBe(10_001);
    }
  });

  test("GIVEN an API server that cannot select tasks by status.finishedAt THEN the sweep lists every task and filters them itself, and says so once", async () => {
    const kube = new FakeKube({ autoRollout: true, phaseSelectable: false });
    addTask(kube, "done", { phase: "Completed" });
    addTask(kube, "open", undefined, 3);
    const { rt, lines } = harness({}, kube);

    await rt.start();
    await eventually(() => phaseOf(kube, "open") === "Completed");
    await rt.sweep();
    await rt.sweep();

    expect(readsOf(kube, "done")).toBe(0);
    expect(phaseOf(kube, "done")).toBe("Completed");
    const said = lines.filter(l => l.includes("cannot select AgentTasks by status.finishedAt"));
    expect(said).toHaveLength(1);
    expect(JSON.parse(said[0])).toMatchObject({ level: "warn", error: "field label not supported: status.finishedAt" });
    // After the refusal, no further attempt with the field selector.
    expect(lists(kube).filter(e => e.query?.fieldSelector)).toHaveLength(1);
  });

  test("GIVEN tasks in every phase THEN the gauge counts them (no status counts as Pending)", async () => {
    const kube = new FakeKube({ autoRollout: true });
    addTask(kube, "new");
    for (const [name, phase] of [
      ["c1", "Completed"],
      ["c2", "Completed"],
      ["d1", "Denied"],
      ["f1", "Failed"],
    ] as const)
      addTask(kube, name, { phase });
    const { rt } = harness({}, kube);

    await rt.start();
    await rt.sweep(); // the start-up sweep lists the open tasks only; the next one, every task

    const values = Object.fromEntries(
      (await rt.metrics.tasksByPhase.get()).values.map(v => [String(v.labels.phase), v.value]),
    );
    expect(values).toEqual({
      Pending: 1,
      Processing: 0,
      Executing: 0,
      AwaitingApproval: 0,
      Completed: 2,
      Denied: 1,
      Failed: 1,
      Planned: 0,
    });
    expect((await rt.metrics.sweeps.get()).values).toEqual([
      expect.objectContaining({ labels: { result: "ok" }, value: 2 }),
    ]);
  });

  test("GIVEN open tasks THEN they are driven to the end after the sweep; finished ones are not read again", async () => {
    const kube = new FakeKube({ autoRollout: true });
    addTask(kube, "open");
    addTask(kube, "done", { phase: "Completed" });
    const { rt, broker } = harness({}, kube);

    await rt.start();
    await eventually(() => phaseOf(kube, "open") === "Completed");

    expect(readsOf(kube, "done")).toBe(0);
    expect(broker.calls).toHaveLength(1);
  });

  test("GIVEN a task past Pending and a Pending task on the same target THEN the started one keeps the target until it finishes", async () => {
    const kube = new FakeKube({ autoRollout: true });
    // b sorts first in every listing and queue, yet must wait for a
    addTask(kube, "b-pending", { phase: "Pending" }, 5);
    addTask(kube, "z-started", startedStatus(new Date()), 3);
    const { rt } = harness({}, kube);

    await rt.start();
    await eventually(() => phaseOf(kube, "b-pending") === "Completed" && phaseOf(kube, "z-started") === "Completed");

    // b's first write after Pending (its decision) comes after a's end.
    const processing = kube.audit.findIndex(
      e =>
        e.path === `${taskPath("b-pending")}/status` &&
        (e.body as { status: { phase: string } }).status.phase !== "Pending",
    );
    const done = kube.audit.findIndex(
      e =>
        e.path === `${taskPath("z-started")}/status` &&
        (e.body as { status: { phase: string } }).status.phase === "Completed",
    );
    expect(done).toBeGreaterThan(-1);
    expect(processing).toBeGreaterThan(done);
    expect(kube.read(DEPLOY)!.spec!.replicas).toBe(5);
  });

  test("GIVEN the listing fails THEN start() still completes, the sweep is counted as an error and readiness says why", async () => {
    const kube = new FakeKube();
    const { rt } = harness({}, kube);
    kube.onRequest(r => (r.path === TASKS ? new KubeError(500, "InternalError", "etcd down") : undefined));

    await rt.start();

    expect((await rt.metrics.sweeps.get()).values).toEqual([
      expect.objectContaining({ labels: { result: "error" }, value: 1 }),
    ]);
    const ready = await http(rt.metricsPort()!, "/readyz");
    expect(ready).toEqual({ status: 503, body: "sweep failing: etcd down" });
  });

  test("GIVEN a CRD's storage still starting (429 storage is (re)initializing) THEN the sweep is tried again within seconds, not a sweep interval, and readiness recovers", async () => {
    const kube = new FakeKube();
    let refusals = 2;
    kube.onRequest(r =>
      r.path === TASKS && r.method === "GET" && refusals-- > 0
        ? new KubeError(429, "TooManyRequests", "storage is (re)initializing")
        : undefined,
    );
    const { rt, lines } = harness({ ATB_SWEEP_INTERVAL_SECONDS: "60" }, kube);
    const t0 = Date.now();
    await rt.start();
    expect((await http(rt.metricsPort()!, "/readyz")).body).toBe("sweep failing: storage is (re)initializing");
    const ok = async () => (await rt.metrics.sweeps.get()).values.find(v => v.labels.result === "ok")?.value ?? 0;
    for (const until = Date.now() + 5_000; (await ok()) === 0 && Date.now() < until; )
      await new Promise(r => setTimeout(r, 50));
    // Failed at start, again 1 s later, then fine 2 s after that: 3 s, not the 60 s interval.
    expect(await ok()).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await http(rt.metricsPort()!, "/readyz")).toEqual({ status: 200, body: "ok" });
    const retries = lines.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.message === "sweep failed");
    expect(retries.map(l => l.retryInMs)).toEqual([1_000, 2_000]);
  }, 10_000);

  test("GIVEN sweeps asked for while one runs THEN they run one after the other, and a timer's turn is skipped", async () => {
    const { rt } = harness({ ATB_SWEEP_INTERVAL_SECONDS: "60" });
    await rt.start();
    const inner = rt as unknown as { sweepOnce(): Promise<void>; tick(): void };
    const once = inner.sweepOnce.bind(rt);
    let active = 0;
    let peak = 0;
    let calls = 0;
    inner.sweepOnce = async () => {
      calls++;
      peak = Math.max(peak, ++active);
      try {
        await new Promise(r => setTimeout(r, 20));
        await once();
      } finally {
        active--;
      }
    };
    const asked = [rt.sweep(), rt.sweep(), rt.sweep()];
    inner.tick(); // the interval's turn while sweeps are under way
    await Promise.all(asked);
    expect({ calls, peak }).toEqual({ calls: 3, peak: 1 });
  });

  test("GIVEN WATCH_NAMESPACE THEN the sweep lists those namespaces, and the rest only for the out-of-scope check", async () => {
    const kube = new FakeKube();
    const { rt } = harness({ WATCH_NAMESPACE: "shop,other" }, kube);
    await rt.start();
    expect(kube.audit.filter(e => e.method === "GET").map(e => [e.path, e.query?.fieldSelector])).toEqual([
      [resourcePath("AgentTask", "shop"), OPEN_SELECTOR],
      [resourcePath("AgentTask", "other"), OPEN_SELECTOR],
      [TASKS, "metadata.namespace!=shop,metadata.namespace!=other"],
    ]);
  });
});

describe("tasks the operator never processes (Failed/OutOfScope)", () => {
  const ELSEWHERE = "elsewhere";
  const pathIn = (ns: string, name: string) => resourcePath("AgentTask", ns, name);
  const statusOf = (kube: FakeKube, ns: string, name: string) => kube.read<AgentTask>(pathIn(ns, name))?.status;

  function addTaskIn(kube: FakeKube, ns: string, name: string, status?: AgentTask["status"]): AgentTask {
    kube.put(pathIn(ns, name), {
      apiVersion: "atb.siemens.com/v1alpha1",
      kind: "AgentTask",
      metadata: requesterMetadata(),
      spec: {
        agentId: "spiffe://atb.example.com/agent/test",
        poaToken: token(Date.now() + 300_000),
        action: "scale",
        target: { kind: "Deployment", name: "web", namespace: ns },
        payload: { replicas: 2 },
      },
      ...(status ? { status: status as Record<string, unknown> } : {}),
    });
    return kube.read<AgentTask>(pathIn(ns, name))!;
  }

  /** A fake API server whose objects were all created an hour ago (older than any grace here). */
  const oldKube = () => new FakeKube({ now: () => new Date(Date.now() - 3_600_000) });
  const events = (kube: FakeKube, name: string) =>
    kube.audit
      .filter(e => e.method === "POST" && e.path.endsWith("/events") && e.status === 201)
      .map(e => e.body as { involvedObject: { name: string }; reason: string; type: string; message: string })
      .filter(b => b.involvedObject.name === name);

  test("GIVEN a scoped operator and an old task without status elsewhere THEN Failed/OutOfScope with an Event, a log line and the failure counted", async () => {
    const kube = oldKube();
    addTaskIn(kube, ELSEWHERE, "orphan");
    addTaskIn(kube, "kube-system", "sneaky");
    const { rt, lines } = harness({ WATCH_NAMESPACE: NS }, kube);

    await rt.start();
    await eventually(() => statusOf(kube, "kube-system", "sneaky")?.phase === "Failed");
    await eventually(() => statusOf(kube, ELSEWHERE, "orphan")?.phase === "Failed");

    const orphan = statusOf(kube, ELSEWHERE, "orphan")!;
    expect(orphan.conditions?.find(c => c.type === "Succeeded")).toMatchObject({
      status: "False",
      reason: "OutOfScope",
      message:
        'metadata.namespace: "elsewhere" is not served by the ATB operator (WATCH_NAMESPACE=shop): it never processes AgentTasks in it; no operator picked the task up within 60s',
    });
    expect(statusOf(kube, "kube-system", "sneaky")!.conditions?.find(c => c.type === "Succeeded")?.message).toMatch(
      /^metadata\.namespace: "kube-system" is protected \(ATB_PROTECTED_NAMESPACES=kube-system,kube-public,kube-node-lease,pepr-system\)/,
    );
    expect(events(kube, "orphan")).toEqual([expect.objectContaining({ reason: "OutOfScope", type: "Warning" })]);
    expect(lines.join("")).toContain('"reason":"OutOfScope"');
    const failed = (await rt.metrics.tasksFailed.get()).values.find(v => v.labels.reason === "OutOfScope");
    expect(failed?.value).toBe(2);
    // Not the operator's tasks: the phase gauge counts its own namespace only.
    const gauge = Object.fromEntries((await rt.metrics.tasksByPhase.get()).values.map(v => [v.labels.phase, v.value]));
    expect(gauge.Failed).toBe(0);
  });

  test("GIVEN tasks elsewhere that another operator serves THEN never touched, however old", async () => {
    const kube = oldKube();
    addTaskIn(kube, ELSEWHERE, "served", { phase: "Pending" });
    addTaskIn(kube, ELSEWHERE, "running", startedStatus(new Date()));
    const { rt } = harness({ WATCH_NAMESPACE: NS }, kube);
    await rt.start();
    await rt.sweep();
    await rt.idle();

    expect(statusOf(kube, ELSEWHERE, "served")).toEqual({ phase: "Pending" });
    expect(statusOf(kube, ELSEWHERE, "running")?.phase).toBe("Executing");
    expect(kube.audit.filter(e => e.method !== "GET")).toEqual([]);
  });

  test("GIVEN a task elsewhere without status but younger than the grace THEN not touched yet", async () => {
    const kube = new FakeKube();
    addTaskIn(kube, ELSEWHERE, "new");
    const { rt } = harness({ WATCH_NAMESPACE: NS }, kube);
    await rt.start();
    await rt.sweep();
    await rt.idle();

    expect(statusOf(kube, ELSEWHERE, "new")).toBeUndefined();
    expect(kube.audit.filter(e => e.method !== "GET")).toEqual([]);
  });

  test("GIVEN another operator writes Pending between the listing and our write THEN its write wins and the task is left alone", async () => {
    const kube = oldKube();
    addTaskIn(kube, ELSEWHERE, "contested");
    let raced = false;
    kube.onRequest(r => {
      if (!raced && r.method === "PATCH" && r.path === `${pathIn(ELSEWHERE, "contested")}/status`) {
        raced = true; // the serving operator's Pending lands first: our write is conditioned on the old resourceVersion
        kube.mutate(pathIn(ELSEWHERE, "contested"), o => (o.status = { phase: "Pending", reason: "Queued" }));
      }
      return undefined;
    });
    const { rt } = harness({ WATCH_NAMESPACE: NS }, kube);
    await rt.start();
    await eventually(() => raced);
    await rt.idle();
    await new Promise(r => setTimeout(r, 50));
    await rt.idle();

    expect(statusOf(kube, ELSEWHERE, "contested")).toEqual({ phase: "Pending", reason: "Queued" });
    expect(events(kube, "contested")).toEqual([]);
  });

  test("GIVEN ATB_OUT_OF_SCOPE_NAMESPACES THEN only those namespaces are listed and marked", async () => {
    const kube = oldKube();
    addTaskIn(kube, ELSEWHERE, "orphan");
    addTaskIn(kube, "other-shard", "not-looked-at");
    const { rt } = harness({ WATCH_NAMESPACE: NS, ATB_OUT_OF_SCOPE_NAMESPACES: ELSEWHERE }, kube);
    await rt.start();
    await eventually(() => statusOf(kube, ELSEWHERE, "orphan")?.phase === "Failed");
    await rt.idle();

    expect(statusOf(kube, "other-shard", "not-looked-at")).toBeUndefined();
    expect(lists(kube)).toEqual([]);
    expect(kube.audit.filter(e => e.method === "GET" && e.path === resourcePath("AgentTask", ELSEWHERE))).toHaveLength(
      1,
    );
  });

  test("GIVEN sweeps more often than half the grace THEN the out-of-scope listing runs at most every half grace", async () => {
    const kube = oldKube();
    const { rt } = harness({ WATCH_NAMESPACE: NS, ATB_OUT_OF_SCOPE_GRACE_SECONDS: "60" }, kube);
    const outOfScopeLists = () => lists(kube).filter(e => e.query?.fieldSelector).length;
    await rt.start();
    await rt.sweep();
    expect(outOfScopeLists()).toBe(1);
    const real = Date.now.bind(Date);
    jest.spyOn(Date, "now").mockImplementation(() => real() + 30_000);
    await rt.sweep();
    expect(outOfScopeLists()).toBe(2);
  });

  test("GIVEN ATB_OUT_OF_SCOPE_GRACE_SECONDS=0 THEN no out-of-scope listing and nothing marked", async () => {
    const kube = oldKube();
    addTaskIn(kube, ELSEWHERE, "orphan");
    const { rt } = harness({ WATCH_NAMESPACE: NS, ATB_OUT_OF_SCOPE_GRACE_SECONDS: "0" }, kube);
    await rt.start();
    await rt.idle();
    expect(kube.audit.map(e => e.path)).toEqual([resourcePath("AgentTask", NS)]);
    expect(statusOf(kube, ELSEWHERE, "orphan")).toBeUndefined();
  });

  test("GIVEN an operator serving all namespaces THEN a task in a protected namespace is Failed/OutOfScope at once, whatever its phase", async () => {
    const kube = new FakeKube(); // created just now: no grace applies to namespaces the operator watches
    addTaskIn(kube, "kube-system", "fresh");
    addTaskIn(kube, "pepr-system", "pending", { phase: "Pending" });
    const { rt } = harness({}, kube);
    await rt.start();
    await eventually(
      () =>
        statusOf(kube, "kube-system", "fresh")?.phase === "Failed" &&
        statusOf(kube, "pepr-system", "pending")?.phase === "Failed",
    );
    expect(statusOf(kube, "pepr-system", "pending")?.conditions?.[0]).toMatchObject({ reason: "OutOfScope" });
    expect(lists(kube)).toHaveLength(1); // its own listing holds them; no out-of-scope one
  });

  test("GIVEN a scoped operator THEN watch events of tasks in other namespaces cost nothing", async () => {
    const kube = oldKube();
    const { rt } = harness({ WATCH_NAMESPACE: NS, ATB_OUT_OF_SCOPE_GRACE_SECONDS: "0" }, kube);
    await rt.start();
    const before = kube.audit.length;
    rt.onEvent(addTaskIn(kube, ELSEWHERE, "foreign"));
    await rt.idle();
    expect(kube.audit.length).toBe(before);
  });
});

describe("onEvent", () => {
  test("GIVEN a task woken by its rollout's watch event before its own recheck THEN no timer is left once it is finished (it would read the task once more)", async () => {
    const kube = new FakeKube(); // the rollout completes when the test says so
    const { rt } = harness({ ATB_SWEEP_INTERVAL_SECONDS: "60" }, kube);
    await rt.start();
    rt.onEvent(addTask(kube, "t", undefined, 3));
    await eventually(() => phaseOf(kube, "t") === "Executing");
    await rt.idle(); // the pass waits for the rollout: a recheck timer is set
    const queue = (rt as unknown as { queue: { tracks(key: string): boolean } }).queue;
    expect(queue.tracks(`${NS}/t`)).toBe(true);
    kube.completeRollout(DEPLOY); // the watch wakes the task before its timer
    await eventually(() => phaseOf(kube, "t") === "Completed");
    await rt.idle();
    expect(queue.tracks(`${NS}/t`)).toBe(false);
    expect(readsOf(kube, "t")).toBe(0);
  });

  test("GIVEN a copy from before the task's end delivered after it (a late echo of our own write) THEN it costs nothing", async () => {
    const { rt, kube } = harness({ ATB_SWEEP_INTERVAL_SECONDS: "60" });
    await rt.start();
    const created = addTask(kube, "t");
    rt.onEvent(created);
    await eventually(() => phaseOf(kube, "t") === "Completed");
    await rt.idle();
    const done = kube.read<AgentTask>(taskPath("t"))!;
    // The echo of the decision's write: Executing, at a resourceVersion before the end's.
    const late = structuredClone(done);
    late.status = { ...late.status, phase: "Executing" };
    late.metadata!.resourceVersion = String(Number(created.metadata!.resourceVersion) + 1);
    const p = passes();
    const before = kube.audit.length;

    rt.onEvent(late);
    await rt.idle();
    await new Promise(r => setTimeout(r, 50));
    await rt.idle();

    expect(p.of("t")).toBe(0);
    expect(kube.audit.slice(before)).toEqual([]);
    // A copy of another task under the same name (a new uid) is not mistaken for it.
    const other = structuredClone(late);
    other.metadata!.uid = "another-uid";
    expect(rt["pipeline"]!.predatesEnd(other)).toBe(false);
    // Nor a newer copy of the same task.
    const newer = structuredClone(done);
    newer.metadata!.resourceVersion = String(Number(done.metadata!.resourceVersion) + 1);
    expect(rt["pipeline"]!.predatesEnd(newer)).toBe(false);
    p.restore();
  });

  test("GIVEN a terminal task THEN it is not even read", async () => {
    const { rt, kube } = harness();
    await rt.start();
    const t = addTask(kube, "done", { phase: "Denied" });
    rt.onEvent(t);
    await rt.idle();
    expect(readsOf(kube, "done")).toBe(0);
  });

  test("GIVEN an open task THEN it is run; GIVEN the echo of our own last write THEN it is not", async () => {
    const kube = new FakeKube(); // no rollout controller: the holder stays applied, waiting
    // Pending stored at once (a scoped operator claims waiting tasks), so the waiter's echo exists.
    const { rt } = harness({ ATB_PENDING_CLAIM_SECONDS: "0", WATCH_NAMESPACE: NS }, kube);
    const runs = jest.spyOn(Pipeline.prototype, "reconcile");
    await rt.start();
    rt.onEvent(addTask(kube, "holder"));
    await eventually(() => phaseOf(kube, "holder") === "Executing"); // it holds the target
    rt.onEvent(addTask(kube, "t", undefined, 4)); // waits in Pending for the target, a minute at a time
    await eventually(() => phaseOf(kube, "t") === "Pending");
    await rt.idle();
    const runsOfT = () => runs.mock.calls.filter(([key]) => key.endsWith("/t")).length;
    const before = runsOfT();

    rt.onEvent(kube.read<AgentTask>(taskPath("t"))!); // the echo of our Pending write
    await rt.idle();
    await new Promise(r => setTimeout(r, 50));
    expect(runsOfT()).toBe(before);
    expect(readsOf(kube, "t")).toBe(0); // never read: the watch's copy and our own writes suffice

    kube.mutate(taskPath("t"), o => (o.metadata.labels = { touched: "yes" }));
    rt.onEvent(kube.read<AgentTask>(taskPath("t"))!);
    await eventually(() => runsOfT() > before);
    runs.mockRestore();
  });

  test("GIVEN events before the first sweep THEN they wait for it, then run", async () => {
    const kube = new FakeKube({ autoRollout: true });
    const { rt } = harness({}, kube);
    const t = addTask(kube, "early");
    let swept = false;
    let readEarly = false;
    kube.onRequest(r => {
      if (r.path === TASKS) swept = true;
      else if (r.path === taskPath("early") && !swept) readEarly = true;
      return undefined;
    });
    rt.onEvent(t);
    await rt.start();
    await eventually(() => phaseOf(kube, "early") === "Completed");
    expect(readEarly).toBe(false);
  });
});

describe("the sweep and target locks", () => {
  test("GIVEN tasks the watch delivers while the sweep lists THEN the sweep keeps their target lock and their wait", async () => {
    // The bench found a burst's p99 at one minute: a sweep that began before two tasks were
    // created released the first one's target and forgot the second one's wait, which then
    // started only at its one-minute recheck (and the target was free for a third task).
    const { rt, kube } = harness({ ATB_SWEEP_INTERVAL_SECONDS: "3600" });
    await rt.start();
    const internals = rt as unknown as { pipeline: Pipeline; watched: Map<string, number> };
    const locks = internals.pipeline.locks;
    const target = "apps/Deployment/shop/elsewhere";
    kube.onRequest(r => {
      if (r.method !== "GET" || r.path !== TASKS) return undefined;
      // Created after the listing's snapshot, delivered by the watch (onEvent's bookkeeping) and
      // in the pipeline before the listing is handled: one holds the target, one waits for it.
      for (const key of [`${NS}/late-holder`, `${NS}/late-waiter`]) internals.watched.set(key, Date.now());
      expect(locks.acquire(target, `${NS}/late-holder`)).toBe(true);
      expect(locks.acquire(target, `${NS}/late-waiter`)).toBe(false);
      return undefined;
    });
    await rt.sweep();

    expect(locks.holder(target)).toBe(`${NS}/late-holder`);
    locks.release(`${NS}/late-holder`);
    expect(locks.holder(target)).toBe(`${NS}/late-waiter`); // handed over (and woken), not lost
  });

  test("GIVEN a task the watch delivered before the sweep began that the listing no longer holds THEN its lock is released", async () => {
    const { rt } = harness({ ATB_SWEEP_INTERVAL_SECONDS: "3600" });
    await rt.start();
    const internals = rt as unknown as { pipeline: Pipeline; watched: Map<string, number> };
    const target = "apps/Deployment/shop/elsewhere";
    internals.watched.set(`${NS}/gone`, Date.now() - 1000); // deleted while open: the watch passes no deletions on
    internals.pipeline.locks.acquire(target, `${NS}/gone`);
    await rt.sweep();
    expect(internals.pipeline.locks.holder(target)).toBeUndefined();
  });
});

describe("readiness and liveness", () => {
  test("GIVEN a started runtime THEN /healthz and /readyz answer ok, /metrics has the operator's metrics", async () => {
    const { rt } = harness();
    await rt.start();
    const port = rt.metricsPort()!;
    expect(port).toBeGreaterThan(0);
    expect(await http(port, "/healthz")).toEqual({ status: 200, body: "ok" });
    expect(await http(port, "/readyz")).toEqual({ status: 200, body: "ok" });
    expect((await http(port, "/metrics")).body).toContain('atb_operator_tasks{phase="Pending"}');
  });

  test("GIVEN no successful sweep for three intervals THEN not ready", async () => {
    const { rt, kube } = harness();
    await rt.start();
    kube.onRequest(r => (r.path === TASKS ? new KubeError(0, "NetworkError", "connection refused") : undefined));
    await rt.sweep();
    const real = Date.now.bind(Date);
    jest.spyOn(Date, "now").mockImplementation(() => real() + 3_100);
    expect(await http(rt.metricsPort()!, "/readyz")).toEqual({
      status: 503,
      body: "sweep failing: connection refused",
    });
  });

  test("GIVEN an open task the watch never delivered, once the grace is over THEN not ready until it is delivered", async () => {
    const kube = new FakeKube({ now: () => new Date(Date.now() - 3_600_000) }); // created an hour ago
    const { rt } = harness({ ATB_TASK_DEADLINE_SECONDS: "86400" }, kube);
    addTask(kube, "unseen", startedStatus(new Date(), { applied: true }));
    kube.mutate(DEPLOY, o => (o.spec!.replicas = 2)); // never rolled out: the task stays open
    await rt.start();
    const real = Date.now.bind(Date);
    jest.spyOn(Date, "now").mockImplementation(() => real() + 12_500); // two sweeps + 10 s after start
    await rt.sweep();
    expect(await http(rt.metricsPort()!, "/readyz")).toEqual({
      status: 503,
      body: "watch not delivering: 1 open tasks seen only by the sweep",
    });

    rt.onEvent(kube.read<AgentTask>(taskPath("unseen"))!);
    await rt.sweep();
    expect(await http(rt.metricsPort()!, "/readyz")).toEqual({ status: 200, body: "ok" });
  });

  test("GIVEN an unknown path THEN 404", async () => {
    const { rt } = harness();
    await rt.start();
    expect((await http(rt.metricsPort()!, "/nope")).status).toBe(404);
  });
});

describe("stop()", () => {
  test("GIVEN a started runtime WHEN stopped THEN the port is closed, the broker and kube ports closed, events ignored", async () => {
    const { rt, kube, broker } = harness();
    await rt.start();
    const port = rt.metricsPort()!;
    await rt.stop();
    running.splice(running.indexOf(rt), 1);
    expect(broker.closed).toBe(true);
    expect(kube.closed).toBe(true);
    await expect(http(port, "/healthz")).rejects.toThrow();
    const before = kube.audit.length;
    rt.onEvent(addTask(kube, "late"));
    await rt.idle();
    expect(kube.audit.length).toBe(before);
  });

  test("GIVEN a runtime never started WHEN stopped THEN nothing to close, no error", async () => {
    const { rt, broker } = harness();
    await expect(rt.stop()).resolves.toBeUndefined();
    expect(broker.closed).toBe(false);
    await expect(rt.idle()).resolves.toBeUndefined();
  });

  test("GIVEN ATB_INSECURE THEN start() warns", async () => {
    const { rt, lines } = harness({ ATB_INSECURE: "true" });
    await rt.start();
    expect(lines.join("")).toContain("ATB_INSECURE=true");
  });
});

describe("onApproval(): an AgentTaskApproval wakes the task it names", () => {
  const waiting = (): AgentTask["status"] => ({
    phase: "AwaitingApproval",
    startedAt: new Date().toISOString(),
    approvals: { required: { count: 1 }, counted: [], ignored: [], seen: [], sentence: "MEDIUM: 1 approver" },
  });
  const approval = (ns: string, task: string) => ({
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTaskApproval",
    metadata: { name: `a-${task}`, namespace: ns },
    spec: { taskRef: { name: task }, attestation: "h.p.s" },
  });

  test("GIVEN a waiting task and no sweep for a minute WHEN an approval names it THEN it is decided with the attestation at once", async () => {
    const kube = new FakeKube({ autoRollout: true });
    addTask(kube, "w", waiting());
    const { rt, broker } = harness({ ATB_SWEEP_INTERVAL_SECONDS: "60" }, kube);
    await rt.start();
    await rt.idle();
    expect(broker.calls).toHaveLength(0);
    const a = approval(NS, "w");
    kube.put(resourcePath("AgentTaskApproval", NS, a.metadata.name), a);
    rt.onApproval(kube.read(resourcePath("AgentTaskApproval", NS, a.metadata.name))!);
    await eventually(() => phaseOf(kube, "w") === "Completed");
    expect(broker.calls.map(c => c.request.attestations)).toEqual([["h.p.s"]]);
  });

  test("GIVEN an approval outside WATCH_NAMESPACE or without a task name THEN nothing is read", async () => {
    const kube = new FakeKube({ autoRollout: true });
    const { rt } = harness({ ATB_SWEEP_INTERVAL_SECONDS: "60", WATCH_NAMESPACE: NS }, kube);
    await rt.start();
    const before = kube.audit.length;
    rt.onApproval(approval("other", "w"));
    rt.onApproval({ metadata: { namespace: NS }, spec: { taskRef: { name: "" }, attestation: "x" } });
    await rt.idle();
    expect(kube.audit.slice(before).filter(e => e.path.includes("/agenttasks/"))).toEqual([]);
  });
});

describe("the watch holds open tasks only", () => {
  test("GIVEN a task driven to Completed THEN its terminal status write sets finishedAt (which takes it out of the watch) and nothing but its Event follows", async () => {
    const { rt, kube } = harness();
    await rt.start();
    rt.onEvent(addTask(kube, "t"));
    await eventually(() => phaseOf(kube, "t") === "Completed");
    await rt.idle();
    const done = kube.read<AgentTask>(taskPath("t"))!;
    expect(Date.parse(String(done.status?.finishedAt))).toBeGreaterThan(0);
    const terminal = kube.audit.findIndex(
      e =>
        e.path === `${taskPath("t")}/status` && (e.body as { status: { phase?: string } }).status.phase === "Completed",
    );
    // After it: the Event, and no request on the task (no label to remove, no read).
    const after = kube.audit
      .slice(terminal + 1)
      .filter(e => e.path.includes("agenttasks") || e.path.endsWith("events"));
    expect(after.map(e => [e.method, e.path.split("/").at(-1)])).toEqual([["POST", "events"]]);
    expect(kube.audit.filter(e => e.method === "PATCH" && e.path === taskPath("t"))).toEqual([]);
  });

  test("GIVEN an open task whose status has a finishedAt (written by hand) THEN the full listing drives it and it never counts as missed by the watch", async () => {
    const kube = new FakeKube({ now: () => new Date(Date.now() - 3_600_000) });
    const { rt } = harness({ ATB_TASK_DEADLINE_SECONDS: "86400" }, kube);
    const status = { ...startedStatus(new Date(), { applied: true }), finishedAt: new Date().toISOString() };
    addTask(kube, "older", status as AgentTask["status"]);
    kube.mutate(DEPLOY, o => (o.spec!.replicas = 2)); // never rolled out: the task stays open
    const p = passes();
    await rt.start();
    const real = Date.now.bind(Date);
    jest.spyOn(Date, "now").mockImplementation(() => real() + 12_500);
    await rt.sweep(); // the first after start-up lists every task
    expect(await http(rt.metricsPort()!, "/readyz")).toEqual({ status: 200, body: "ok" });
    expect(p.of("older")).toBeGreaterThan(0);
    p.restore();
  });

  test("GIVEN a watched open task deleted while open THEN the sweep forgets it (its key is not kept forever)", async () => {
    const kube = new FakeKube(); // no rollout: the task stays open, applied
    const { rt } = harness(
      { ATB_SWEEP_INTERVAL_SECONDS: "60", ATB_PENDING_CLAIM_SECONDS: "0", WATCH_NAMESPACE: NS },
      kube,
    );
    await rt.start();
    rt.onEvent(addTask(kube, "gone"));
    await eventually(() => phaseOf(kube, "gone") === "Executing"); // it holds the target
    rt.onEvent(addTask(kube, "kept")); // waits in Pending for the target
    await eventually(() => phaseOf(kube, "kept") === "Pending");
    const watched = (rt as unknown as { watched: Map<string, number> }).watched;
    expect([...watched.keys()].sort()).toEqual([`${NS}/gone`, `${NS}/kept`]);
    kube.remove(taskPath("gone"));
    await rt.sweep();
    expect([...watched.keys()]).toEqual([`${NS}/kept`]);
  });

  test("GIVEN watch events THEN the objects Pepr's cache holds lose managedFields and kubectl's last-applied copy, and are counted", async () => {
    const { rt, kube } = harness();
    await rt.start();
    const t = addTask(kube, "t", { phase: "Completed" });
    t.metadata!.managedFields = [{ manager: "kubectl", operation: "Update" }];
    t.metadata!.annotations = { ...t.metadata!.annotations, "kubectl.kubernetes.io/last-applied-configuration": "{}" };
    const requester = t.metadata!.annotations["atb.siemens.com/requester"];
    rt.onEvent(t);
    expect(t.metadata!.managedFields).toBeUndefined();
    expect(t.metadata!.annotations).toEqual({ "atb.siemens.com/requester": requester });
    const a = {
      metadata: { namespace: NS, managedFields: [{}] },
      spec: { taskRef: { name: "x" }, attestation: "h.p.s" },
    };
    rt.onApproval(a as never);
    expect(a.metadata.managedFields).toBeUndefined();
    const events = Object.fromEntries(
      (await rt.metrics.watchEvents.get()).values.map(v => [String(v.labels.kind), v.value]),
    );
    expect(events).toEqual({ AgentTask: 1, AgentTaskApproval: 1 });
  });
});

describe("shards (ATB_SHARDS, ATB_SHARD)", () => {
  const shardOfTask = (kube: FakeKube, name: string, shard: string | null) =>
    addTask(kube, name, undefined, 2, { [LABEL_SHARD]: shard });

  test("GIVEN shard 1 of 2 THEN its sweep lists and drives only tasks labelled 1; the others are never read", async () => {
    const kube = new FakeKube({ autoRollout: true });
    shardOfTask(kube, "mine", "1");
    shardOfTask(kube, "theirs", "0");
    shardOfTask(kube, "unlabelled", null);
    const { rt } = harness({ ATB_SHARDS: "2", ATB_SHARD: "1", ATB_SWEEP_INTERVAL_SECONDS: "60" }, kube);
    await rt.start();
    await eventually(() => phaseOf(kube, "mine") === "Completed");
    await rt.idle();
    expect(lists(kube).map(e => [e.query?.labelSelector, e.query?.fieldSelector])).toEqual([
      [`${LABEL_SHARD}=1`, OPEN_SELECTOR],
    ]);
    await rt.sweep(); // with the finished tasks
    expect(lists(kube).at(-1)?.query).toMatchObject({ labelSelector: `${LABEL_SHARD}=1` });
    expect(lists(kube).at(-1)?.query?.fieldSelector).toBeUndefined();
    expect(readsOf(kube, "theirs") + readsOf(kube, "unlabelled")).toBe(0);
    expect(phaseOf(kube, "theirs")).toBeUndefined();
  });

  test("GIVEN shard 0 of 2 THEN it also owns the tasks without a valid shard label (driven by its sweep, not missed by its watch)", async () => {
    const kube = new FakeKube({ autoRollout: true });
    shardOfTask(kube, "mine", "0");
    shardOfTask(kube, "theirs", "1");
    shardOfTask(kube, "unlabelled", null);
    addTask(kube, "stale-label", undefined, 2, { [LABEL_SHARD]: "7" });
    const { rt } = harness({ ATB_SHARDS: "2", ATB_SHARD: "0", ATB_SWEEP_INTERVAL_SECONDS: "60" }, kube);
    await rt.start();
    await eventually(() => ["mine", "unlabelled", "stale-label"].every(n => phaseOf(kube, n) === "Completed"));
    expect(lists(kube).map(e => [e.query?.labelSelector, e.query?.fieldSelector])).toEqual([
      [`${LABEL_SHARD}=0`, OPEN_SELECTOR],
      [`${LABEL_SHARD} notin (0,1)`, OPEN_SELECTOR],
    ]);
    const before = lists(kube).length;
    await rt.sweep(); // with the finished tasks
    expect(
      lists(kube)
        .slice(before)
        .map(e => e.query?.labelSelector),
    ).toEqual([`${LABEL_SHARD}=0`, `${LABEL_SHARD} notin (0,1)`]);
    expect(readsOf(kube, "theirs")).toBe(0);
  });

  test("GIVEN a watch event of a task labelled for another shard THEN it costs nothing", async () => {
    const { rt, kube } = harness({ ATB_SHARDS: "2", ATB_SHARD: "1" });
    await rt.start();
    const before = kube.audit.length;
    rt.onEvent(shardOfTask(kube, "theirs", "0"));
    await rt.idle();
    expect(kube.audit.length).toBe(before);
  });

  test("GIVEN approvals THEN a shard takes those of its own tasks (watched or swept) and leaves the others to their shard", async () => {
    const waiting = { phase: "AwaitingApproval", startedAt: new Date().toISOString() } as AgentTask["status"];
    const kube = new FakeKube({ autoRollout: true });
    addTask(kube, "swept", waiting, 2, { [LABEL_SHARD]: "1" });
    addTask(kube, "theirs", waiting, 2, { [LABEL_SHARD]: "0" });
    const { rt } = harness({ ATB_SHARDS: "2", ATB_SHARD: "1", ATB_SWEEP_INTERVAL_SECONDS: "60" }, kube);
    await rt.start();
    await rt.idle();
    const approval = (task: string) => ({
      metadata: { namespace: NS },
      spec: { taskRef: { name: task }, attestation: "h.p.s" },
    });
    const p = passes();
    rt.onApproval(approval("theirs") as never);
    rt.onApproval(approval("swept") as never);
    await rt.idle();
    expect(p.of("theirs")).toBe(0);
    expect(p.of("swept")).toBeGreaterThan(0);
    // One its watch delivered after the sweep.
    const later = addTask(kube, "watched", waiting, 2, { [LABEL_SHARD]: "1" });
    rt.onEvent(later);
    await rt.idle();
    const before = p.of("watched");
    rt.onApproval(approval("watched") as never);
    await rt.idle();
    expect(p.of("watched")).toBeGreaterThan(before);
    p.restore();
  });

  test("GIVEN a scoped shard THEN its out-of-scope listing is of its own shard too", async () => {
    const kube = new FakeKube();
    const { rt } = harness({ WATCH_NAMESPACE: NS, ATB_SHARDS: "3", ATB_SHARD: "2" }, kube);
    await rt.start();
    expect(kube.audit.filter(e => e.method === "GET").map(e => [e.path, e.query?.labelSelector])).toEqual([
      [resourcePath("AgentTask", NS), `${LABEL_SHARD}=2`],
      [TASKS, `${LABEL_SHARD}=2`],
    ]);
  });

  test("GIVEN a shard THEN its start-up line names it", async () => {
    const { rt, lines } = harness({ ATB_SHARDS: "4", ATB_SHARD: "3" });
    await rt.start();
    expect(JSON.parse(lines.find(l => l.includes("operator runtime started"))!)).toMatchObject({
      shard: "shard 3/4",
      reconcileStrategy: "kind",
    });
  });
});
