// Shards and the open label on the real stack (docs/deployment.md, "Shards"): GIVEN two watcher
// processes of the same module against one API server and broker, ATB_SHARDS=2 with ATB_SHARD=0
// (the stack's operator, which also serves the admission webhooks, registered once) and
// ATB_SHARD=1 (a watch-only process with metrics and Pepr ports of its own), WHEN agents create
// tasks over several targets THEN each task carries the shard of its target and is processed by
// exactly that watcher (its log and the API server's audit log, where each watcher's User-Agent
// names its shard), every task ends Completed or Denied and leaves the watches (no status.finishedAt
// selects the open ones); while shard 1
// is down its tasks wait (shard 0, sweeping every 5 s, does not take them) and they finish once it
// is back; an approval reaches the waiting task's shard at once (shard 1 sweeps only every 300 s);
// a restarted watcher receives none of the finished tasks; and admission keeps the shard label.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateDevKeys, signAttestation } from "../../broker/poa";
import { shardOf } from "../../capabilities/lib/shard";
import { POLICY_NAME } from "../../capabilities/lib/scope";
import { LABEL_MESSAGES } from "../../capabilities/agent-task/admission";
import { LABEL_SHARD, OPEN_SELECTOR } from "../../crds/agenttask";
import { startStack, type Stack, type Watcher } from "../../tools/stack";
import { auditEvents } from "../helpers/audit";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";
import { scanForSecrets } from "../helpers/secrets";

const cluster = e2eCluster();
const NS = "shards";
const BARE = "shards-no-webhook";
const AGENT = "spiffe://atb.example.com/agent/planning-agent";
const SHARDS = 2;
const minted: string[] = [];
let stack: Stack;
let kube: Kube;
let shard1: Watcher;
let aliceKey = "";

interface Task {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: { target: { name: string } };
  status?: { phase?: string; atbResult?: { reason?: string } };
}

/** Deployment names by the shard their tasks land on (the hash of the target). */
const targets: Record<"0" | "1", string[]> = { "0": [], "1": [] };
const shardOfTarget = (name: string) =>
  shardOf({ spec: { target: { kind: "Deployment", namespace: NS, name } } } as never, SHARDS) as "0" | "1";
for (let i = 0; targets["0"].length < 6 || targets["1"].length < 6; i++) {
  const name = `app-${i}`;
  const s = shardOfTarget(name);
  if (targets[s].length < 6) targets[s].push(name);
}
// Per shard: three targets for the 20 tasks, one for approvals, two for the outage.
const work = [...targets["0"].slice(0, 3), ...targets["1"].slice(0, 3)];
const approvalTarget = { "0": targets["0"][3], "1": targets["1"][3] };
const outage = { "0": targets["0"][4], "1": targets["1"].slice(4, 6) };

function deployment(name: string) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "app", image: "nginx:1.27" }] } },
    },
  };
}

async function mint(target: string, replicas: number, approvers?: string[]): Promise<string> {
  const token = await stack.mint({
    agent: AGENT,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name: target },
    maxReplicas: 10,
    ttlSeconds: 300, // the broker's longest
    approvers,
    payload: { replicas },
  });
  minted.push(token);
  return token;
}

function scaleTask(name: string, target: string, replicas: number, token: string, namespace = NS) {
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name, namespace },
    spec: {
      agentId: AGENT,
      poaToken: token,
      action: "scale",
      target: { kind: "Deployment", name: target, namespace },
      payload: { replicas },
    },
  };
}

function create(obj: object): void {
  const r = kube.create(obj);
  if (!r.ok) throw new Error(`creating failed: ${r.stderr}`);
}

const task = (name: string, ns = NS) => kube.get<Task>("agenttask", name, ns);
const ENDED = ["Completed", "Denied", "Failed"];
const ended = (name: string, timeoutMs = 180_000) =>
  eventually(`task ${name} finished`, timeoutMs, () => {
    const t = task(name);
    return ENDED.includes(t.status?.phase ?? "") ? t : undefined;
  });

/** Names of this file's tasks with a transition line in an operator's log. */
function transitioned(logs: string): Set<string> {
  const names = new Set<string>();
  for (const line of logs.split("\n")) {
    if (!line.includes('"transition"')) continue;
    try {
      const l = JSON.parse(line) as { message?: string; namespace?: string; name?: string };
      if (l.message === "transition" && l.namespace === NS && l.name) names.add(l.name);
    } catch {
      // Pepr's lines and partial lines are not ours.
    }
  }
  return names;
}
const shardLogs = () => ({ "0": transitioned(stack.operator.logs()), "1": transitioned(shard1Logs()) });
/** Every shard-1 process of this file (the watcher is restarted), one log file each. */
const shard1Files: string[] = [];
const shard1Logs = () => shard1Files.map(f => readFileSync(f, "utf8")).join("\n");

/** The shards (from the User-Agent) whose successful writes to this task the API server recorded. */
function auditedShards(name: string): Set<string> {
  const out = new Set<string>();
  for (const e of auditEvents(cluster.dataDir)) {
    const r = e.objectRef;
    if (r?.resource !== "agenttasks" || r.namespace !== NS || r.name !== name || e.stage !== "ResponseComplete")
      continue;
    if (e.verb !== "patch" || (e.responseStatus?.code ?? 0) >= 300) continue;
    const m = /^atb-operator\/[^ ]+ \(shard (\d+)\/2\)$/.exec(e.userAgent ?? "");
    out.add(m ? m[1] : `unsharded: ${e.userAgent}`);
  }
  return out;
}

/** Successful metadata writes of the task (PATCH without the status subresource), by anyone. */
function taskPatches(name: string): number {
  let n = 0;
  for (const e of auditEvents(cluster.dataDir)) {
    const r = e.objectRef;
    if (r?.resource !== "agenttasks" || r.namespace !== NS || r.name !== name || r.subresource) continue;
    if (e.stage === "ResponseComplete" && e.verb === "patch" && (e.responseStatus?.code ?? 0) < 300) n++;
  }
  return n;
}

async function metric(w: { metrics(): Promise<string> }, series: string): Promise<number> {
  const line = (await w.metrics()).split("\n").find(l => l.startsWith(`${series} `));
  return line ? Number(line.split(" ")[1]) : NaN;
}

async function startShard1(): Promise<Watcher> {
  // Shard 1 sweeps only every 300 s: what it does within a test, its watch told it.
  const w = await stack.startWatcher({ ATB_SHARD: "1", ATB_SWEEP_INTERVAL_SECONDS: "300" });
  shard1Files.push(w.handle.logFile);
  return w;
}

beforeAll(async () => {
  aliceKey = (await generateDevKeys(join(cluster.dataDir, "shards-keys"), "EdDSA", "alice")).privateKeyFile;
  stack = await startStack({
    cluster,
    workDir: join(cluster.dataDir, "stack-shards"),
    namespaces: [NS],
    operatorEnv: { ATB_SHARDS: String(SHARDS), ATB_SHARD: "0", ATB_SWEEP_INTERVAL_SECONDS: "5" },
    brokerTrust: { trust: { approvers: [{ id: "alice@example.com", keys: [aliceKey.replace(/\.key$/, ".pub")] }] } },
  });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  shard1 = await startShard1();
  for (const name of [...targets["0"], ...targets["1"]]) kube.applyObject(deployment(name));
});

afterAll(async () => {
  kube?.try(["delete", "namespace", BARE, "--ignore-not-found", "--wait=false"]);
  await stack?.stop();
});

test("the targets' hashes split them over both shards (the test's own premise)", () => {
  expect(work.map(shardOfTarget)).toEqual(["0", "0", "0", "1", "1", "1"]);
  expect(shardOfTarget(approvalTarget["1"])).toBe("1");
  expect(outage["1"].map(shardOfTarget)).toEqual(["1", "1"]);
});

test("20 tasks over six targets: each carries its target's shard, is processed by exactly that watcher, ends Completed or Denied and is no longer selected as open", async () => {
  const names: string[] = [];
  for (let i = 0; i < 20; i++) {
    // Three rounds over the six targets (2 → 3 → 2 → 3 replicas), then one task on a target of
    // each shard whose token is for another target: Denied.
    const target = i < 18 ? work[i % 6] : work[(i - 18) * 3];
    const replicas = Math.floor(i / 6) % 2 === 0 ? 3 : 2;
    const tokenTarget = i < 18 ? target : work[(i - 18) * 3 + 1];
    const name = `t-${String(i).padStart(2, "0")}`;
    create(scaleTask(name, target, replicas, await mint(tokenTarget, replicas)));
    names.push(name);
  }
  const done = [];
  for (const n of names) done.push(await ended(n));
  const outcome = (t: Task) =>
    `${t.status?.phase}${t.status?.phase === "Completed" ? "" : `: ${t.status?.atbResult?.reason}`}`;
  expect(done.map(outcome)).toEqual([
    ...Array(18).fill("Completed"),
    "Denied: target_mismatch",
    "Denied: target_mismatch",
  ]);

  const logs = shardLogs();
  const owner: Record<string, string> = {};
  for (const t of done) {
    const want = shardOfTarget(t.spec.target.name);
    expect({ task: t.metadata.name, shard: t.metadata.labels?.[LABEL_SHARD] }).toEqual({
      task: t.metadata.name,
      shard: want,
    });
    const by = (["0", "1"] as const).filter(s => logs[s].has(t.metadata.name));
    expect({ task: t.metadata.name, processedBy: by }).toEqual({ task: t.metadata.name, processedBy: [want] });
    owner[t.metadata.name] = want;
  }
  expect(Object.values(owner).filter(s => s === "0")).toHaveLength(10);
  expect(Object.values(owner).filter(s => s === "1")).toHaveLength(10);
  // The API server's own record: every status write of a task by its shard only.
  for (const n of names) expect({ task: n, writers: [...auditedShards(n)] }).toEqual({ task: n, writers: [owner[n]] });
  // What the watches select (the CRD's selectable field): none of them is open any more.
  const open = JSON.parse(
    kube.run(["get", "agenttasks", "-n", NS, `--field-selector=${OPEN_SELECTOR}`, "-o", "json"]),
  ) as { items: { metadata: { name: string } }[] };
  expect(open.items.map(t => t.metadata.name).filter(n => names.includes(n))).toEqual([]);
  // And not one metadata write of a task by the operator: the terminal status write closes it.
  for (const n of names) expect({ task: n, patches: taskPatches(n) }).toEqual({ task: n, patches: 0 });
  expect(await metric(shard1, 'atb_operator_tasks_total{action="scale",phase="Completed"}')).toBe(9);
});

test("while shard 1 is down its tasks wait, unprocessed (shard 0 does not take them); started again, it finishes them", async () => {
  await shard1.stop();
  const sweeps0 = await metric(stack, 'atb_operator_sweeps_total{result="ok"}');
  create(scaleTask("down-a", outage["1"][0], 3, await mint(outage["1"][0], 3)));
  create(scaleTask("down-b", outage["1"][1], 4, await mint(outage["1"][1], 4)));
  create(scaleTask("up-0", outage["0"], 3, await mint(outage["0"], 3)));
  expect((await ended("up-0", 60_000)).status?.phase).toBe("Completed");
  // Shard 0 sweeps every 5 s: at least two sweeps pass while the two tasks sit there.
  await new Promise(r => setTimeout(r, 12_000));
  expect(await metric(stack, 'atb_operator_sweeps_total{result="ok"}')).toBeGreaterThanOrEqual(sweeps0 + 2);
  for (const n of ["down-a", "down-b"]) {
    const t = task(n);
    expect({ task: n, status: t.status, shard: t.metadata.labels?.[LABEL_SHARD] }).toEqual({
      task: n,
      status: undefined,
      shard: "1",
    });
  }

  shard1 = await startShard1();
  for (const n of ["down-a", "down-b"]) expect((await ended(n, 90_000)).status?.phase).toBe("Completed");
  const logs = shardLogs();
  for (const n of ["down-a", "down-b"]) {
    expect({ n, shard0: logs["0"].has(n), shard1: logs["1"].has(n) }).toEqual({ n, shard0: false, shard1: true });
    expect([...auditedShards(n)]).toEqual(["1"]);
  }
  expect(logs["1"].has("up-0")).toBe(false);
});

test("an approval reaches the waiting task's shard at once, and only that shard", async () => {
  const target = approvalTarget["1"];
  // 2 → 5 replicas is a MEDIUM scale: without an approver in the token, the task waits.
  const token = await mint(target, 5, []);
  create(scaleTask("approve-me", target, 5, token));
  const waiting = await eventually("approve-me AwaitingApproval", 60_000, () => {
    const t = task("approve-me");
    return t.status?.phase === "AwaitingApproval" ? t : undefined;
  });
  const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")) as {
    con: { change_sha256: string };
  };
  const attestation = await signAttestation({
    key: readFileSync(aliceKey, "utf8"),
    approver: "alice@example.com",
    changeSha256: claims.con.change_sha256,
    taskUid: waiting.metadata.uid,
  });
  minted.push(attestation);
  const at = Date.now();
  create({
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTaskApproval",
    metadata: { name: "alice-approves", namespace: NS },
    spec: { taskRef: { name: "approve-me" }, attestation },
  });
  const done = await ended("approve-me", 60_000);
  // Well within shard 1's 300 s sweep: its approval watch woke the task.
  expect({ phase: done.status?.phase, withinSeconds: (Date.now() - at) / 1000 < 60 }).toEqual({
    phase: "Completed",
    withinSeconds: true,
  });
  expect(kube.get<{ spec: { replicas: number } }>("deployment", target, NS).spec.replicas).toBe(5);
  expect(shardLogs()["0"].has("approve-me")).toBe(false);
  expect([...auditedShards("approve-me")]).toEqual(["1"]);
});

test("a restarted watcher reads none of the finished tasks (they have status.finishedAt): neither its watch nor its start-up sweep", async () => {
  await shard1.stop();
  const logBefore = shard1Logs().length;
  shard1 = await startShard1();
  // The watch lists as soon as Pepr's store is ready; give it time to deliver anything it has.
  await new Promise(r => setTimeout(r, 8_000));
  expect(await metric(shard1, 'atb_operator_watch_events_total{kind="AgentTask"}')).toBe(0);
  // Its start-up sweep listed the open tasks only (status.finishedAt=, which the real API server
  // selects through the CRD's selectableFields); the 12 Completed and 1 Denied of shard 1 wait
  // for its first full listing, 300 s away.
  expect(await metric(shard1, 'atb_operator_sweeps_total{result="ok"}')).toBe(1);
  expect(await metric(shard1, 'atb_operator_tasks{phase="Completed"}')).toBe(0);
  expect(shard1Logs().slice(logBefore)).not.toContain("cannot select AgentTasks");

  // The watch works (the zero above is not a dead watch): a new task of shard 1 is delivered.
  create(scaleTask("after-restart", work[3], 2, await mint(work[3], 2)));
  expect((await ended("after-restart", 60_000)).status?.phase).toBe("Completed");
  expect(await metric(shard1, 'atb_operator_watch_events_total{kind="AgentTask"}')).toBeGreaterThan(0);
});

test("admission keeps the shard label: it never changes, and a dropped one comes back", async () => {
  const target = approvalTarget["0"];
  create(scaleTask("held", target, 5, await mint(target, 5, [])));
  await eventually("held AwaitingApproval", 60_000, () =>
    task("held").status?.phase === "AwaitingApproval" ? true : undefined,
  );
  const label = (args: string[]) => kube.try(["label", "agenttask", "held", "-n", NS, ...args]);

  const move = label(["--overwrite", `${LABEL_SHARD}=1`]);
  expect(move.ok).toBe(false);
  expect(move.stderr).toContain(LABEL_MESSAGES.shardChanged);
  const drop = label([`${LABEL_SHARD}-`]);
  expect(drop.stderr).toBe("");
  expect(task("held").metadata.labels).toMatchObject({ [LABEL_SHARD]: "0" });
  expect(label(["team=payments"]).ok).toBe(true);
  kube.run(["delete", "agenttask", "held", "-n", NS]);
});

test("where no webhook runs, the scope policy refuses a change of the shard label (and other labels still change)", async () => {
  kube.namespace(BARE);
  // No webhook serves this namespace (the stack's select NS): the task is admitted without labels.
  create(scaleTask("bare", "x", 2, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", BARE));
  expect(task("bare", BARE).metadata.labels ?? {}).toEqual({});
  const add = kube.try(["label", "agenttask", "bare", "-n", BARE, `${LABEL_SHARD}=1`]);
  expect(add.ok).toBe(false);
  expect(add.stderr).toContain(`ValidatingAdmissionPolicy '${POLICY_NAME}'`);
  expect(add.stderr).toContain(LABEL_MESSAGES.shardChanged);
  expect(kube.try(["label", "agenttask", "bare", "-n", BARE, "team=x"]).ok).toBe(true);
});

test("no token or attestation in either watcher's log or the broker's audit", () => {
  const texts = [stack.operator.logs(), shard1Logs(), readFileSync(stack.auditFile, "utf8")];
  expect(scanForSecrets(texts, minted)).toEqual([]);
});
