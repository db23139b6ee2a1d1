// GIVEN the whole product on the real control plane (the operator with its webhooks, the reference
// broker over mTLS with real OPA on policies/) in a namespace the policy data marks restricted
// WHEN an agent holding a valid, approved PoA bound to its own change asks for an escalation (the
// attacks issue 13 lists: host namespaces, a hostPath of /, SYS_ADMIN, root, another service
// account, an init container from any registry, an owner reference; a patch adding a hostPath or
// privileged; a Service patch exposing it or swapping its selector)
// THEN each is Denied with its own reason (the policy judged the object the dry run says would be
// stored) and nothing is written, while a harmless manifest Completes.
// AND WHEN someone without a valid PoA uses a JSON Patch `test` op to guess a ConfigMap value,
// THEN a right and a wrong guess get the same answer, and the API server's audit log shows the
// operator never read the ConfigMap for them (the token preflight comes first).
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mintPoa } from "../../broker/poa";
import { taskChangeDigest } from "../../capabilities/change";
import { USER_AGENT } from "../../capabilities/lib/kube";
import { auditEvents } from "../helpers/audit";
import { e2eCluster } from "../helpers/cluster-env";
import { AGENT, checkNoLeaks, executed, Harness, type Obj, type Task } from "../helpers/pipeline-tasks";

const NS = "trust";
const h = new Harness(e2eCluster(), NS, "stack-trust");
const ROOT = join(__dirname, "..", "..");

/** A pod spec the restricted level accepts: the baseline every escalation below starts from. */
const restrictedPod = (image = "nginx:1.27") => ({
  securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
  containers: [
    {
      name: "app",
      image,
      securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
    },
  ],
  terminationGracePeriodSeconds: 0,
});

const manifest = (pod: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "web", namespace: NS, ...meta },
  spec: {
    replicas: 1,
    selector: { matchLabels: { app: "web" } },
    template: { metadata: { labels: { app: "web" } }, spec: pod },
  },
});

beforeAll(async () => {
  // The shipped policy data, with this namespace at the restricted Pod Security level.
  const data = JSON.parse(readFileSync(join(ROOT, "policies", "data.json"), "utf8")) as {
    atb_config: { pod_security: { namespaces: Record<string, string> } };
  };
  data.atb_config.pod_security.namespaces[NS] = "restricted";
  const dataFile = join(h.cluster.dataDir, `trust-data-${process.pid}.json`);
  writeFileSync(dataFile, JSON.stringify(data));
  await h.start({}, { brokerDataFile: dataFile });
  h.create(manifest(restrictedPod()));
  await h.rolledOut("Deployment", "web");
  h.create({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "web", namespace: NS },
    spec: { selector: { app: "web" }, ports: [{ port: 80 }] },
  });
  h.create({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "creds", namespace: NS },
    data: { password: "hunter2" },
  });
});

afterAll(() => h.stop());

function denied(t: Task, reason: string): void {
  expect({ name: t.metadata.name, phase: t.status?.phase, reason: t.status?.atbResult?.reason }).toEqual({
    name: t.metadata.name,
    phase: "Denied",
    reason,
  });
  expect(executed(t)).toBe(false);
}

const unchanged = (o: Obj) => [o.metadata.generation, o.spec];

/** A test's words as a task name: lower-case, dashes, no dash at either end. */
const taskName = (words: string) =>
  words
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .slice(0, 60)
    .replace(/^-+|-+$/g, "");

describe("escalations an approved, change-bound PoA does not buy", () => {
  const withPod = (patch: Record<string, unknown>) => ({ ...restrictedPod(), ...patch });
  const app = restrictedPod().containers[0];
  test.each([
    ["host PID namespace", manifest(withPod({ hostPID: true })), "pod_security_baseline"],
    [
      "a hostPath volume of /",
      manifest(
        withPod({
          volumes: [{ name: "root", hostPath: { path: "/" } }],
          containers: [{ ...app, volumeMounts: [{ name: "root", mountPath: "/host" }] }],
        }),
      ),
      "pod_security_baseline",
    ],
    [
      "SYS_ADMIN",
      manifest(
        withPod({
          containers: [{ ...app, securityContext: { ...app.securityContext, capabilities: { add: ["SYS_ADMIN"] } } }],
        }),
      ),
      "pod_security_baseline",
    ],
    [
      "root (runAsUser 0) in a restricted namespace",
      manifest(withPod({ securityContext: { runAsUser: 0, seccompProfile: { type: "RuntimeDefault" } } })),
      "pod_security_restricted",
    ],
    ["another service account", manifest(withPod({ serviceAccountName: "kube-admin" })), "service_account_change"],
    [
      "an init container from any registry",
      manifest(withPod({ initContainers: [{ ...app, name: "setup", image: "evil.example.net/tools:latest" }] })),
      "image_registry_not_allowed",
    ],
  ])("deploy with %s: Denied, nothing written", async (name, m, reason) => {
    const before = h.get("Deployment", "web");
    const t = await h.run(taskName(`deploy-${name}`), {
      action: "deploy",
      kind: "Deployment",
      target: "web",
      payload: { manifest: m },
    });
    denied(t, reason);
    expect(unchanged(h.get("Deployment", "web"))).toEqual(unchanged(before));
  });

  test("deploy with an ownerReference: refused at admission with the field named", () => {
    const r = h.kube.create(
      h.task(
        "deploy-owner",
        {
          action: "deploy",
          kind: "Deployment",
          target: "web",
          payload: {
            manifest: manifest(restrictedPod(), {
              ownerReferences: [
                { apiVersion: "v1", kind: "ConfigMap", name: "creds", uid: "00000000-0000-0000-0000-000000000001" },
              ],
            }),
          },
        },
        "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln",
      ),
    );
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain("spec.payload.manifest.metadata.ownerReferences");
  });

  test.each([
    [
      "Deployment",
      "a hostPath volume",
      [{ op: "add", path: "/spec/template/spec/volumes", value: [{ name: "root", hostPath: { path: "/" } }] }],
      "pod_security_baseline",
    ],
    [
      "Deployment",
      "privileged",
      // The whole securityContext: the API server itself refuses privileged next to
      // allowPrivilegeEscalation false, and this is about what the policy refuses.
      [{ op: "replace", path: "/spec/template/spec/containers/0/securityContext", value: { privileged: true } }],
      "pod_security_baseline",
    ],
    ["Service", "externalIPs", [{ op: "add", path: "/spec/externalIPs", value: ["203.0.113.7"] }], "service_exposure"],
    [
      "Service",
      "a swapped selector",
      [{ op: "replace", path: "/spec/selector", value: { app: "payments" } }],
      "service_selector_change",
    ],
  ] as const)("patch of %s web adding %s: Denied, nothing written", async (kind, what, patch, reason) => {
    const target = "web";
    const before = h.get(kind, target);
    const t = await h.run(taskName(`patch-${kind}-${what}`), {
      action: "patch",
      kind,
      target,
      payload: { patch: patch as unknown as Record<string, unknown>[] },
    });
    denied(t, reason);
    expect(h.get(kind, target).spec).toEqual(before.spec);
  });

  test("a harmless manifest (a new image from an allowed registry, restricted-compliant) Completes", async () => {
    const t = await h.run("deploy-harmless", {
      action: "deploy",
      kind: "Deployment",
      target: "web",
      payload: { manifest: manifest(restrictedPod("nginx:1.28")) },
    });
    expect({ phase: t.status?.phase, reason: t.status?.atbResult?.reason }).toEqual({
      phase: "Completed",
      reason: "allowed",
    });
    expect(h.targetWrites().get("web")).toBe(1);
  });
});

describe("no read oracle: a task without a valid PoA learns nothing of its target", () => {
  /** A token shaped and bound exactly as a valid one, but signed by a key the broker does not know. */
  async function forged(payload: Record<string, unknown>): Promise<string> {
    const token = await mintPoa({
      key: generateKeyPairSync("ed25519").privateKey,
      agent: AGENT,
      action: "patch",
      target: { kind: "ConfigMap", namespace: NS, name: "creds" },
      approvers: ["alice@example.com", "bob@example.com"],
      changeSha256: taskChangeDigest({ action: "patch", target: { kind: "ConfigMap" }, payload }),
    });
    h.secrets.push(token);
    return token;
  }

  const guess = (value: string) => ({
    patch: [
      { op: "test", path: "/data/password", value },
      { op: "add", path: "/data/seen", value: "1" },
    ],
  });

  test("a right and a wrong guess get the same outcome, and the operator never reads the ConfigMap for them", async () => {
    const since = auditEvents(h.cluster.dataDir).length;
    const outcomes: unknown[] = [];
    for (const [name, value] of [
      ["guess-right", "hunter2"],
      ["guess-wrong", "letmein"],
    ]) {
      const payload = guess(value);
      h.create(h.task(name, { action: "patch", kind: "ConfigMap", target: "creds", payload }, await forged(payload)));
      const t = await h.terminal(name);
      outcomes.push({
        phase: t.status?.phase,
        reason: t.status?.atbResult?.reason,
        tier: t.status?.atbResult?.riskTier,
        message: t.status?.message,
        conditions: t.status?.conditions?.map(c => [c.type, c.status, c.reason, c.message]),
      });
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]).toMatchObject({ phase: "Denied", reason: "poa_signature_invalid" });
    const reads = auditEvents(h.cluster.dataDir)
      .slice(since)
      .filter(
        e =>
          e.userAgent?.startsWith(USER_AGENT) && e.objectRef?.resource === "configmaps" && e.objectRef.name === "creds",
      );
    expect(reads.map(e => `${e.verb} ${e.requestURI}`)).toEqual([]);
    expect(h.get("ConfigMap", "creds")).toMatchObject({ data: { password: "hunter2" } });
  });

  test("the audit log does record the operator's reads of the ConfigMap for a task whose token is good (the check can see reads)", async () => {
    const since = auditEvents(h.cluster.dataDir).length;
    const t = await h.run("guess-with-a-valid-token", {
      action: "patch",
      kind: "ConfigMap",
      target: "creds",
      payload: guess("letmein"),
    });
    expect(t.status?.phase).toBe("Failed");
    const reads = auditEvents(h.cluster.dataDir)
      .slice(since)
      .filter(e => e.userAgent?.startsWith(USER_AGENT) && e.objectRef?.resource === "configmaps" && e.verb === "get");
    expect(reads.length).toBeGreaterThan(0);
  });
});

test("no token leaks anywhere; the ConfigMap's value reaches no log, Event or audit line", () => {
  checkNoLeaks(h);
  // The tasks themselves hold "hunter2" (the guesser wrote it), so only the other surfaces count here.
  const [operatorLog, brokerLog, brokerAudit, events] = h.leakSurfaces();
  for (const [surface, text] of Object.entries({ operatorLog, brokerLog, brokerAudit, events }))
    expect({ surface, leaked: text.includes("hunter2") }).toEqual({ surface, leaked: false });
});
