// GIVEN the whole product on the real control plane (the reference broker with real OPA on
// policies/, the operator with its webhooks), WHEN an agent presents a PoA whose con.change_sha256
// names one change and a task that carries another (docs/authorization.md, "The change digest"),
// THEN the task is Denied change_mismatch and nothing is written; the token of the task's own
// change Completes it; a MEDIUM task whose token names no change is Denied change_digest_required;
// and the digest the agent computes with a client (here the Python one) is the one the operator
// asks about. Rollbacks bind the template hash the controllers wrote on their history.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { canonicalChange, templateHashOf, type ChangeResolution } from "../../capabilities/change";
import { changeDigest, valueDigest } from "../../capabilities/lib/change-digest";
import { e2eCluster } from "../helpers/cluster-env";
import {
  AGENT,
  APPROVERS,
  checkAtMostOnce,
  checkNoLeaks,
  executed,
  Harness,
  images,
  revisionOf,
  type Action,
  type Kind,
  type Obj,
  type Task,
} from "../helpers/pipeline-tasks";

const ROOT = join(__dirname, "..", "..");
const h = new Harness(e2eCluster(), "change-digest", "stack-change-digest");

beforeAll(() => h.start({ ATB_ROLLOUT_TIMEOUT_SECONDS: "150" }));
afterAll(() => h.stop());

interface Submit {
  action: Action;
  kind: Kind;
  target: string;
  payload: Record<string, unknown>;
  /** What the token binds: a digest, or undefined for a token without con.change_sha256. */
  changeSha256: string | undefined;
  approvers?: string[];
}

/** Mints the token exactly as asked (no binding of its own), creates the task, waits for the end. */
async function submit(name: string, s: Submit): Promise<Task> {
  const token = await h.stack.mint({
    agent: AGENT,
    action: s.action,
    target: { kind: s.kind, namespace: h.ns, name: s.target },
    approvers: s.approvers ?? APPROVERS.HIGH,
    maxReplicas: 10,
    ttlSeconds: 300,
    changeSha256: s.changeSha256,
  });
  h.secrets.push(token);
  h.create(h.task(name, { action: s.action, kind: s.kind, target: s.target, payload: s.payload }, token));
  return h.terminal(name);
}

/** The digest of the change a task with this payload asks for (what an honest token binds). */
const digestOf = (action: Action, kind: Kind, payload: Record<string, unknown>, resolved?: ChangeResolution) =>
  changeDigest(canonicalChange({ action, target: { kind }, payload }, resolved));

function denied(t: Task, reason: string, tier: string): void {
  expect({ phase: t.status?.phase, atb: t.status?.atbResult }).toEqual({
    phase: "Denied",
    atb: expect.objectContaining({ allowed: false, reason, riskTier: tier }),
  });
  expect(executed(t)).toBe(false);
}

function completed(t: Task, tier: string): void {
  expect({ phase: t.status?.phase, message: t.status?.message }).toEqual({
    phase: "Completed",
    message: expect.any(String),
  });
  expect(t.status?.atbResult).toMatchObject({ allowed: true, reason: "allowed", riskTier: tier });
}

/** What a write would change on a workload: generation, spec, annotations (the marker). */
const snapshot = (o: Obj) => [o.metadata.generation, o.spec, o.metadata.annotations ?? {}];

describe("deploy: the token names a harmless manifest, the task carries another", () => {
  const NAME = "cd-web";
  const manifest = (extra: Record<string, unknown> = {}) =>
    h.workload("Deployment", NAME, "nginx:1.28", { replicas: 2, ...extra }) as Record<string, unknown>;
  const harmless = manifest();
  // As harmless to the policy, but not what was approved: a second container from the same registry.
  const other = manifest({
    template: {
      metadata: { labels: { app: NAME } },
      spec: {
        containers: [
          { name: "app", image: "nginx:1.28" },
          { name: "sidecar", image: "nginx:1.29", env: [{ name: "EXFIL", value: "1" }] },
        ],
        terminationGracePeriodSeconds: 0,
      },
    },
  });

  test("Denied change_mismatch, and the Deployment is not written", async () => {
    const before = await h.ready("Deployment", NAME, "nginx:1.27");
    const t = await submit("deploy-other-manifest", {
      action: "deploy",
      kind: "Deployment",
      target: NAME,
      payload: { manifest: other },
      changeSha256: digestOf("deploy", "Deployment", { manifest: harmless }),
    });
    denied(t, "change_mismatch", "HIGH");
    expect(t.status?.message).toContain("change_mismatch");
    expect(snapshot(h.get("Deployment", NAME))).toEqual(snapshot(before));
    expect(h.owned("ReplicaSet", before)).toHaveLength(1);
    expect(h.targetWrites().get(NAME) ?? 0).toBe(0);
  });

  test("the token of the task's own manifest Completes it, and the manifest's template runs", async () => {
    const t = await submit("deploy-harmless", {
      action: "deploy",
      kind: "Deployment",
      target: NAME,
      payload: { manifest: harmless },
      changeSha256: digestOf("deploy", "Deployment", { manifest: harmless }),
    });
    completed(t, "HIGH");
    const d = h.get("Deployment", NAME);
    expect(images(d.spec!.template)).toEqual(["nginx:1.28"]);
    expect(h.targetWrites().get(NAME)).toBe(1);
  });

  test("a token without a digest is Denied change_digest_required (HIGH)", async () => {
    const before = h.get("Deployment", NAME);
    const t = await submit("deploy-unbound", {
      action: "deploy",
      kind: "Deployment",
      target: NAME,
      payload: { image: "nginx:1.29" },
      changeSha256: undefined,
    });
    denied(t, "change_digest_required", "HIGH");
    expect(snapshot(h.get("Deployment", NAME))).toEqual(snapshot(before));
  });
});

describe("restart (MEDIUM) and scale (LOW)", () => {
  const NAME = "cd-api";
  const restartedAt = (o: Obj) =>
    (o.spec?.template as { metadata?: { annotations?: Record<string, string> } } | undefined)?.metadata?.annotations?.[
      "kubectl.kubernetes.io/restartedAt"
    ];

  test("a MEDIUM restart whose token names no change: Denied change_digest_required, no restart", async () => {
    const before = await h.ready("Deployment", NAME, "nginx:1.27");
    const t = await submit("restart-unbound", {
      action: "restart",
      kind: "Deployment",
      target: NAME,
      payload: {},
      changeSha256: undefined,
      approvers: APPROVERS.MEDIUM,
    });
    denied(t, "change_digest_required", "MEDIUM");
    const after = h.get("Deployment", NAME);
    expect(restartedAt(after)).toBeUndefined();
    expect(snapshot(after)).toEqual(snapshot(before));
  });

  test("the digest the Python client prints binds the restart, which Completes", async () => {
    const py = spawnSync(
      "python3",
      ["clients/python/change_digest.py", "--action", "restart", "--kind", "Deployment", "--payload", "{}"],
      { cwd: ROOT, encoding: "utf8" },
    );
    expect({ status: py.status, stderr: py.stderr }).toEqual({ status: 0, stderr: "" });
    const digest = py.stdout.trim();
    expect(digest).toBe(changeDigest({ restart: true }));
    const t = await submit("restart-bound", {
      action: "restart",
      kind: "Deployment",
      target: NAME,
      payload: { reason: "the reason is not part of the change" },
      changeSha256: digest,
      approvers: APPROVERS.MEDIUM,
    });
    completed(t, "MEDIUM");
    expect(restartedAt(h.get("Deployment", NAME))).toEqual(expect.any(String));
  });

  test("a LOW scale whose token names another replica count: Denied change_mismatch (a digest is always checked)", async () => {
    const before = await h.quiet("Deployment", NAME);
    const t = await submit("scale-other-count", {
      action: "scale",
      kind: "Deployment",
      target: NAME,
      payload: { replicas: 3 },
      changeSha256: changeDigest({ replicas: 4 }),
      approvers: APPROVERS.LOW,
    });
    denied(t, "change_mismatch", "LOW");
    expect(h.get("Deployment", NAME).spec?.replicas).toBe(before.spec?.replicas);
  });
});

test("update-config: a token for another value of the key is Denied change_mismatch; values enter only as digests", async () => {
  h.create({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "cd-flags", namespace: h.ns },
    data: { checkout: "off" },
  });
  const approved = digestOf("update-config", "ConfigMap", { data: { checkout: "on" } });
  expect(approved).toBe(changeDigest({ data: { checkout: valueDigest("on") }, remove: [] }));
  const t = await submit("config-other-value", {
    action: "update-config",
    kind: "ConfigMap",
    target: "cd-flags",
    payload: { data: { checkout: "everyone-gets-admin" } },
    changeSha256: approved,
    approvers: APPROVERS.MEDIUM,
  });
  denied(t, "change_mismatch", "MEDIUM");
  expect(h.get("ConfigMap", "cd-flags").data).toEqual({ checkout: "off" });
  completed(
    await submit("config-approved-value", {
      action: "update-config",
      kind: "ConfigMap",
      target: "cd-flags",
      payload: { data: { checkout: "on" } },
      changeSha256: approved,
      approvers: APPROVERS.MEDIUM,
    }),
    "MEDIUM",
  );
  expect(h.get("ConfigMap", "cd-flags").data).toEqual({ checkout: "on" });
});

describe("rollback: the token names the revision and the template hash the controllers wrote", () => {
  test.each(["StatefulSet", "DaemonSet"] as const)(
    "%s: its ControllerRevisions carry a hash label; a token with another hash is Denied change_mismatch, the right one Completes",
    async kind => {
      const name = `cd-rb-${kind.toLowerCase()}`;
      await h.ready(kind, name, "nginx:1.27");
      h.kube.run(["set", "image", `${kind.toLowerCase()}/${name}`, "app=nginx:1.28", "-n", h.ns]);
      const before = await h.rolledOut(kind, name);
      const history = h.owned("ControllerRevision", before);
      expect(history.map(revisionOf)).toEqual([1, 2]);
      const hash = templateHashOf(history[0]!);
      expect(hash).toEqual(expect.stringMatching(/^[a-z0-9]+$/));
      const wrong = await submit(`rb-wrong-${kind.toLowerCase()}`, {
        action: "rollback",
        kind,
        target: name,
        payload: { revision: 1 },
        changeSha256: digestOf("rollback", kind, { revision: 1 }, { templateHash: `${hash}x` }),
      });
      denied(wrong, "change_mismatch", "HIGH");
      expect(snapshot(h.get(kind, name))).toEqual(snapshot(before));
      const right = await submit(`rb-right-${kind.toLowerCase()}`, {
        action: "rollback",
        kind,
        target: name,
        payload: { revision: 1 },
        changeSha256: digestOf("rollback", kind, { revision: 1 }, { templateHash: hash }),
      });
      completed(right, "HIGH");
      expect(images(h.get(kind, name).spec!.template)).toEqual(["nginx:1.27"]);
    },
  );

  test("Deployment, previous revision: the stack's minter resolves it as the operator does (pod-template-hash)", async () => {
    const name = "cd-rb-deployment";
    await h.ready("Deployment", name, "nginx:1.27");
    h.kube.run(["set", "image", `deployment/${name}`, "app=nginx:1.28", "-n", h.ns]);
    const before = await h.rolledOut("Deployment", name);
    const rs1 = h.owned("ReplicaSet", before)[0]!;
    expect(templateHashOf(rs1)).toEqual(rs1.metadata.labels?.["pod-template-hash"]);
    // h.run binds the payload's change: stack.mint looks up "previous" (revision 1) and its hash.
    const t = await h.run("rb-previous-deployment", { action: "rollback", kind: "Deployment", target: name });
    completed(t, "HIGH");
    expect(images(h.get("Deployment", name).spec!.template)).toEqual(["nginx:1.27"]);
  });
});

test("every change was written at most once, and no token leaked", async () => {
  await checkAtMostOnce(h);
  checkNoLeaks(h);
});
