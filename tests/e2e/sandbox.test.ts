// The README's first command, as a newcomer uses it: `npm run sandbox` starts everything, every
// sample ends in its expected phase and the table shows all six actions; then, against that same
// sandbox, the seed's Python example runs as the seed prints it (samples/seed/python_example.py)
// and creates its task without colliding with a sample, the upstream ATB samples file
// (samples/upstream/agenttasks.yaml) runs one task at a time with minted tokens, the two printed
// commands (mint + apply) submit a task that completes, and Ctrl-C stops every process the
// sandbox started. Runs its own control plane in a scratch folder (not the suite's: another e2e
// file's operator serves namespace production there).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { load } from "js-yaml";
import { readState, isAlive, COMPONENTS } from "../../tools/controlplane/cluster";
import { ensureBinaries } from "../../tools/controlplane/binaries";
import { operatorWrites } from "../helpers/audit";
import { Kube } from "../helpers/kube";
import { ensureVenv, VENV_PYTHON } from "../helpers/python-venv";
import { scanForSecrets } from "../helpers/secrets";

const root = join(__dirname, "..", "..");
const NS = "production";
const TERMINAL = ["Completed", "Denied", "Failed"];
/** The at-most-once marker (capabilities/lib/action/marker.ts): the task that last wrote a target. */
const APPLIED_BY = "atb.siemens.com/applied-by-task";
const APPLIED_TASKS = "atb.siemens.com/applied-tasks";
/** The placeholder every poaToken in the upstream samples file carries. */
const UPSTREAM_PLACEHOLDER = '"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9..."';

interface Expectation {
  name: string;
  phase: string;
  risk: string;
  poa: { approvers?: string[]; maxReplicas?: number };
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message?: string;
}

interface TaskObject {
  metadata: { name: string; uid: string };
  spec: {
    agentId: string;
    action: string;
    target: { kind: string; name: string; namespace: string };
    payload?: Record<string, unknown>;
  };
  status?: {
    phase?: string;
    message?: string;
    atbResult?: { riskTier?: string; requestId?: string; reason?: string };
    conditions?: Condition[];
  };
}

interface DeploymentObject {
  metadata: { generation: number; annotations?: Record<string, string> };
  spec: { template: { spec: { containers: { name: string; image: string }[] } } };
}

let dir = "";
let child: ChildProcess | undefined;
let out = "";
let kube: Kube;
/** Where the sandbox put things, from what it printed. */
let printedKubeconfig = "";
let poaKey = "";
let brokerAudit = "";
const minted: string[] = [];
/** Everything the commands this test ran printed (scanned for tokens at the end). */
const captured: string[] = [];

const progress = (line: string) => process.stderr.write(`[sandbox.test] ${line}\n`);
const redact = (text: string) => minted.reduce((t, tok) => t.split(tok).join("<token>"), text);

function existsShm(): boolean {
  return spawnSync("test", ["-d", "/dev/shm"]).status === 0;
}

/** A PoA from `npm run poa -- mint`, with the key the sandbox's broker trusts; never printed. */
function mint(o: {
  agent: string;
  action: string;
  target: { kind: string; namespace: string; name: string };
  approvers?: string[];
  maxReplicas?: number;
  /** The task's payload: the token binds its change (con.change_sha256), as MEDIUM and up require. */
  payload?: Record<string, unknown>;
  /** A rollback's: the pod-template-hash of the revision it restores. */
  templateHash?: string;
}): string {
  const t = o.target;
  const args = ["run", "-s", "poa", "--", "mint", "--key", poaKey, "--agent", o.agent, "--action", o.action];
  args.push("--target", `${t.kind}/${t.namespace}/${t.name}`, "--ttl", "300");
  for (const a of o.approvers ?? []) args.push("--approver", a);
  if (o.maxReplicas !== undefined) args.push("--max-replicas", String(o.maxReplicas));
  if (o.payload !== undefined) args.push("--payload", JSON.stringify(o.payload));
  if (o.templateHash !== undefined) args.push("--template-hash", o.templateHash);
  const r = spawnSync("npm", args, { cwd: root, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`npm run poa -- mint failed (exit ${r.status}): ${r.stderr}`);
  const token = r.stdout.trim();
  minted.push(token);
  captured.push(r.stderr);
  return token;
}

function task(name: string): TaskObject {
  return kube.get<TaskObject>("agenttask", name, NS);
}

async function terminal(name: string, timeoutMs = 120_000): Promise<TaskObject> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = kube.try(["get", "agenttask", name, "-n", NS, "-o", "json"]);
    const t = r.ok ? (JSON.parse(r.stdout) as TaskObject) : undefined;
    if (t?.status?.phase && TERMINAL.includes(t.status.phase)) return t;
    if (Date.now() > deadline)
      throw new Error(`agenttask ${NS}/${name} not finished after ${timeoutMs} ms: ${JSON.stringify(t?.status)}`);
    await new Promise(r => setTimeout(r, 500));
  }
}

const succeeded = (t: TaskObject) => t.status?.conditions?.find(c => c.type === "Succeeded");
const revisionOf = (d: DeploymentObject) => d.metadata.annotations?.["deployment.kubernetes.io/revision"];
const paymentService = () => kube.get<DeploymentObject>("deployment", "payment-service", NS);

/** The approvers the sandbox's own samples get for a tier that must be allowed (samples/expectations.json). */
function approversFor(risk: string): string[] {
  const expectations = JSON.parse(readFileSync(join(root, "samples", "expectations.json"), "utf8")) as Expectation[];
  const e = expectations.find(x => x.phase === "Completed" && x.risk === risk);
  if (!e) throw new Error(`samples/expectations.json has no allowed ${risk} sample`);
  return e.poa.approvers ?? [];
}

beforeAll(async () => {
  const t0 = Date.now();
  dir = mkdtempSync(join(existsShm() ? "/dev/shm" : tmpdir(), "atb-sandbox-"));
  const logDir = join(dir, "test-setup");
  mkdirSync(logDir, { recursive: true });
  await ensureVenv(logDir, progress);
  child = spawn("npm", ["run", "sandbox"], {
    cwd: root,
    env: { ...process.env, ATB_SANDBOX_DIR: dir },
    detached: true,
  });
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 240_000;
  while (!out.includes("Ctrl-C stops the sandbox") && Date.now() < deadline && child.exitCode === null) {
    await new Promise(r => setTimeout(r, 500));
  }
  printedKubeconfig = /^\s*export KUBECONFIG=(\S+)$/m.exec(out)?.[1] ?? "";
  poaKey = resolve(root, /--key (\S+)/.exec(out)?.[1] ?? "");
  brokerAudit = /^\[sandbox\] broker at \S+ \(audit: (.+)\)$/m.exec(out)?.[1] ?? "";
  kube = new Kube(ensureBinaries(), printedKubeconfig);
  progress(`sandbox ready after ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}, 25 * 60_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    process.kill(-child.pid!, "SIGINT");
    await new Promise(r => child!.once("exit", r));
  }
});

test("npm run sandbox: every sample reaches its expected phase, and the table shows all six actions", () => {
  expect(out).toContain("every sample task reached its expected phase and risk tier");
  expect(out).toMatch(/NAME\s+ACTION\s+TARGET\s+PHASE\s+RISK\s+AGE/);
  expect({ printedKubeconfig, brokerAudit }).toEqual({
    printedKubeconfig: join(dir, "cluster", "kubeconfig"),
    brokerAudit: expect.stringContaining(dir),
  });
  // The last table the sandbox printed (before its verdict).
  const tables = out.split("$ kubectl get agenttasks -A\n").slice(1);
  const last = tables[tables.length - 1]!.split("\n\n")[0]!.trim().split("\n");
  const header = last[0]!.split(/\s+/);
  const actionColumn = header.indexOf("ACTION");
  const rows = last.slice(1).map(l => l.split(/\s+/));
  expect(new Set(rows.map(r => r[actionColumn]))).toEqual(
    new Set(["scale", "restart", "update-config", "deploy", "rollback", "patch"]),
  );
  // Every sample is named sample-...: none takes a name the seed's or upstream's examples use.
  expect(rows.map(r => r[1]).filter(n => !n!.startsWith("sample-"))).toEqual([]);
});

test("the seed's Python example, run as written, creates scale-frontend (no 409) and it Completes", async () => {
  expect(kube.try(["get", "agenttask", "scale-frontend", "-n", NS]).ok).toBe(false);
  expect(task("sample-scale-frontend").status?.phase).toBe("Completed");
  const agent = "spiffe://atb.example.com/agent/planning-agent";
  const token = mint({
    agent,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name: "web-frontend" },
    maxReplicas: 10,
  });
  const r = spawnSync(VENV_PYTHON, [join(root, "tests", "e2e", "seed_snippet_runner.py")], {
    cwd: root,
    encoding: "utf8",
    // Only what the snippet leaves undefined, and the kubeconfig its load_kube_config() reads.
    env: { ...process.env, KUBECONFIG: printedKubeconfig, ATB_AGENT_ID: agent, ATB_POA_TOKEN: token },
    timeout: 120_000,
  });
  captured.push(r.stdout ?? "", r.stderr ?? "");
  expect({ status: r.status, stderr: redact(r.stderr ?? "") }).toEqual({ status: 0, stderr: "" });
  const done = await terminal("scale-frontend");
  expect({ phase: done.status?.phase, risk: done.status?.atbResult?.riskTier }).toEqual({
    phase: "Completed",
    risk: "LOW",
  });
  expect(done.spec).toMatchObject({ agentId: agent, action: "scale", payload: { replicas: 5 } });
});

/** What the upstream samples file's tasks end as here, in file order. */
const UPSTREAM: Record<string, { action: string; phase: string; risk: string; reason?: string }> = {
  "scale-web-frontend": { action: "scale", phase: "Completed", risk: "LOW" },
  "restart-api-server": { action: "restart", phase: "Completed", risk: "MEDIUM" },
  "update-feature-flags": { action: "update-config", phase: "Completed", risk: "MEDIUM" },
  "deploy-v2-release": { action: "deploy", phase: "Completed", risk: "HIGH" },
  "rollback-payment-service": { action: "rollback", phase: "Completed", risk: "HIGH", reason: "NoChange" },
};

/** The pod-template-hash of a Deployment's ReplicaSet of `revision`: what a rollback's token binds. */
function templateHashOf(deployment: string, revision: number): string {
  type Rs = {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { name: string }[];
  };
  const list = JSON.parse(kube.run(["get", "replicasets", "-n", NS, "-o", "json"])) as { items: { metadata: Rs }[] };
  const rs = list.items.find(
    i =>
      i.metadata.ownerReferences?.some(o => o.name === deployment) &&
      i.metadata.annotations?.["deployment.kubernetes.io/revision"] === String(revision),
  );
  return rs?.metadata.labels?.["pod-template-hash"] ?? "none";
}

/** One document of the upstream samples file, its placeholder replaced by a minted token; applied,
 * then waited for until it is terminal. */
async function runUpstream(doc: string): Promise<TaskObject> {
  const parsed = load(doc) as TaskObject;
  const name = parsed.metadata.name;
  const want = UPSTREAM[name];
  expect({ name, action: parsed.spec.action }).toEqual({ name, action: want?.action });
  expect(doc.split(UPSTREAM_PLACEHOLDER)).toHaveLength(2);
  const token = mint({
    agent: parsed.spec.agentId,
    action: parsed.spec.action,
    target: parsed.spec.target,
    approvers: approversFor(want!.risk),
    // A scale token carries a replica bound, as the sandbox's scale sample's does.
    maxReplicas: parsed.spec.action === "scale" ? 10 : undefined,
    // Each token names its task's change; a rollback's includes the template hash it restores.
    payload: parsed.spec.payload ?? {},
    templateHash:
      parsed.spec.action === "rollback"
        ? templateHashOf(parsed.spec.target.name, parsed.spec.payload?.revision as number)
        : undefined,
  });
  const applied = kube.try(["apply", "-f", "-"], doc.replace(UPSTREAM_PLACEHOLDER, JSON.stringify(token)));
  captured.push(applied.stdout, applied.stderr);
  expect({ name, ok: applied.ok, stderr: redact(applied.stderr) }).toEqual({ name, ok: true, stderr: "" });
  const t = await terminal(name, 180_000);
  const reason = want!.reason ? succeeded(t)?.reason : undefined;
  // The status message is compared as "any string" so that a failure shows it.
  expect({
    name,
    phase: t.status?.phase,
    risk: t.status?.atbResult?.riskTier,
    reason,
    message: t.status?.message,
  }).toEqual({ name, phase: want!.phase, risk: want!.risk, reason: want!.reason, message: expect.any(String) });
  return t;
}

/** What a write of payment-service would change: its generation, revision, marker, and the
 * operator's successful writes of it in the API server's audit log. */
function paymentSnapshot() {
  const d = paymentService();
  return {
    generation: d.metadata.generation,
    revision: revisionOf(d),
    appliedBy: d.metadata.annotations?.[APPLIED_BY],
    appliedTasks: d.metadata.annotations?.[APPLIED_TASKS],
    operatorWrites: operatorWrites(join(dir, "cluster")).get(`deployments ${NS}/payment-service`) ?? 0,
  };
}

test("the upstream ATB samples, applied one at a time with minted tokens, reach their phases; the rollback to revision 3 is NoChange", async () => {
  const text = readFileSync(join(root, "samples", "upstream", "agenttasks.yaml"), "utf8");
  const docs = text.split(/^---\n/m);
  expect(docs).toHaveLength(Object.keys(UPSTREAM).length);
  // The revision arithmetic. payment-service's revisions (deployment.kubernetes.io/revision, one
  // per distinct pod template, numbered by the Deployment controller):
  //   1: samples/workloads/production.yaml (payment-service:2.0.0), rolled out before any task;
  //   2: the sandbox's sample-deploy-v2 (image 2.1.0), Completed before this test starts (the
  //      other sample on payment-service, sample-deploy-one-approver, waits for approval and writes nothing;
  //      the seed's snippet and the upstream scale, restart and update-config touch other targets);
  //   3: the upstream deploy-v2-release below (a new template: container payment-service,
  //      ghcr.io/company/payment-service:v2.0.0, label version: v2.0.0).
  // So the upstream rollback's `revision: 3` names the revision that already runs: as
  // `kubectl rollout undo --to-revision=3` it is a no-op, Completed with reason NoChange and no
  // write of payment-service.
  expect(revisionOf(paymentService())).toBe("2");
  const seen: TaskObject[] = [];
  for (const doc of docs.slice(0, -1)) seen.push(await runUpstream(doc));
  expect(seen.map(t => t.metadata.name)).toEqual(Object.keys(UPSTREAM).slice(0, -1));
  const deploy = seen[seen.length - 1]!;
  // The deploy made revision 3, it is the one running, and the deploy's write carries its marker.
  const before = paymentSnapshot();
  expect(before).toMatchObject({ revision: "3", appliedBy: deploy.metadata.uid });
  expect(paymentService().spec.template.spec.containers.map(c => c.image)).toContain(
    "ghcr.io/company/payment-service:v2.0.0",
  );
  const rollback = await runUpstream(docs[docs.length - 1]!);
  // Allowed by the broker, and then nothing written: same generation, revision, marker and count
  // of operator writes of payment-service; the rollback's uid is nowhere in the marker.
  expect(rollback.metadata.name).toBe("rollback-payment-service");
  expect(rollback.status?.message).toMatch(/already matches revision 3; nothing was written/);
  expect(rollback.status?.conditions?.find(c => c.type === "Executed")).toMatchObject({
    status: "True",
    reason: "NoChange",
  });
  const after = paymentSnapshot();
  expect(after).toEqual(before);
  expect(after.appliedTasks?.split(/\s+/)).not.toContain(rollback.metadata.uid);
  // The broker's audit log: exactly one decision for the rollback's request, an allow at HIGH.
  const requestId = rollback.status?.atbResult?.requestId;
  expect(requestId).toBeTruthy();
  const lines = readFileSync(brokerAudit, "utf8")
    .split("\n")
    .filter(Boolean)
    .map(l => JSON.parse(l) as Record<string, unknown>);
  captured.push(JSON.stringify(lines));
  expect(lines.filter(l => l.request_id === requestId)).toEqual([
    expect.objectContaining({ decision: "allow", action: "k8s.Deployment.rollback", risk_tier: "HIGH" }),
  ]);
}, 600_000);

test("the printed commands (mint + apply my-task.yaml) submit a task that completes", () => {
  // The newcomer's commands, pasted as printed.
  const lines = out.split("\n").map(l => l.trim());
  const commands = lines.filter(l => /^(export |TOKEN=|sed )/.test(l)).map(l => l.replace(/ -w$/, ""));
  expect(commands).toHaveLength(4);
  const script = [
    ...commands,
    "kubectl wait --for=condition=Succeeded agenttask/my-task -n production --timeout=120s",
  ].join("\n");
  const r = spawnSync("bash", ["-euo", "pipefail", "-c", script], { cwd: root, encoding: "utf8" });
  captured.push(r.stdout, r.stderr);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
  expect(r.stdout).toContain("condition met");
});

test("no token was printed by the sandbox or by any command this test ran", () => {
  expect(minted.length).toBeGreaterThanOrEqual(6);
  expect(scanForSecrets([out, ...captured], minted)).toEqual([]);
});

test("Ctrl-C stops every process the sandbox started", async () => {
  process.kill(-child!.pid!, "SIGINT");
  await new Promise(r => child!.once("exit", r));
  // npm exits at once; the sandbox's own cleanup (operator, broker, then the plane) takes seconds.
  const state = readState(join(dir, "cluster"));
  expect(state).toBeDefined();
  const deadline = Date.now() + 60_000;
  while (COMPONENTS.some(c => isAlive(state!.pids[c])) && Date.now() < deadline)
    await new Promise(r => setTimeout(r, 250));
  for (const c of COMPONENTS) expect({ c, alive: isAlive(state!.pids[c]) }).toEqual({ c, alive: false });
  rmSync(dir, { recursive: true, force: true });
});
