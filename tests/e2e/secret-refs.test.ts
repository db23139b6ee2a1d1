// GIVEN the whole product on the real control plane (the reference broker with real OPA, the
// operator with its webhooks, logging at debug level), WHEN an agent changes a Secret with
// update-config, THEN its values are given by reference (issue 14, "Secret values never in a task"):
// - a value referenced as `valueFrom.secretKeyRef` reaches the target Secret, byte for byte, read
//   from the source as the namespace's executor (the API server's audit log);
// - the token the agent mints from the digest of the value it put into the source Secret (the
//   digest of the same value given inline) is the token that Completes the task;
// - the value, its base64 and a distinctive part of it appear nowhere else: not in the task as
//   stored (`kubectl get agenttask -o yaml`, spec included), its status or Events, the operator's
//   log at debug level, the broker's log and audit file, or the operator's /metrics;
// - an inline Secret value is refused at admission with a message that names the field and shows
//   the reference form (and not the value), and so is a reference for a ConfigMap;
// - a source rotated after the token was minted is another change (Denied change_mismatch, the
//   target unwritten), and a missing source fails the task SecretRefNotFound before any decision.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { taskChangeDigest } from "../../clients/typescript";
import { USER_AGENT } from "../../capabilities/lib/kube";
import { auditEvents } from "../helpers/audit";
import { e2eCluster } from "../helpers/cluster-env";
import { AGENT, APPROVERS, checkAtMostOnce, executed, Harness, type Task } from "../helpers/pipeline-tasks";

const h = new Harness(e2eCluster(), "secret-refs", "stack-secret-refs");

beforeAll(() => h.start({ LOG_LEVEL: "debug" }));
afterAll(() => h.stop());

const b64 = (v: string | Buffer): string => Buffer.from(v).toString("base64");
const ref = (name: string, key: string) => ({ valueFrom: { secretKeyRef: { name, key } } });
/** Values that must show up nowhere but in the Secrets: each with its base64 and its random part. */
const values: string[] = [];
function secretValue(label: string): string {
  const marker = randomBytes(12).toString("hex");
  const v = `${label}-pässwörd-${marker}\nline two`;
  values.push(v, b64(v), marker);
  return v;
}

function secret(name: string, data: Record<string, string>): void {
  h.create({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: h.ns },
    type: "Opaque",
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  });
}
const decoded = (name: string): Record<string, string> =>
  Object.fromEntries(
    Object.entries(h.get("secret", name).data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
  );

/** A token bound to the digest an agent computes from the value it put into the source: as if inline. */
async function tokenFor(target: string, inline: Record<string, string>, remove: string[] = []): Promise<string> {
  const changeSha256 = taskChangeDigest({
    action: "update-config",
    target: { kind: "ConfigMap", name: target, namespace: h.ns },
    payload: { data: inline, remove },
  });
  const token = await h.stack.mint({
    agent: AGENT,
    action: "update-config",
    target: { kind: "Secret", namespace: h.ns, name: target },
    approvers: APPROVERS.MEDIUM,
    ttlSeconds: 300,
    changeSha256,
  });
  h.secrets.push(token);
  return token;
}

async function submit(name: string, target: string, payload: Record<string, unknown>, token: string): Promise<Task> {
  h.create(h.task(name, { action: "update-config", kind: "Secret", target, payload }, token));
  return h.terminal(name);
}

test("a referenced value reaches the target Secret; the token bound to the value's own digest Completes the task", async () => {
  const password = secretValue("password");
  const apiKey = secretValue("api-key");
  secret("db-creds", { password, "api.key": apiKey });
  secret("app-creds", { password: "placeholder", old: "to be removed" });
  const token = await tokenFor("app-creds", { password, API_KEY: apiKey }, ["old"]);
  const t = await submit(
    "rotate-app-creds",
    "app-creds",
    { data: { password: ref("db-creds", "password"), API_KEY: ref("db-creds", "api.key") }, remove: ["old"] },
    token,
  );
  expect({ phase: t.status?.phase, atb: t.status?.atbResult }).toEqual({
    phase: "Completed",
    atb: expect.objectContaining({ allowed: true, reason: "allowed", riskTier: "MEDIUM" }),
  });
  expect(decoded("app-creds")).toEqual({ password, API_KEY: apiKey });
  // The operator read the source as it reads the target: as the namespace's executor (impersonated),
  // for the plan and for the verify, never as itself.
  const reads = auditEvents(h.cluster.dataDir).filter(
    e =>
      e.stage === "ResponseComplete" &&
      e.verb === "get" &&
      e.userAgent?.startsWith(USER_AGENT) &&
      e.objectRef?.resource === "secrets" &&
      e.objectRef.namespace === h.ns &&
      e.objectRef.name === "db-creds",
  );
  expect(reads.length).toBeGreaterThan(0);
  expect(new Set(reads.map(e => e.impersonatedUser?.username))).toEqual(
    new Set([`system:serviceaccount:${h.ns}:atb-executor`]),
  );
});

test("the stack's minter resolves a reference through the cluster as the operator does (tools/task-change.ts)", async () => {
  const token = secretValue("token");
  secret("ci-source", { token });
  secret("ci-creds", {});
  // h.run mints with the task's payload: the kubectl reader reads ci-source for the value's digest.
  const t = await h.run("copy-ci-token", {
    action: "update-config",
    kind: "Secret",
    target: "ci-creds",
    payload: { data: { token: ref("ci-source", "token") } },
  });
  expect(t.status?.phase).toBe("Completed");
  expect(decoded("ci-creds")).toEqual({ token });
});

test("a source rotated after the token was minted is another change: Denied change_mismatch, the target unwritten", async () => {
  const first = secretValue("first");
  const rotated = secretValue("rotated");
  secret("rot-source", { v: first });
  secret("rot-target", { v: "unchanged" });
  const token = await tokenFor("rot-target", { v: first });
  h.kube.run(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "rot-source", namespace: h.ns },
      type: "Opaque",
      data: { v: b64(rotated) },
    }),
  );
  const t = await submit("rotated-source", "rot-target", { data: { v: ref("rot-source", "v") } }, token);
  expect({ phase: t.status?.phase, reason: t.status?.atbResult?.reason }).toEqual({
    phase: "Denied",
    reason: "change_mismatch",
  });
  expect(executed(t)).toBe(false);
  expect(decoded("rot-target")).toEqual({ v: "unchanged" });
});

test("a missing source Secret or key fails the task SecretRefNotFound, naming the field, before any decision", async () => {
  secret("lonely", { a: "1" });
  secret("half-source", { present: "x" });
  const token = await tokenFor("lonely", { a: "2" });
  const calls = h.brokerLines();
  const t = await submit(
    "missing-source",
    "lonely",
    { data: { a: ref("no-such-secret", "a"), b: ref("half-source", "absent") } },
    token,
  );
  expect(t.status?.phase).toBe("Failed");
  expect(t.status?.conditions?.find(c => c.type === "Succeeded")).toMatchObject({ reason: "SecretRefNotFound" });
  expect(t.status?.message).toContain(
    `spec.payload.data["a"].valueFrom.secretKeyRef: Secret ${h.ns}/no-such-secret does not exist; ` +
      `spec.payload.data["b"].valueFrom.secretKeyRef: Secret ${h.ns}/half-source has no key "absent"`,
  );
  // The token preflight only: the broker was never asked to decide.
  const lines = readFileSync(h.stack.auditFile, "utf8").split("\n").filter(Boolean).slice(calls);
  expect(lines.map(l => (JSON.parse(l) as { phase?: string }).phase)).toEqual(["preflight"]);
  expect(decoded("lonely")).toEqual({ a: "1" });
});

describe("refused at admission, nothing stored", () => {
  test("an inline Secret value: the message names the field, shows the reference form, never the value", async () => {
    const inline = secretValue("inline");
    secret("inline-target", {});
    const token = await tokenFor("inline-target", { password: inline });
    const r = h.kube.create(
      h.task(
        "inline-secret",
        { action: "update-config", kind: "Secret", target: "inline-target", payload: { data: { password: inline } } },
        token,
      ),
    );
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(
      `spec.payload.data["password"]: a Secret's values are given by reference, never inline (an inline value would be stored in the AgentTask, which is not a Secret): use {"valueFrom": {"secretKeyRef": {"name": "<a Secret in the target's namespace>", "key": "<its key>"}}}`,
    );
    for (const v of values.slice(-3)) expect(r.stderr).not.toContain(v);
    expect(h.exists("agenttask", "inline-secret")).toBe(false);
  });

  test("a reference for a ConfigMap (it would copy a Secret's value into it)", async () => {
    h.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "plain", namespace: h.ns }, data: {} });
    const token = await h.token("update-config", "ConfigMap", "plain");
    const r = h.kube.create(
      h.task(
        "ref-into-configmap",
        {
          action: "update-config",
          kind: "ConfigMap",
          target: "plain",
          payload: { data: { dsn: ref("db-creds", "password") } },
        },
        token,
      ),
    );
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(
      `spec.payload.data["dsn"]: must be a string: a ConfigMap's values are given inline, a reference to a Secret is refused`,
    );
    expect(h.exists("agenttask", "ref-into-configmap")).toBe(false);
  });

  test("a reference with a field Kubernetes' secretKeyRef has but the operator refuses (optional)", async () => {
    const token = await h.token("update-config", "Secret", "app-creds");
    const r = h.kube.create(
      h.task(
        "optional-ref",
        {
          action: "update-config",
          kind: "Secret",
          target: "app-creds",
          payload: {
            data: { x: { valueFrom: { secretKeyRef: { name: "db-creds", key: "password", optional: true } } } },
          },
        },
        token,
      ),
    );
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(
      `spec.payload.data["x"].valueFrom.secretKeyRef.optional: not a field of a Secret reference (allowed: name, key)`,
    );
  });
});

test("the values appear nowhere but in the Secrets: tasks as stored, Events, debug logs, broker log and audit, metrics", async () => {
  expect(values.length).toBeGreaterThanOrEqual(15);
  const surfaces: Record<string, string> = {
    "kubectl get agenttask -o yaml": h.kube.run(["get", "agenttasks", "-n", h.ns, "-o", "yaml"]),
    "the namespace's Events": h.kube.run(["get", "events", "-n", h.ns, "-o", "yaml"]),
    "the operator's log (LOG_LEVEL=debug)": h.stack.operator.logs(),
    "the broker's log": readFileSync(join(h.cluster.dataDir, h.workDir, "broker.log"), "utf8"),
    "the broker's audit": readFileSync(h.stack.auditFile, "utf8"),
    "/metrics": await h.stack.metrics(),
  };
  // The checks look at something: the tasks, a debug line and the decisions are there.
  expect(surfaces["kubectl get agenttask -o yaml"]).toContain("secretKeyRef");
  expect(surfaces["the operator's log (LOG_LEVEL=debug)"]).toMatch(/"level":"debug"/);
  expect(surfaces["the broker's audit"]).toContain('"decision":"allow"');
  const found = Object.entries(surfaces).flatMap(([where, text]) =>
    values.flatMap((v, i) => (text.includes(v) ? [`${where} contains value #${i}`] : [])),
  );
  expect(found).toEqual([]);
});

test("at most once: one write per applied task, none after an operator restart", () => checkAtMostOnce(h));
