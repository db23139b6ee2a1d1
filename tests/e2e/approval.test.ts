// Waiting for approval on the whole product (the real API server, admission webhooks, the operator
// under its own RBAC, the reference broker with real OPA): GIVEN a HIGH task (a JSON patch of a
// ConfigMap) whose PoA carries no approvals THEN it goes AwaitingApproval (Authorized=False
// ApprovalRequired, status.approvals, an Event saying who must approve what) and nothing is
// written; WHEN AgentTaskApprovals arrive THEN one with a wrong digest, one signed by a key the
// broker does not know and one the agent signed itself do not count, and alice's and bob's
// (attestations signed with the keys the broker trusts, bound to the task) move it to Completed,
// with at most one decision per approval object and none from the sweep. A task whose approvals
// never come ends Denied ApprovalTimeout by the task deadline, without another broker call.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateDevKeys, signAttestation } from "../../broker/poa";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually } from "../helpers/kube";
import { AGENT, checkNoLeaks, Harness, type Task } from "../helpers/pipeline-tasks";

const h = new Harness(e2eCluster(), "approval", "stack-approval");
const DEADLINE_S = 60;
const SWEEP_S = 5;
const dir = join(e2eCluster().dataDir, "approval-test");
const keys: Record<string, string> = {};
const PATCH = { patch: [{ op: "replace", path: "/data/mode", value: "patched" }] };

type Waiting = Task & {
  metadata: Task["metadata"] & { uid: string };
  status?: Task["status"] & {
    finishedAt?: string;
    approvals?: {
      required?: { count: number; roles?: string[] };
      counted?: string[];
      ignored?: { id?: string; why: string }[];
      seen?: string[];
      sentence?: string;
    };
  };
};
const task = (name: string) => h.kube.get<Waiting>("agenttask", name, h.ns);
const configMap = (name: string) => h.get("ConfigMap", name);

interface AuditLine {
  request_id?: string;
  phase?: string;
  decision?: string;
  reason?: string;
}
/** The broker's decisions (not preflights) for a task, from its audit log. */
const decisions = (uid: string): AuditLine[] =>
  readFileSync(h.stack.auditFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .map(l => JSON.parse(l) as AuditLine)
    .filter(l => l.request_id?.startsWith(`${uid}.`) && l.phase === undefined);

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** The token's con.change_sha256: the change the approvers must attest. */
function digestOf(token: string): string {
  const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as {
    con?: { change_sha256?: string };
  };
  return claims.con!.change_sha256!;
}

async function attestation(who: string, approver: string, changeSha256: string, taskUid: string): Promise<string> {
  const a = await signAttestation({ key: readFileSync(keys[who]!, "utf8"), approver, changeSha256, taskUid });
  h.secrets.push(a);
  return a;
}

function approve(name: string, taskName: string, attestationJws: string): void {
  h.create({
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTaskApproval",
    metadata: { name, namespace: h.ns },
    spec: { taskRef: { name: taskName }, attestation: attestationJws },
  });
}

/** Creates a patch task on a ConfigMap whose PoA carries no approvals; returns its token. */
async function submit(name: string, target: string): Promise<string> {
  const token = await h.token("patch", "ConfigMap", target, { approvers: [], payload: PATCH });
  h.create(h.task(name, { action: "patch", kind: "ConfigMap", target, payload: PATCH }, token));
  return token;
}

beforeAll(async () => {
  for (const who of ["alice", "bob", "mallory", "agent"])
    keys[who] = (await generateDevKeys(join(dir, "keys"), "EdDSA", who)).privateKeyFile;
  // The broker knows alice and bob by their public keys; mallory's and the agent's keys are nobody's.
  const approvers = ["alice", "bob"].map(who => ({
    id: `${who}@example.com`,
    keys: [keys[who]!.replace(/\.key$/, ".pub")],
  }));
  await h.start(
    { ATB_TASK_DEADLINE_SECONDS: String(DEADLINE_S), ATB_SWEEP_INTERVAL_SECONDS: String(SWEEP_S) },
    { brokerTrust: { trust: { approvers } } },
  );
  for (const name of ["flags", "quiet"])
    h.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: h.ns }, data: { mode: "initial" } });
});
afterAll(() => h.stop());

test("a HIGH task waits for approval; a wrong digest, an unknown key and the agent's own key do not count; alice and bob complete it", async () => {
  // The task nobody approves runs alongside (another ConfigMap): its deadline passes meanwhile.
  await submit("never-approved", "quiet");
  const token = await submit("patch-flags", "flags");
  const waiting = await eventually("patch-flags AwaitingApproval", 60_000, () => {
    const t = task("patch-flags");
    return t.status?.phase === "AwaitingApproval" ? t : undefined;
  });
  const uid = waiting.metadata.uid;
  expect(waiting.status?.conditions).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ type: "Authorized", status: "False", reason: "ApprovalRequired" }),
    ]),
  );
  expect(waiting.status?.atbResult).toMatchObject({ allowed: false, riskTier: "HIGH" });
  expect(waiting.status?.approvals).toMatchObject({ required: { count: 2 }, counted: [], seen: [] });
  expect(waiting.status?.approvals?.sentence).toMatch(
    /^HIGH: 2 distinct approvers other than the agent must approve the patch of ConfigMap approval\/flags/,
  );
  // The Event follows the status write (beside the workers, lib/runtime/follow-ups.ts).
  const event = await eventually("the ApprovalRequired Event", 10_000, () =>
    (
      JSON.parse(
        h.kube.run(["get", "events", "-n", h.ns, "--field-selector", `involvedObject.uid=${uid}`, "-o", "json"]),
      ) as { items: { reason: string; message: string }[] }
    ).items.find(e => e.reason === "ApprovalRequired"),
  );
  expect(event?.message).toContain("AwaitingApproval: waiting for approval: HIGH: 2 distinct approvers");
  expect(decisions(uid)).toHaveLength(1);
  expect(configMap("flags").data?.mode).toBe("initial");

  // Three approvals that must not count.
  const digest = digestOf(token);
  approve(
    "wrong-digest",
    "patch-flags",
    await attestation("alice", "alice@example.com", `sha256:${"0".repeat(64)}`, uid),
  );
  approve("unknown-key", "patch-flags", await attestation("mallory", "mallory@example.com", digest, uid));
  approve("agent-itself", "patch-flags", await attestation("agent", AGENT, digest, uid));
  const ignored = await eventually("three approvals decided", 60_000, () => {
    const t = task("patch-flags");
    return t.status?.approvals?.seen?.length === 3 ? t : undefined;
  });
  expect(ignored.status?.phase).toBe("AwaitingApproval");
  expect(ignored.status?.approvals?.counted).toEqual([]);
  expect(ignored.status?.approvals?.ignored?.map(i => i.why).sort()).toEqual([
    "approver_unknown",
    "approver_unknown",
    "change_digest_mismatch",
  ]);
  // At most one decision per approval object; the sweeps (every 5 s) add none.
  const afterBad = decisions(uid).length;
  expect(afterBad).toBeGreaterThanOrEqual(2);
  expect(afterBad).toBeLessThanOrEqual(4);
  await sleep(2 * SWEEP_S * 1000 + 1000);
  expect(decisions(uid)).toHaveLength(afterBad);
  expect(configMap("flags").data?.mode).toBe("initial");

  // alice: counted, still one short.
  approve("alice", "patch-flags", await attestation("alice", "alice@example.com", digest, uid));
  const one = await eventually("alice counted", 60_000, () => {
    const t = task("patch-flags");
    return t.status?.approvals?.counted?.length === 1 ? t : undefined;
  });
  expect(one.status?.phase).toBe("AwaitingApproval");
  expect(one.status?.approvals?.counted).toEqual(["alice@example.com"]);
  expect(decisions(uid)).toHaveLength(afterBad + 1);

  // bob: two distinct approvers, the change is applied.
  approve("bob", "patch-flags", await attestation("bob", "bob@example.com", digest, uid));
  const done = (await h.terminal("patch-flags", 60_000)) as Waiting;
  expect(done.status?.phase).toBe("Completed");
  expect(done.status?.approvals?.counted).toEqual(["alice@example.com", "bob@example.com"]);
  expect(done.status?.approvals?.seen).toHaveLength(5);
  expect(configMap("flags").data?.mode).toBe("patched");
  const all = decisions(uid);
  expect(all).toHaveLength(afterBad + 2);
  expect(all.at(-1)?.decision).toBe("allow");
  // The operator wrote the ConfigMap once.
  expect(h.targetWrites().get("flags")).toBe(1);
});

test("a task whose approvals never come ends Denied ApprovalTimeout by its deadline, with one broker decision", async () => {
  const t = (await h.terminal("never-approved", (DEADLINE_S + 30) * 1000)) as Waiting;
  expect(t.status?.phase).toBe("Denied");
  expect(t.status?.conditions).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ type: "Authorized", status: "False", reason: "ApprovalTimeout" }),
      expect.objectContaining({ type: "Succeeded", status: "False", reason: "ApprovalTimeout" }),
    ]),
  );
  expect(t.status?.message).toMatch(/deadline/);
  const waited = (Date.parse(t.status!.finishedAt!) - Date.parse(t.metadata.creationTimestamp)) / 1000;
  expect(waited).toBeGreaterThanOrEqual(DEADLINE_S);
  expect(waited).toBeLessThanOrEqual(DEADLINE_S + SWEEP_S + 5);
  expect(decisions(t.metadata.uid)).toHaveLength(1);
  expect(configMap("quiet").data?.mode).toBe("initial");
});

test("no token or attestation in the logs, the audit, Events or the tasks as stored", () => {
  checkNoLeaks(h);
});
