// GIVEN the whole product on the real control plane, WHEN an agent changes configuration
// (update-config, MEDIUM) and patches objects (patch, HIGH) through AgentTasks, THEN the objects
// hold exactly the requested data; a forbidden patch path is refused by the admission webhook;
// under-approved tokens are Denied with the policy's reason and leave the target untouched; and a
// patch whose target changed after the broker's decision is not applied.
import { randomBytes } from "node:crypto";
import { ANNOTATION_APPLIED_TASKS } from "../../capabilities/lib/action/marker";
import { e2eCluster } from "../helpers/cluster-env";
import {
  checkAtMostOnce,
  checkNoLeaks,
  executed,
  holdDecisions,
  Harness,
  images,
  revisionOf,
  revisionTemplate,
  TIER,
  type Task,
} from "../helpers/pipeline-tasks";

const h = new Harness(e2eCluster(), "ap-config", "stack-actions-pipeline-config");

// A generous per-attempt broker timeout: the stale-patch test holds one decision while it changes the target.
beforeAll(() => h.start({ ATB_BROKER_TIMEOUT_MS: "30000" }));
afterAll(() => h.stop());

function completed(t: Task): void {
  expect({ phase: t.status?.phase, message: t.status?.message }).toEqual({
    phase: "Completed",
    message: expect.any(String),
  });
  expect(t.status?.atbResult).toMatchObject({ allowed: true, riskTier: TIER[t.spec.action], reason: "allowed" });
}

const configMap = (name: string, data: Record<string, string>) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace: h.ns },
  data,
});
const decoded = (data: Record<string, string>) =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));

describe("update-config (MEDIUM)", () => {
  test("ConfigMap: keys merged, a key removed, the others untouched", async () => {
    h.create(configMap("cfg", { keep: "1", old: "2", LOG_LEVEL: "info" }));
    const t = await h.run("cfg", {
      action: "update-config",
      kind: "ConfigMap",
      target: "cfg",
      payload: {
        data: { LOG_LEVEL: "debug", added: "x" },
        remove: ["old"],
      },
    });
    completed(t);
    expect(h.get("configmap", "cfg").data).toEqual({ keep: "1", LOG_LEVEL: "debug", added: "x" });
  });

  test("Secret: values by reference to a source Secret, stored base64-encoded, decoded equals the source's", async () => {
    const input = {
      password: `p@ss wörd ${randomBytes(8).toString("hex")}\nline2`,
      user: `admin-${randomBytes(6).toString("hex")}`,
    };
    h.secrets.push(...Object.values(input), ...Object.values(input).map(v => Buffer.from(v).toString("base64")));
    h.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "creds-source", namespace: h.ns },
      type: "Opaque",
      data: Object.fromEntries(Object.entries(input).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
    });
    h.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "creds", namespace: h.ns },
      type: "Opaque",
      data: { user: Buffer.from("root").toString("base64"), old: "eA==" },
    });
    const ref = (key: string) => ({ valueFrom: { secretKeyRef: { name: "creds-source", key } } });
    const t = await h.run("creds", {
      action: "update-config",
      kind: "Secret",
      target: "creds",
      payload: { data: { password: ref("password"), user: ref("user") }, remove: ["old"] },
    });
    completed(t);
    const data = h.get("secret", "creds").data!;
    expect(Object.keys(data).sort()).toEqual(["password", "user"]);
    expect(decoded(data)).toEqual(input);
  });
});

describe("patch (HIGH)", () => {
  test("Deployment: replicas and a label", async () => {
    await h.ready("Deployment", "patch-deployment");
    await h.quiet("deployment", "patch-deployment");
    const ops = [
      { op: "replace", path: "/spec/replicas", value: 3 },
      { op: "add", path: "/metadata/labels", value: { tier: "frontend" } },
    ];
    completed(
      await h.run("patch-deployment", {
        action: "patch",
        kind: "Deployment",
        target: "patch-deployment",
        payload: { patch: ops },
      }),
    );
    const d = h.get("deployment", "patch-deployment");
    expect([d.spec?.replicas, d.metadata.labels]).toEqual([3, { tier: "frontend" }]);
  });

  test("ConfigMap: a key added (patch sent as a JSON string, as the upstream example does)", async () => {
    h.create(configMap("patch-cm", { a: "1" }));
    const patch = JSON.stringify([{ op: "add", path: "/data/b", value: "2" }]);
    completed(await h.run("patch-cm", { action: "patch", kind: "ConfigMap", target: "patch-cm", payload: { patch } }));
    expect(h.get("configmap", "patch-cm").data).toEqual({ a: "1", b: "2" });
  });

  test("Service: the port replaced", async () => {
    h.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "patch-svc", namespace: h.ns },
      spec: { selector: { app: "x" }, ports: [{ port: 80 }] },
    });
    completed(
      await h.run("patch-svc", {
        action: "patch",
        kind: "Service",
        target: "patch-svc",
        payload: {
          patch: [{ op: "replace", path: "/spec/ports/0/port", value: 8080 }],
        },
      }),
    );
    const ports = (h.get("service", "patch-svc").spec as { ports: { port: number }[] }).ports;
    expect(ports.map(p => p.port)).toEqual([8080]);
  });

  test.each(["StatefulSet", "DaemonSet"] as const)(
    "%s: the image replaced and rolled out to a new ControllerRevision",
    async kind => {
      const name = `patch-${kind.toLowerCase()}`;
      await h.ready(kind, name);
      await h.quiet(kind, name);
      const t = await h.run(name, {
        action: "patch",
        kind,
        target: name,
        payload: {
          patch: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "nginx:1.28" }],
        },
      });
      completed(t);
      const o = h.get(kind, name);
      const crs = h.owned("ControllerRevision", o);
      expect(crs.map(cr => [revisionOf(cr), images(revisionTemplate(cr))])).toEqual([
        [1, ["nginx:1.27"]],
        [2, ["nginx:1.28"]],
      ]);
      if (kind === "StatefulSet")
        expect([o.status?.currentRevision, o.status?.readyReplicas]).toEqual([crs[1].metadata.name, 2]);
      else expect([o.status?.updatedNumberScheduled, o.status?.numberAvailable]).toEqual([3, 3]);
    },
  );

  test("ReplicaSet: replicas replaced", async () => {
    await h.ready("ReplicaSet", "patch-replicaset");
    await h.quiet("replicaset", "patch-replicaset");
    completed(
      await h.run("patch-replicaset", {
        action: "patch",
        kind: "ReplicaSet",
        target: "patch-replicaset",
        payload: {
          patch: [{ op: "replace", path: "/spec/replicas", value: 1 }],
        },
      }),
    );
    expect(h.get("replicaset", "patch-replicaset").spec?.replicas).toBe(1);
  });

  test.each([
    [
      "/metadata/ownerReferences",
      /spec\.payload\.patch\[0\]\.path: "\/metadata\/ownerReferences" touches \/metadata\/ownerReferences/,
    ],
    ["/status/replicas", /spec\.payload\.patch\[0\]\.path: "\/status\/replicas" touches \/status/],
  ])("a forbidden path (%s) is rejected at admission by the webhook", async (path, message) => {
    const token = await h.token("patch", "Deployment", "patch-deployment");
    const r = h.kube.create(
      h.task(
        "forbidden",
        {
          action: "patch",
          kind: "Deployment",
          target: "patch-deployment",
          payload: { patch: [{ op: "add", path, value: [] }] },
        },
        token,
      ),
    );
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(/admission webhook .* denied the request/);
    expect(r.stderr).toMatch(message);
    expect(h.exists("agenttask", "forbidden")).toBe(false);
  });

  test("a value nested 9000 levels deep (kubectl and the API server stop at 10000) is refused naming the field, not with the webhook's HTTP 500", async () => {
    // Written as text: JSON.stringify itself overflows the stack long before this depth.
    const deep = '{"d":['.repeat(4500) + '"x"' + "]}".repeat(4500);
    const token = await h.token("patch", "Deployment", "patch-deployment");
    const task = h.task(
      "too-deep",
      {
        action: "patch",
        kind: "Deployment",
        target: "patch-deployment",
        payload: { patch: [{ op: "add", path: "/metadata/labels/deep", value: "DEEP" }] },
      },
      token,
    );
    const r = h.kube.try(["create", "-f", "-", "-o", "json"], JSON.stringify(task).replace('"DEEP"', deep));
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(/admission webhook .* denied the request/);
    expect(r.stderr).toMatch(/spec\.payload\.patch\[0\]\.value\S*: nested deeper than 100 levels/);
    expect(h.exists("agenttask", "too-deep")).toBe(false);
  });
});

describe("missing approvals: the task waits, the target unchanged", () => {
  test("HIGH with one approver: AwaitingApproval, high_risk_dual_control_required", async () => {
    h.create(configMap("deny-high", { a: "1" }));
    const before = h.get("configmap", "deny-high");
    const t = await h.runUntilWaiting("deny-high", {
      action: "patch",
      kind: "ConfigMap",
      target: "deny-high",
      payload: { patch: [{ op: "replace", path: "/data/a", value: "2" }] },
      approvers: ["alice@example.com"],
    });
    expect(t.status?.phase).toBe("AwaitingApproval");
    expect(t.status?.message).toMatch(
      /^waiting for approval: HIGH: 2 distinct approvers other than the agent must approve/,
    );
    expect(t.status?.atbResult).toMatchObject({
      allowed: false,
      riskTier: "HIGH",
      reason: "high_risk_dual_control_required",
    });
    expect(h.get("configmap", "deny-high")).toEqual(before);
  });

  test("MEDIUM without approval: AwaitingApproval, medium_risk_approval_required", async () => {
    const before = await h.ready("Deployment", "deny-medium");
    const t = await h.runUntilWaiting("deny-medium", {
      action: "restart",
      kind: "Deployment",
      target: "deny-medium",
      approvers: [],
    });
    expect(t.status?.phase).toBe("AwaitingApproval");
    expect(t.status?.message).toMatch(/^waiting for approval: MEDIUM: 1 approver other than the agent must approve/);
    expect(t.status?.atbResult).toMatchObject({
      allowed: false,
      riskTier: "MEDIUM",
      reason: "medium_risk_approval_required",
    });
    const after = h.get("deployment", "deny-medium");
    expect([after.metadata.generation, after.metadata.annotations, after.spec]).toEqual([
      before.metadata.generation,
      before.metadata.annotations,
      before.spec,
    ]);
    expect(h.owned("ReplicaSet", after)).toHaveLength(1);
  });
});

test("a patch whose target changed after the broker's decision is not applied: Failed, TargetChanged", async () => {
  h.create(configMap("stale", { a: "1" }));
  const decisions: { allowed?: boolean }[] = [];
  const restore = await holdDecisions(h, async decision => {
    decisions.push(decision);
    // Only the first answer is held: a retried decide (after a client timeout) is answered at once.
    if (decisions.length === 1)
      h.kube.run(["patch", "configmap", "stale", "-n", h.ns, "--type=merge", "-p", '{"data":{"a":"human"}}']);
  });
  let t: Task;
  try {
    t = await h.run("stale", {
      action: "patch",
      kind: "ConfigMap",
      target: "stale",
      payload: {
        patch: [{ op: "replace", path: "/data/a", value: "agent" }],
      },
    });
  } finally {
    await restore();
  }
  expect(decisions[0]).toMatchObject({ allowed: true, risk_tier: "HIGH" });
  expect(t.status?.phase).toBe("Failed");
  expect(t.status?.message).toMatch(
    /^the target changed after the broker's decision, so the change was not applied: .*the object has been modified/,
  );
  expect(t.status?.conditions?.find(c => c.type === "Succeeded")).toMatchObject({
    status: "False",
    reason: "TargetChanged",
  });
  expect(executed(t)).toBe(false);
  const cm = h.get("configmap", "stale");
  expect(cm.data).toEqual({ a: "human" });
  expect(cm.metadata.annotations?.[ANNOTATION_APPLIED_TASKS]).toBeUndefined();
});

test("at most once: one write per applied task, none after an operator restart", () => checkAtMostOnce(h));

test("no token and no Secret value leaks into logs, the broker's audit, events or task statuses", () =>
  checkNoLeaks(h));
