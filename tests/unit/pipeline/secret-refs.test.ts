// A Secret's update-config by reference through the whole pipeline (in-memory API server, scripted
// broker): the value read from the source Secret when the change is planned is the value written,
// the broker sees only its digest, and a source that changes between the decision and the write
// never gets a value written that the broker did not judge: the judged plan writes what was judged;
// a re-plan (after a conflict, or after a restart) sees the new value as another change and asks the
// broker again, and a source that vanished fails the task.
import { valueDigest } from "../../../capabilities/lib/change-digest";
import { Reason } from "../../../capabilities/lib/pipeline";
import { resourcePath } from "../../../capabilities/lib/kube";
import { FakeCrash, type RequestInfo } from "../../helpers/fake-kube";
import { allow, deny } from "../../helpers/fake-broker";
import { condition, drive, NS, submit, task, trail, uidOf, world, type World } from "./harness";

const OLD = `old-value-${"o".repeat(8)}`;
const A = `authorized-value-${"a".repeat(8)}`;
const B = `rotated-value-${"b".repeat(8)}`;
const b64 = (v: string): string => Buffer.from(v).toString("base64");
const TARGET = resourcePath("Secret", NS, "creds");
const SOURCE = resourcePath("Secret", NS, "src");

function secrets(w: World, value = A): void {
  w.kube.put(TARGET, { apiVersion: "v1", kind: "Secret", metadata: {}, type: "Opaque", data: { password: b64(OLD) } });
  w.kube.put(SOURCE, { apiVersion: "v1", kind: "Secret", metadata: {}, type: "Opaque", data: { pw: b64(value) } });
}

const setSource = (w: World, value: string): void =>
  void w.kube.mutate(SOURCE, o => {
    o.data = { pw: b64(value) };
  });
/** Another writer touches the target (a label): the operator's write, made on the old version, conflicts. */
const touchTarget = (w: World): void =>
  void w.kube.mutate(TARGET, o => {
    o.metadata.labels = { touched: "yes" };
  });

function submitRef(w: World): string {
  return submit(w, "rotate", {
    action: "update-config",
    kind: "Secret",
    target: "creds",
    payload: { data: { password: { valueFrom: { secretKeyRef: { name: "src", key: "pw" } } } } },
  });
}

const stored = (w: World): string => Buffer.from(w.kube.read(TARGET)!.data!.password, "base64").toString("utf8");
const isTargetWrite = (e: RequestInfo): boolean => e.path === TARGET && e.method === "PATCH" && !e.dryRun;
/** What the task, its Events and the broker's requests hold: no value may be in any of them. */
const visible = (w: World, key: string): string =>
  JSON.stringify([
    task(w, key),
    w.kube.audit.filter(e => e.path.endsWith("/events") || e.path.endsWith("/status")).map(e => e.body),
    w.broker.calls.map(c => c.request),
    w.broker.preflights.map(c => c.request),
  ]);

test("GIVEN a reference THEN the source's value is written, the broker judges its digest, and no value is visible", async () => {
  const w = world();
  secrets(w);
  const key = submitRef(w);
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Completed");
  expect(stored(w)).toBe(A);
  expect(w.broker.calls).toHaveLength(1);
  expect(w.broker.calls[0].request.params).toEqual({ data: { password: valueDigest(A) }, remove: [] });
  const text = visible(w, key);
  for (const v of [A, b64(A), OLD, b64(OLD)]) expect(text).not.toContain(v);
});

test("GIVEN the source changes after the decision THEN the judged value is written, never the new one, and verify reports the source moved", async () => {
  const w = world();
  secrets(w);
  w.broker.answer(() => {
    setSource(w, B);
    return allow("MEDIUM");
  });
  const key = submitRef(w);
  const { task: t } = await drive(w, key);
  expect(w.kube.audit.filter(isTargetWrite)).toHaveLength(1);
  expect(stored(w)).toBe(A);
  expect(w.broker.calls).toHaveLength(1);
  expect(condition(t, "Executed")!.status).toBe("True");
  expect(condition(t, "Succeeded")).toMatchObject({
    status: "False",
    reason: Reason.TargetChanged,
    message: expect.stringContaining(
      "keys password are not as requested (changed by someone else after the write, or their source Secret)",
    ),
  });
  for (const v of [A, B, b64(A), b64(B)]) expect(visible(w, key)).not.toContain(v);
});

describe("GIVEN the source changes after the decision and the target's write conflicts", () => {
  function conflicted(second: ReturnType<typeof allow>): World {
    const w = world();
    secrets(w);
    w.broker.answer(() => {
      setSource(w, B);
      touchTarget(w);
      return allow("MEDIUM");
    }, second);
    return w;
  }

  test("THEN the re-plan sees another change and asks again; denied (the token names the first value's digest): nothing is written", async () => {
    const w = conflicted(deny("change_mismatch", "MEDIUM"));
    const key = submitRef(w);
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Denied");
    expect(trail(w, key)).toContain("Processing:Reauthorizing");
    expect(w.broker.calls.map(c => c.request.params)).toEqual([
      { data: { password: valueDigest(A) }, remove: [] },
      { data: { password: valueDigest(B) }, remove: [] },
    ]);
    // The one write attempt carried the judged value and failed on the precondition; none after.
    const attempts = w.kube.audit.filter(isTargetWrite);
    expect(attempts).toHaveLength(1);
    expect(attempts[0].status).toBe(409);
    expect(stored(w)).toBe(OLD);
    for (const v of [A, B, b64(A), b64(B)]) expect(visible(w, key)).not.toContain(v);
  });

  test("THEN allowed again (for the new value's digest): the new value is written, once", async () => {
    const w = conflicted(allow("MEDIUM"));
    const key = submitRef(w);
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Completed");
    expect(stored(w)).toBe(B);
    expect(w.broker.calls[1].request.params).toEqual({ data: { password: valueDigest(B) }, remove: [] });
    expect(w.kube.writes(isTargetWrite)).toHaveLength(1);
  });

  test("THEN a source deleted meanwhile fails the task SecretRefNotFound, nothing written, no second decision", async () => {
    const w = world();
    secrets(w);
    w.broker.answer(() => {
      w.kube.remove(SOURCE);
      touchTarget(w);
      return allow("MEDIUM");
    });
    const key = submitRef(w);
    const { task: t } = await drive(w, key);
    expect(t.status!.phase).toBe("Failed");
    expect(condition(t, "Succeeded")).toMatchObject({
      reason: "SecretRefNotFound",
      message: `spec.payload.data["password"].valueFrom.secretKeyRef: Secret ${NS}/src does not exist`,
    });
    expect(condition(t, "Executed")!.status).not.toBe("True");
    expect(w.kube.writes(isTargetWrite)).toHaveLength(0);
    expect(w.broker.calls).toHaveLength(1);
  });
});

test("GIVEN the operator restarts between the decision and the write while the source changes THEN it authorizes the new value's digest, never writes the old judgement", async () => {
  const w = world();
  secrets(w);
  // The first process dies at its write; the second starts with no judged plan in memory.
  let crashed = false;
  w.kube.onRequest(r => {
    if (crashed || !isTargetWrite(r)) return undefined;
    crashed = true;
    return new FakeCrash(`${r.method} ${r.path}`);
  });
  const key = submitRef(w);
  await w.pipeline.reconcile(key).catch(() => undefined);
  expect(w.kube.crashed).toBe(true);
  expect(task(w, key).status!.phase).toBe("Executing");
  w.kube.clearFaults();
  setSource(w, B);
  w.restart();
  w.broker.answer(deny("change_mismatch", "MEDIUM"));
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Denied");
  expect(w.broker.callsFor(uidOf(w, key)).map(c => c.request.params)).toEqual([
    { data: { password: valueDigest(A) }, remove: [] },
    { data: { password: valueDigest(B) }, remove: [] },
  ]);
  expect(w.kube.writes(isTargetWrite)).toHaveLength(0);
  expect(stored(w)).toBe(OLD);
});

test("GIVEN the source Secret does not exist THEN Failed SecretRefNotFound before the broker decides, nothing written", async () => {
  const w = world();
  w.kube.put(TARGET, { apiVersion: "v1", kind: "Secret", metadata: {}, data: { password: b64(OLD) } });
  const key = submitRef(w);
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Failed");
  expect(condition(t, "Succeeded")).toMatchObject({ reason: "SecretRefNotFound" });
  expect(t.status!.message).toContain(
    `spec.payload.data["password"].valueFrom.secretKeyRef: Secret ${NS}/src does not exist`,
  );
  expect(w.broker.calls).toHaveLength(0);
  expect(w.kube.writes(isTargetWrite)).toHaveLength(0);
});

test("GIVEN a task that predates the webhook with an inline Secret value THEN Failed InvalidTask, the value neither read back nor shown", async () => {
  const w = world();
  secrets(w);
  const key = submit(w, "inline", {
    action: "update-config",
    kind: "Secret",
    target: "creds",
    payload: { data: { password: A } },
  });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Failed");
  expect(condition(t, "Succeeded")!.reason).toBe(Reason.InvalidTask);
  expect(t.status!.message).toContain(`spec.payload.data["password"]: a Secret's values are given by reference`);
  expect(JSON.stringify(t.status)).not.toContain(A);
  expect(w.broker.calls).toHaveLength(0);
  expect(w.kube.writes(isTargetWrite)).toHaveLength(0);
});
