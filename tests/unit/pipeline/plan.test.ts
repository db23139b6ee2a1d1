// Plan mode (spec.mode Plan) through the whole pipeline (in-memory API server, scripted broker):
// the requester's access to the target is asked (SubjectAccessReview) before anything about the
// target is read; a refusal fails the task PlanNotAllowed with the target unread; otherwise the
// target is read and dry-run as the executor, the broker's plan call (no token) gives the tier and
// the approvals, and the task ends Planned with the digest every client computes and a diff, with
// nothing written to the target and no decide call ever made.
import { taskChangeDigest } from "../../../capabilities/change";
import { valueDigest } from "../../../capabilities/lib/change-digest";
import { KubeError, resourcePath } from "../../../capabilities/lib/kube";
import { Reason } from "../../../capabilities/lib/pipeline";
import { SAR_PATH } from "../../../capabilities/lib/pipeline/access-review";
import { REDACTED_CHANGED } from "../../../capabilities/lib/pipeline/plan-diff";
import type { AgentTaskSpec } from "../../../crds/agenttask";
import { brokerError, planned } from "../../helpers/fake-broker";
import {
  condition,
  configMap,
  configMapPath,
  deployment,
  deployPath,
  drive,
  NS,
  REQUESTER,
  submit,
  task,
  taskPath,
  trail,
  world,
  type TaskOptions,
  type World,
} from "./harness";

/** A Plan task as stored after admission; `token: false` leaves spec.poaToken out. */
function submitPlan(w: World, name: string, o: TaskOptions & { token?: boolean } = {}): string {
  const key = submit(w, name, o);
  w.kube.mutate(taskPath(name, o.namespace ?? NS), t => {
    const spec = t.spec as unknown as AgentTaskSpec;
    spec.mode = "Plan";
    if (o.token === false) delete (spec as Partial<AgentTaskSpec>).poaToken;
  });
  return key;
}

/** Requests made about the target (as the executor) and writes of anything but the task's status and Events. */
const targetRequests = (w: World, path: string) => w.kube.audit.filter(e => e.path === path);
const writesOutsideTask = (w: World) =>
  w.kube.audit.filter(
    e =>
      e.method !== "GET" &&
      !e.dryRun &&
      e.path !== SAR_PATH &&
      !e.path.endsWith("/status") &&
      !e.path.endsWith("/events"),
  );

test("GIVEN a Plan scale task without a token THEN it ends Planned with the clients' digest, the tier, the approvals and a diff, and nothing is written", async () => {
  const w = world();
  deployment(w, "web", 2);
  w.broker.planDefault = () => planned("MEDIUM");
  const key = submitPlan(w, "plan-scale", { payload: { replicas: 5 }, token: false });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Planned");
  expect(t.status!.plan).toEqual({
    changeSha256: taskChangeDigest({ action: "scale", target: { kind: "Deployment" }, payload: { replicas: 5 } }),
    riskTier: "MEDIUM",
    approvalsRequired: { count: 1, sentence: "1 approval other than the agent (MEDIUM)" },
    diff: expect.stringContaining("-  replicas: 2\n+  replicas: 5\n"),
    diffTruncated: false,
  });
  expect(t.status!.plan!.diff).toMatch(/^--- Deployment\/shop\/web \(current\)\n\+\+\+ Deployment\/shop\/web \(after/);
  expect(t.status!.atbResult).toMatchObject({ allowed: false, riskTier: "MEDIUM", reason: "plan_only" });
  expect(condition(t, "Succeeded")).toMatchObject({ status: "True", reason: Reason.Planned });
  expect(condition(t, "Authorized")).toMatchObject({ status: "False", reason: Reason.Planned });
  expect(condition(t, "Executed")).toBeUndefined();
  expect(t.status!.message).toContain(t.status!.plan!.changeSha256);
  expect(trail(w, key)).toEqual(["Pending:Queued", "Processing:Authorizing", "Planned:Planned"]);
  // Nothing written: the target was read and dry-run only; no decide, no preflight.
  expect(w.kube.read(deployPath())!.spec!.replicas).toBe(2);
  expect(writesOutsideTask(w)).toEqual([]);
  expect(targetRequests(w, deployPath()).map(e => `${e.method}${e.dryRun ? " dry-run" : ""}`)).toEqual([
    "GET",
    "PATCH dry-run",
  ]);
  expect(w.broker.calls).toEqual([]);
  expect(w.broker.preflights).toEqual([]);
  expect(w.broker.plans).toHaveLength(1);
  expect(w.broker.plans[0].request).toMatchObject({
    action: "k8s.Deployment.scale",
    agentId: expect.any(String),
    requester: REQUESTER,
    params: { replicas: 5 },
    context: { current: { replicas: 2 }, before: expect.any(Object), after: expect.any(Object) },
  });
});

test("GIVEN a Plan task that carries a token THEN the token is never sent to the broker nor shown", async () => {
  const w = world();
  deployment(w, "web", 2);
  const key = submitPlan(w, "plan-token", { payload: { replicas: 3 } });
  const tokenText = task(w, key).spec!.poaToken;
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Planned");
  expect(w.broker.plans).toHaveLength(1);
  expect(JSON.stringify(w.broker.plans[0].request)).not.toContain(tokenText);
  expect("token" in w.broker.plans[0].request).toBe(false);
  expect(JSON.stringify(t.status)).not.toContain(tokenText);
  expect(t.status!.plan!.approvalsRequired).toEqual({ count: 0, sentence: "no approval is needed for a LOW change" });
});

test("GIVEN the requester may not get the target THEN Failed PlanNotAllowed, asked first, and nothing about the target was read", async () => {
  const w = world();
  deployment(w, "web", 2);
  const reviews: Record<string, unknown>[] = [];
  w.kube.accessReview = spec => {
    reviews.push(spec);
    return false;
  };
  const key = submitPlan(w, "plan-denied", { payload: { replicas: 3 } });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Failed");
  expect(t.status!.conditions!.find(c => c.type === "Succeeded")).toMatchObject({ reason: Reason.PlanNotAllowed });
  expect(t.status!.message).toContain(`${REQUESTER.username} (the task's creator) may not get Deployment shop/web`);
  expect(t.status!.plan).toBeUndefined();
  expect(reviews).toEqual([
    {
      user: REQUESTER.username,
      uid: REQUESTER.uid,
      groups: REQUESTER.groups,
      resourceAttributes: {
        namespace: NS,
        verb: "get",
        group: "apps",
        version: "v1",
        resource: "deployments",
        name: "web",
      },
    },
  ]);
  // Not read, not dry-run, no executor request at all, no broker call.
  expect(targetRequests(w, deployPath())).toEqual([]);
  expect(w.kube.audit.filter(e => e.user)).toEqual([]);
  expect(w.broker.plans).toEqual([]);
  // The review is made with the operator's own identity.
  expect(w.kube.audit.filter(e => e.path === SAR_PATH).map(e => e.user)).toEqual([undefined]);
});

test("GIVEN the review is allowed THEN it is asked before the executor check and the first read of the target", async () => {
  const w = world();
  configMap(w, "flags", { a: "1" });
  const key = submitPlan(w, "plan-order", {
    action: "update-config",
    kind: "ConfigMap",
    target: "flags",
    payload: { data: { a: "2", b: "new" } },
  });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Planned");
  const paths = w.kube.audit.map(e => e.path);
  const sar = paths.indexOf(SAR_PATH);
  expect(sar).toBeGreaterThanOrEqual(0);
  expect(sar).toBeLessThan(paths.indexOf(resourcePath("ServiceAccount", NS, "atb-executor")));
  expect(sar).toBeLessThan(paths.indexOf(configMapPath()));
  expect(t.status!.plan!.diff).toContain("-  a: '1'\n+  a: '2'\n+  b: new\n");
  expect(w.kube.read(configMapPath())!.data).toEqual({ a: "1" });
});

test("GIVEN a Plan of a Secret by reference THEN the digest is the clients' and the diff shows which keys change, never a value", async () => {
  const w = world();
  const b64 = (v: string): string => Buffer.from(v).toString("base64");
  const OLD = `old-secret-${"o".repeat(10)}`;
  const NEW = `new-secret-${"n".repeat(10)}`;
  w.kube.put(resourcePath("Secret", NS, "creds"), {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { annotations: { "kubectl.kubernetes.io/last-applied-configuration": `{"data":{"pw":"${b64(OLD)}"}}` } },
    type: "Opaque",
    data: { pw: b64(OLD), user: b64("admin-name") },
  });
  w.kube.put(resourcePath("Secret", NS, "src"), {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {},
    data: { v: b64(NEW) },
  });
  const payload = { data: { pw: { valueFrom: { secretKeyRef: { name: "src", key: "v" } } } } };
  const key = submitPlan(w, "plan-secret", { action: "update-config", kind: "Secret", target: "creds", payload });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Planned");
  expect(t.status!.plan!.changeSha256).toBe(
    taskChangeDigest(
      { action: "update-config", target: { kind: "Secret" }, payload },
      { valueDigests: { pw: valueDigest(NEW) } },
    ),
  );
  const diff = t.status!.plan!.diff;
  expect(diff).toContain(`-  pw: '[REDACTED]'\n+  pw: '${REDACTED_CHANGED}'\n`);
  expect(diff).toContain("  user: '[REDACTED]'");
  const shown = JSON.stringify([t, w.kube.audit.filter(e => e.path.endsWith("/events")).map(e => e.body)]);
  for (const v of [OLD, NEW, b64(OLD), b64(NEW), "admin-name", b64("admin-name")]) expect(shown).not.toContain(v);
  expect(Buffer.from(w.kube.read(resourcePath("Secret", NS, "creds"))!.data!.pw, "base64").toString()).toBe(OLD);
});

test("GIVEN the broker's plan call fails for good THEN Failed with the broker's reason, never Executing", async () => {
  const w = world();
  deployment(w, "web", 2);
  w.broker.planDefault = () => brokerError("BROKER_MALFORMED");
  const key = submitPlan(w, "plan-broker", { payload: { replicas: 3 } });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Failed");
  expect(t.status!.message).toContain("simulated BROKER_MALFORMED");
  expect(trail(w, key)).not.toContain("Executing:Authorized");
  expect(writesOutsideTask(w)).toEqual([]);
});

test("GIVEN the broker is unavailable once THEN the plan is asked again and the task ends Planned", async () => {
  const w = world();
  deployment(w, "web", 2);
  let n = 0;
  w.broker.planDefault = () => (++n === 1 ? brokerError("BROKER_UNAVAILABLE") : planned("HIGH"));
  const key = submitPlan(w, "plan-retry", { payload: { replicas: 3 } });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Planned");
  expect(w.broker.plans).toHaveLength(2);
  expect(t.status!.plan!.approvalsRequired.sentence).toBe(
    "2 approvals from distinct approvers other than the agent (HIGH)",
  );
});

test("GIVEN the operator may not create SubjectAccessReviews THEN Failed KubeRejected naming the grant, the target unread", async () => {
  const w = world();
  deployment(w, "web", 2);
  w.kube.onRequest(r =>
    r.path === SAR_PATH ? new KubeError(403, "Forbidden", "cannot create subjectaccessreviews") : undefined,
  );
  const key = submitPlan(w, "plan-sar-403", { payload: { replicas: 3 } });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Failed");
  expect(t.status!.message).toContain("create on subjectaccessreviews.authorization.k8s.io");
  expect(targetRequests(w, deployPath())).toEqual([]);
});

test("GIVEN a Plan task with no recorded requester THEN Denied as for Apply, without a review", async () => {
  const w = world();
  deployment(w, "web", 2);
  const key = submitPlan(w, "plan-anon", { payload: { replicas: 3 }, requester: null });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Denied");
  expect(w.kube.audit.filter(e => e.path === SAR_PATH)).toEqual([]);
  expect(targetRequests(w, deployPath())).toEqual([]);
});

test("GIVEN a missing target THEN Failed TargetNotFound after the review, nothing planned", async () => {
  const w = world();
  const key = submitPlan(w, "plan-missing", { payload: { replicas: 3 } });
  const { task: t } = await drive(w, key);
  expect(t.status!.phase).toBe("Failed");
  expect(t.status!.conditions!.find(c => c.type === "Succeeded")!.reason).toBe("TargetNotFound");
  expect(w.broker.plans).toEqual([]);
});
