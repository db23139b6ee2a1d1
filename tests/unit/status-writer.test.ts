// The status writer on the in-memory API server: one status PATCH per transition under the
// resourceVersion the pipeline decided from, a stale view surfacing as 409, then one Event on the
// task (best-effort: a failed Event is counted and logged, never fails the transition), and the
// bounds on what it writes.
import { Writable } from "node:stream";
import type { AgentTask } from "../../crds/agenttask";
import { KubeError, resourcePath } from "../../capabilities/lib/kube";
import { createLogger } from "../../capabilities/lib/logger";
import { createStatusWriter } from "../../capabilities/lib/status/writer";
import { nextStatus, type Transition } from "../../capabilities/lib/status/conditions";
import { FakeKube, type AuditEntry } from "../helpers/fake-kube";

const NS = "shop";
const PATH = resourcePath("AgentTask", NS, "t");
const AT = new Date("2026-05-01T10:00:05.000Z");

function setup(o: { onEventError?: () => void; now?: () => Date } = {}) {
  const lines: string[] = [];
  const log = createLogger("warn", "test", new Writable({ write: (c, _e, cb) => cb(void lines.push(String(c))) }));
  const kube = new FakeKube({ now: () => AT });
  kube.put(PATH, {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: {},
    spec: { action: "scale", target: { kind: "Deployment", name: "web", namespace: NS } },
  });
  const writer = createStatusWriter({ kube, log, now: o.now ?? (() => AT), onEventError: o.onEventError });
  return { kube, writer, lines, read: () => kube.read<AgentTask>(PATH)! };
}

const pending: Transition = { phase: "Pending", reason: "Queued", message: "Task received; waiting for a worker" };
const processing: Transition = {
  phase: "Processing",
  reason: "Authorizing",
  message: "Authorizing with ATB",
  conditions: [{ type: "Authorized", status: "Unknown", reason: "Authorizing", message: "Asking the ATB broker" }],
};
const failed: Transition = {
  phase: "Failed",
  reason: "TargetNotFound",
  message: "Deployment shop/web does not exist",
  conditions: [{ type: "Succeeded", status: "False", reason: "TargetNotFound", message: "gone" }],
};

const completed: Transition = {
  phase: "Completed",
  reason: "Completed",
  message: "Deployment web has 3 ready replicas",
  conditions: [{ type: "Succeeded", status: "True", reason: "Completed", message: "done" }],
};
const awaiting: Transition = { phase: "AwaitingApproval", reason: "ApprovalRequired", message: "needs approvals" };

const statusPatches = (kube: FakeKube): AuditEntry[] => kube.audit.filter(e => e.path === `${PATH}/status`);
const events = (kube: FakeKube): AuditEntry[] => kube.audit.filter(e => e.method === "POST");

describe("one status PATCH per transition", () => {
  test("GIVEN a transition THEN one merge PATCH of /status carrying the task's resourceVersion, and the stored task back", async () => {
    const { kube, writer, read } = setup();
    const task = read();

    const updated = await writer.transition(task, pending);

    const [patch] = statusPatches(kube);
    expect(statusPatches(kube)).toHaveLength(1);
    expect(patch).toMatchObject({ method: "PATCH", patchType: "merge", status: 200, stored: true });
    expect((patch.body as { metadata: unknown }).metadata).toEqual({ resourceVersion: task.metadata!.resourceVersion });
    expect(updated).toEqual(read());
    expect(updated.status).toMatchObject({
      phase: "Pending",
      message: pending.message,
      attempts: 0,
      observedGeneration: 1,
    });
    expect(updated.spec).toEqual(task.spec);
  });

  test("GIVEN two transitions in a row from the returned task THEN both apply (each under the latest resourceVersion)", async () => {
    const { writer, read } = setup();
    const after = await writer.transition(await writer.transition(read(), pending), processing);
    expect(after.status).toMatchObject({ phase: "Processing", startedAt: AT.toISOString() });
    expect(after.status!.conditions).toEqual([
      expect.objectContaining({ type: "Authorized", status: "Unknown", lastTransitionTime: AT.toISOString() }),
    ]);
  });

  test("GIVEN a stale view of the task THEN the 409 surfaces and no Event is recorded", async () => {
    const { kube, writer, read } = setup();
    const stale = read();
    kube.mutate(PATH, o => (o.metadata.labels = { someone: "else" }));

    const err = await writer.transition(stale, pending).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(KubeError);
    expect(err).toMatchObject({ status: 409, apiReason: "Conflict" });
    expect(read().status).toBeUndefined();
    expect(events(kube)).toHaveLength(0);
  });

  test("GIVEN a field the new status drops THEN the merge patch clears it with null", async () => {
    const { writer, read } = setup();
    const retrying = await writer.transition(read(), {
      ...processing,
      reason: "RetryScheduled",
      attempts: 1,
      nextAttemptAt: new Date(AT.getTime() + 1000),
      lastError: "AT_ERR_KUBE_TRANSIENT",
    });
    expect(retrying.status).toMatchObject({ attempts: 1, lastError: "AT_ERR_KUBE_TRANSIENT" });
    const next = await writer.transition(retrying, failed);
    expect(next.status!.nextAttemptAt).toBeUndefined();
    expect(next.status!.lastError).toBeUndefined();
    expect(next.status).toMatchObject({ phase: "Failed", attempts: 1, finishedAt: AT.toISOString() });
  });
});

describe("the Event", () => {
  test.each([
    { t: completed, type: "Normal" },
    { t: awaiting, type: "Normal" },
    { t: failed, type: "Warning" },
    { t: { ...failed, phase: "Denied" as const, reason: "PolicyDenied" }, type: "Warning" },
  ])("GIVEN $t.phase THEN one $type Event after the patch, about the task as stored", async ({ t, type }) => {
    const { kube, writer, read } = setup();
    const updated = await writer.transition(read(), t);
    expect(kube.audit.map(e => e.method)).toEqual(["PATCH", "POST"]);
    const [event] = events(kube);
    expect(event.path).toBe(resourcePath("Event", NS));
    expect(event.status).toBe(201);
    expect(event.body).toMatchObject({
      metadata: { name: expect.stringMatching(/^t\.[0-9a-f]{16}$/), namespace: NS },
      involvedObject: {
        apiVersion: "atb.siemens.com/v1alpha1",
        kind: "AgentTask",
        name: "t",
        namespace: NS,
        uid: updated.metadata!.uid,
        resourceVersion: updated.metadata!.resourceVersion,
      },
      reason: t.reason,
      message: `${t.phase}: ${t.message}`,
      type,
      action: t.phase,
      source: { component: "atb-operator" },
      firstTimestamp: AT.toISOString(),
      lastTimestamp: AT.toISOString(),
      count: 1,
    });
  });

  test.each([
    { what: "a 500", error: new KubeError(500, "InternalError", "etcd busy") },
    { what: "a 403", error: new KubeError(403, "Forbidden", "cannot create events") },
    { what: "a name clash", error: new KubeError(409, "AlreadyExists", "exists") },
  ])(
    "GIVEN the Event fails with $what THEN the transition still resolves, the failure counted and logged",
    async ({ error }) => {
      let counted = 0;
      const { kube, writer, read, lines } = setup({ onEventError: () => counted++ });
      kube.onRequest(r => (r.method === "POST" ? error : undefined));

      const updated = await writer.transition(read(), completed);

      expect(updated.status!.phase).toBe("Completed");
      expect(counted).toBe(1);
      expect(statusPatches(kube)).toHaveLength(1); // not repeated
      expect(lines.join("")).toContain("could not record event");
    },
  );

  test("GIVEN no onEventError THEN a failed Event is only logged", async () => {
    const lines: string[] = [];
    const kube = new FakeKube();
    kube.put(PATH, { metadata: {}, spec: {} });
    const log = createLogger("warn", "test", new Writable({ write: (c, _e, cb) => cb(void lines.push(String(c))) }));
    kube.onRequest(r => (r.method === "POST" ? new KubeError(500, "", "x") : undefined));
    const writer = createStatusWriter({ kube, log });
    const updated = await writer.transition(kube.read<AgentTask>(PATH)!, completed);
    expect(updated.status!.phase).toBe("Completed");
    expect(lines).toHaveLength(1);
  });

  test.each([pending, processing, { ...processing, phase: "Executing" as const, reason: "Applied" }])(
    "GIVEN $phase/$reason (a step, not an end or a wait for a person) THEN the patch and no Event",
    async t => {
      const { kube, writer, read } = setup();
      await writer.transition(read(), t);
      expect(kube.audit.map(e => e.method)).toEqual(["PATCH"]);
    },
  );

  test("GIVEN transitions carried in memory THEN one patch from the stored status, under the stored resourceVersion", async () => {
    const { kube, writer, read } = setup();
    const stored = read();
    const at = new Date(AT);
    const once = { ...stored, status: nextStatus(stored, pending, at) };
    const view = { ...once, status: nextStatus(once, processing, at) };
    const updated = await writer.transition(view, failed, { stored });
    const [patch] = statusPatches(kube);
    expect((patch.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion).toBe(
      stored.metadata!.resourceVersion,
    );
    expect(updated.status).toMatchObject({ phase: "Failed", startedAt: AT.toISOString() });
    expect(updated.status!.conditions!.map(c => `${c.type}=${c.status}`)).toEqual([
      "Authorized=Unknown",
      "Succeeded=False",
    ]);
  });
});

describe("bounds and clocks", () => {
  test("GIVEN a very long message THEN status keeps 4000 characters, a condition 8000, the Event 1024", async () => {
    const { kube, writer, read } = setup();
    const long = "x".repeat(40_000);
    const updated = await writer.transition(read(), {
      ...failed,
      message: long,
      conditions: [{ type: "Succeeded", status: "False", reason: "TargetNotFound", message: long }],
    });
    expect(updated.status!.message).toHaveLength(4_000);
    expect(updated.status!.conditions![0].message).toHaveLength(8_000);
    expect((events(kube)[0].body as { message: string }).message).toHaveLength(1_024);
  });

  test("GIVEN no clock THEN the system time is used", async () => {
    const kube = new FakeKube();
    kube.put(PATH, { metadata: {}, spec: {} });
    const log = createLogger("error", "test", new Writable({ write: (_c, _e, cb) => cb() }));
    const updated = await createStatusWriter({ kube, log }).transition(kube.read<AgentTask>(PATH)!, processing);
    expect(Math.abs(Date.parse(updated.status!.startedAt!) - Date.now())).toBeLessThan(10_000);
  });
});
