// `atb approve` against an in-memory API server (tests/helpers/fake-kube.ts). GIVEN a task WHEN an
// approver runs approve THEN the change is shown, nothing is created without a yes, and the
// AgentTaskApproval created carries an attestation that the broker's own verifier
// (broker/attestations.ts) counts for exactly this task and change; finished tasks, Plan tasks,
// changes whose digest cannot be computed or does not match are refused with a sentence.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { approve, readKey, Refused, type ApprovePorts } from "../../clients/cli/approve";
import type { CliKube } from "../../clients/cli/kube";
import { approvalsPath, taskPath, type TaskView } from "../../clients/cli/task";
import { attestationApprovals } from "../../broker/attestations";
import { createKeySet } from "../../broker/keys";
import { parseTrust } from "../../broker/trust";
import { taskChangeDigest } from "../../capabilities/change";
import { KubeError } from "../../capabilities/lib/kube";
import { FakeKube } from "../helpers/fake-kube";

const NS = "production";
const TARGET = { kind: "Deployment", name: "web", namespace: NS };
const TOKEN_SECRET_PART = "c2VjcmV0LXNpZ25hdHVyZQ";

function keyPair(): { key: KeyObject; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { key: privateKey, pub: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

function cliKube(fake: FakeKube): CliKube {
  return {
    request: (req, dryRun) => fake.request(req, dryRun),
    create: <T>(ns: string, plural: string, body: unknown) =>
      fake.request<T>({ method: "POST", path: `/apis/atb.siemens.com/v1alpha1/namespaces/${ns}/${plural}`, body }),
    close: () => Promise.resolve(),
  };
}

/** A token whose payload binds `digest` (the signature part is a placeholder: nobody verifies it here). */
function tokenBinding(digest: string): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${enc({ alg: "EdDSA" })}.${enc({ jti: "j1", con: { change_sha256: digest } })}.${TOKEN_SECRET_PART}`;
}

interface World {
  fake: FakeKube;
  lines: string[];
  asked: string[];
  ports: ApprovePorts;
  task: TaskView;
}

function world(
  o: { phase?: string; spec?: Partial<NonNullable<TaskView["spec"]>>; answer?: boolean; status?: object } = {},
) {
  const fake = new FakeKube();
  const spec = {
    agentId: "spiffe://atb.example.com/agent/deployer",
    action: "scale",
    target: { kind: "Deployment", name: "web", namespace: NS },
    payload: { replicas: 7, reason: "traffic" },
    ...o.spec,
  };
  fake.put(taskPath(NS, "scale-web"), {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name: "scale-web", namespace: NS },
    spec,
    status: { phase: o.phase ?? "AwaitingApproval", ...o.status },
  } as never);
  const lines: string[] = [];
  const asked: string[] = [];
  const w: World = {
    fake,
    lines,
    asked,
    task: fake.read(taskPath(NS, "scale-web")) as TaskView,
    ports: {
      kube: cliKube(fake),
      out: l => lines.push(l),
      confirm: q => {
        asked.push(q);
        return Promise.resolve(o.answer ?? true);
      },
    },
  };
  return w;
}

const approvalsOf = (fake: FakeKube) =>
  fake.audit.filter(e => e.method === "POST" && e.path === approvalsPath(NS) && !e.dryRun);

async function counted(attestation: string, pub: string, ctx: { changeSha256: string; taskUid: string }) {
  const trust = parseTrust({ approvers: [{ id: "alice@example.com", keys: [pub] }] });
  const approver = trust.approvers[0]!;
  const approvers = new Map([[approver.key, { approver, keys: await createKeySet(approver) }]]);
  return attestationApprovals([attestation], approvers, {
    ...ctx,
    poaJti: "another-jti",
    nowS: Math.floor(Date.now() / 1000),
    clockSkewS: 30,
    maxLifetimeS: 3600,
  });
}

describe("atb approve", () => {
  test("GIVEN a task awaiting approval WHEN the approver says yes THEN an approval the broker counts is created", async () => {
    const w = world({ status: { approvals: { sentence: "2 approvers must approve (HIGH)", counted: ["bob"] } } });
    const { key, pub } = keyPair();
    const r = await approve({ namespace: NS, name: "scale-web", key, approver: "alice@example.com" }, w.ports);
    const digest = taskChangeDigest({ action: "scale", target: TARGET, payload: { replicas: 7, reason: "traffic" } });
    expect(r.changeSha256).toBe(digest);
    expect(w.asked).toHaveLength(1);
    expect(w.asked[0]).toContain(digest);
    const text = w.lines.join("\n");
    expect(text).toContain("replicas: 7");
    expect(text).toContain("2 approvers must approve (HIGH)");
    expect(text).toContain("counted:  bob");
    const posts = approvalsOf(w.fake);
    expect(posts).toHaveLength(1);
    const created = w.fake.read(`${approvalsPath(NS)}/${r.approval}`) as unknown as {
      spec: { taskRef: { name: string }; attestation: string };
    };
    expect(created.spec.taskRef.name).toBe("scale-web");
    const uid = w.task.metadata!.uid!;
    const ok = await counted(created.spec.attestation, pub, { changeSha256: digest, taskUid: uid });
    expect(ok.approvals.map(a => a.raw_id)).toEqual(["alice@example.com"]);
    // The same attestation for another task or another change does not count.
    const other = await counted(created.spec.attestation, pub, { changeSha256: digest, taskUid: "other-uid" });
    expect(other.ignored.map(i => i.why)).toEqual(["binding_mismatch"]);
    const changed = await counted(created.spec.attestation, pub, {
      changeSha256: `sha256:${"0".repeat(64)}`,
      taskUid: uid,
    });
    expect(changed.ignored.map(i => i.why)).toEqual(["change_digest_mismatch"]);
    expect(text).not.toContain(created.spec.attestation);
  });

  test("GIVEN the approver answers no THEN nothing is signed or created", async () => {
    const w = world({ answer: false });
    await expect(
      approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "alice@example.com" }, w.ports),
    ).rejects.toThrow("not approved: nothing was signed or created");
    expect(w.asked).toHaveLength(1);
    expect(approvalsOf(w.fake)).toHaveLength(0);
  });

  test("--yes does not ask", async () => {
    const w = world();
    await approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "a", yes: true }, w.ports);
    expect(w.asked).toHaveLength(0);
    expect(approvalsOf(w.fake)).toHaveLength(1);
  });

  test.each([
    ["Completed", /is finished \(Completed\)/],
    ["Denied", /is finished \(Denied\)/],
    ["Failed", /is finished \(Failed\)/],
    ["Planned", /is finished \(Planned\)/],
    ["Executing", /already authorized/],
  ])("GIVEN a task in %s THEN it is refused before any question", async (phase, message) => {
    const w = world({ phase });
    await expect(
      approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "a" }, w.ports),
    ).rejects.toThrow(message);
    expect(w.asked).toHaveLength(0);
    expect(approvalsOf(w.fake)).toHaveLength(0);
  });

  test("GIVEN a Plan task THEN it is refused: a plan is never applied", async () => {
    const w = world({ phase: "Planned", spec: { mode: "Plan" } });
    await expect(
      approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "a" }, w.ports),
    ).rejects.toThrow(/is a Plan task: it never applies anything/);
  });

  test("GIVEN a task that does not exist THEN the message says so", async () => {
    const w = world();
    await expect(approve({ namespace: NS, name: "nope", key: keyPair().key, approver: "a" }, w.ports)).rejects.toThrow(
      "no AgentTask nope in namespace production",
    );
  });

  test("GIVEN an update-config whose referenced Secret is missing THEN the digest cannot be computed and nothing is asked", async () => {
    const w = world({
      spec: {
        action: "update-config",
        target: { kind: "Secret", name: "db", namespace: NS },
        payload: { data: { password: { valueFrom: { secretKeyRef: { name: "db-next", key: "password" } } } } },
      },
    });
    await expect(
      approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "a" }, w.ports),
    ).rejects.toThrow(/cannot compute the change digest of production\/scale-web/);
    expect(w.asked).toHaveLength(0);
    expect(approvalsOf(w.fake)).toHaveLength(0);
  });

  test("GIVEN a PoA that binds another change THEN it is refused, and the token is not in the message", async () => {
    const w = world({ spec: { poaToken: tokenBinding(`sha256:${"a".repeat(64)}`) } });
    const err = await approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "a" }, w.ports).catch(
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Refused);
    expect((err as Error).message).toMatch(/its PoA binds change sha256:a{64}, not the task's change/);
    expect((err as Error).message).not.toContain(TOKEN_SECRET_PART);
    expect(w.lines.join("\n")).not.toContain(TOKEN_SECRET_PART);
  });

  test("GIVEN a PoA bound to the task's change THEN the token is never printed", async () => {
    const digest = taskChangeDigest({ action: "scale", target: TARGET, payload: { replicas: 7, reason: "traffic" } });
    const w = world({ spec: { poaToken: tokenBinding(digest) } });
    await approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "a", yes: true }, w.ports);
    expect(w.lines.join("\n")).not.toContain(TOKEN_SECRET_PART);
    expect(approvalsOf(w.fake)).toHaveLength(1);
  });

  test("GIVEN a plan whose digest is not the task's change THEN it is refused", async () => {
    const w = world({ status: { plan: { changeSha256: `sha256:${"b".repeat(64)}`, diff: "" } } });
    await expect(
      approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "a" }, w.ports),
    ).rejects.toThrow(/its plan shows change sha256:b{64} but the task's change is/);
  });

  test("GIVEN RBAC refuses the create THEN the message says so", async () => {
    const w = world();
    w.fake.onRequest(r =>
      r.method === "POST"
        ? new KubeError(403, "Forbidden", 'agenttaskapprovals.atb.siemens.com is forbidden: User "eve" cannot create')
        : undefined,
    );
    await expect(
      approve({ namespace: NS, name: "scale-web", key: keyPair().key, approver: "a", yes: true }, w.ports),
    ).rejects.toThrow(/Kubernetes RBAC refused it: .*User "eve" cannot create/);
  });

  test("readKey names the option and never the key", () => {
    const dir = mkdtempSync(join(tmpdir(), "atb-cli-"));
    writeFileSync(
      join(dir, "bad.pem"),
      "-----BEGIN PRIVATE KEY-----\nnot-a-key-SECRETISH\n-----END PRIVATE KEY-----\n",
    );
    expect(() => readKey(undefined)).toThrow(/--key is required/);
    expect(() => readKey(join(dir, "missing.pem"))).toThrow(/--key .*missing.pem: cannot read it \(ENOENT\)/);
    let message = "";
    try {
      readKey(join(dir, "bad.pem"));
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/not a PEM private key/);
    expect(message).not.toContain("SECRETISH");
  });
});
