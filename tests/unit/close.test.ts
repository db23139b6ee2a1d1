// Closing a finished task (capabilities/lib/status/close.ts) and where it happens: GIVEN a task
// that reaches a terminal phase THEN right after the terminal status write one merge patch on the
// object removes the open label (nothing else changes); a failed removal is logged and counted and
// the task is finished anyway; a task without the label costs no request. The sweep removes the
// label of finished tasks that still carry it (the runtime's part is in tests/unit/runtime.test.ts).
import { Writable } from "node:stream";
import { LABEL_OPEN, LABEL_SHARD, type AgentTask } from "../../crds/agenttask";
import { KubeError, resourcePath } from "../../capabilities/lib/kube";
import { createLogger } from "../../capabilities/lib/logger";
import { OperatorMetrics } from "../../capabilities/lib/metrics";
import { CLOSE_PATCH, closeTask } from "../../capabilities/lib/status/close";
import { FakeKube } from "../helpers/fake-kube";

const NS = "shop";
const path = (name: string) => resourcePath("AgentTask", NS, name);

function setup() {
  const kube = new FakeKube();
  const lines: string[] = [];
  const log = createLogger("info", "test", new Writable({ write: (c, _e, cb) => cb(void lines.push(String(c))) }));
  const metrics = new OperatorMetrics();
  const put = (name: string, phase: string | undefined, labels: Record<string, string> = { [LABEL_OPEN]: "true" }) =>
    kube.put(path(name), {
      apiVersion: "atb.siemens.com/v1alpha1",
      kind: "AgentTask",
      metadata: { labels: { ...labels, [LABEL_SHARD]: "0" } },
      spec: { action: "scale" },
      ...(phase ? { status: { phase } } : {}),
    }) as unknown as AgentTask;
  const errors = async () => (await metrics.taskCloseErrors.get()).values.map(v => [v.labels.code, v.value]);
  return { kube, lines, put, errors, deps: { kube, log, metrics } };
}

test.each(["Completed", "Denied", "Failed", "Planned"])(
  "GIVEN a %s task with the open label THEN one merge patch of the object removes it and nothing else",
  async phase => {
    const { kube, put, deps } = setup();
    const t = put("t", phase);
    const before = kube.read<AgentTask>(path("t"))!;

    expect(await closeTask(deps, t)).toBe(true);

    expect(kube.audit.map(e => [e.method, e.path, e.patchType, e.body])).toEqual([
      ["PATCH", path("t"), "merge", CLOSE_PATCH],
    ]);
    expect(CLOSE_PATCH).toEqual({ metadata: { labels: { "atb.siemens.com/open": null } } });
    const after = kube.read<AgentTask>(path("t"))!;
    expect(after.metadata?.labels).toEqual({ [LABEL_SHARD]: "0" });
    expect({ ...after, metadata: { ...after.metadata, labels: {}, resourceVersion: "" } }).toEqual({
      ...before,
      metadata: { ...before.metadata, labels: {}, resourceVersion: "" },
    });
  },
);

test("GIVEN an open task, or a finished one without the label THEN no request at all", async () => {
  const { kube, put, deps } = setup();
  for (const phase of [undefined, "Pending", "Processing", "Executing", "AwaitingApproval"])
    expect(await closeTask(deps, put(`open-${phase}`, phase))).toBe(true);
  expect(await closeTask(deps, put("older", "Completed", {}))).toBe(true);
  expect(kube.audit).toEqual([]);
});

test("GIVEN the removal is forbidden THEN false, the error logged with the task and counted by class; never thrown", async () => {
  const { kube, put, deps, lines, errors } = setup();
  kube.onRequest(() => new KubeError(403, "Forbidden", 'agenttasks.atb.siemens.com "t" is forbidden'));
  const t = put("t", "Completed");

  await expect(closeTask(deps, t)).resolves.toBe(false);

  expect(await errors()).toEqual([["forbidden", 1]]);
  const line = lines.find(l => l.includes("could not remove the open label"))!;
  expect(JSON.parse(line)).toMatchObject({ level: "warn", task: `${NS}/t`, phase: "Completed", code: "forbidden" });
  expect(kube.read<AgentTask>(path("t"))!.metadata?.labels?.[LABEL_OPEN]).toBe("true");
});

test("GIVEN a network error THEN counted as network; GIVEN the task is gone THEN true and nothing counted", async () => {
  const { kube, put, deps, errors } = setup();
  const t = put("t", "Failed");
  kube.onRequest(() => new KubeError(0, "NetworkError", "connection reset"));
  expect(await closeTask(deps, t)).toBe(false);
  expect(await errors()).toEqual([["network", 1]]);

  kube.clearFaults();
  kube.remove(path("t"));
  expect(await closeTask(deps, t)).toBe(true);
  expect(await errors()).toEqual([["network", 1]]);
});
