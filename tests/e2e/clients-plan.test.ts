// GIVEN the whole product on the local control plane (broker over mTLS with real OPA, operator with
// its webhooks, plan mode and approvals), WHEN an agent plans a change and waits for approvals with
// each client (Python clients/python/submit_task.py --plan / --await-approval, Go atb-submit the
// same, TypeScript plan() / awaitApproval()), THEN every client prints the same plan (the change
// digest the TypeScript client computes, the tier, the approvals, a diff) without writing the
// target, and waiting on a task that needs approvals times out while it waits and returns the phase
// it moves on to (Denied ApprovalTimeout once its PoA expires) with the documented exit codes.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";
import { ensureVenv, VENV_PYTHON } from "../helpers/python-venv";
import { scanForSecrets } from "../helpers/secrets";
import { startStack, type Stack } from "../../tools/stack";
import { awaitApproval, plan, taskChangeDigest } from "../../clients/typescript";

const ROOT = join(__dirname, "..", "..");
const cluster = e2eCluster();
const WORK = join(cluster.dataDir, "stack-clients-plan");
const GO_BIN = join(WORK, "atb-submit");
const NS = "plan-clients";
const TARGET = "api";
const AGENT = "spiffe://atb.example.com/agent/planner";

let stack: Stack;
let kube: Kube;
const printed: string[] = [];
const minted: string[] = [];

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], o: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}) {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: o.cwd ?? ROOT,
      env: { ...process.env, KUBECONFIG: cluster.kubeconfig, ...o.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 290_000);
    child.on("error", reject);
    child.on("close", code => {
      clearTimeout(timer);
      printed.push(stdout, stderr);
      resolve({ code, stdout, stderr });
    });
  });
}

/** "key: value" lines of a client's output. */
function fields(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const m = /^(phase|changeSha256|riskTier|approvalsRequired|diffTruncated|reason|requestId): (.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

const replicas = () => kube.get<{ spec: { replicas: number } }>("deployment", TARGET, NS).spec.replicas;
const CHANGE = {
  action: "scale" as const,
  target: { kind: "Deployment" as const, name: TARGET, namespace: NS },
  payload: { replicas: 5 },
};
const PY = ["clients/python/submit_task.py"];
const planArgs = ["--plan", "--agent-id", AGENT, "--action", "scale", "--target", `Deployment/${NS}/${TARGET}`];

beforeAll(async () => {
  mkdirSync(WORK, { recursive: true });
  const progress = (line: string) => process.stderr.write(`[clients-plan.test] ${line}\n`);
  const [build] = await Promise.all([
    run("go", ["build", "-o", GO_BIN, "."], {
      cwd: join(ROOT, "clients", "go"),
      timeoutMs: 20 * 60_000,
      env: { GOTOOLCHAIN: "local" },
    }),
    ensureVenv(WORK, progress),
  ]);
  if (build.code !== 0) throw new Error(`go build failed: ${build.stderr.slice(-3000)}`);
  stack = await startStack({ cluster, workDir: WORK, namespaces: [NS] });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  kube.applyObject({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: TARGET, namespace: NS },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: TARGET } },
      template: { metadata: { labels: { app: TARGET } }, spec: { containers: [{ name: "app", image: "nginx:1.27" }] } },
    },
  });
}, 40 * 60_000);

afterAll(async () => stack?.stop());

describe("plan: every client prints the plan of the change, and nothing is written", () => {
  const digest = taskChangeDigest(CHANGE);

  test("TypeScript plan()", async () => {
    const r = await plan(
      { name: "ts-plan", namespace: NS, agentId: AGENT, ...CHANGE },
      { kubeconfig: cluster.kubeconfig, timeoutMs: 180_000, pollMs: 1_000 },
    );
    expect(r).toMatchObject({
      name: "ts-plan",
      phase: "Planned",
      plan: { changeSha256: digest, riskTier: "LOW", approvalsRequired: { count: 0 }, diffTruncated: false },
    });
    expect(r.plan.diff).toMatch(/^-.*replicas: 3$/m);
    expect(r.plan.diff).toMatch(/^\+.*replicas: 5$/m);
    expect(replicas()).toBe(3);
  });

  test.each([
    ["Python", VENV_PYTHON, PY, "180"],
    ["Go", GO_BIN, [], "180s"],
  ])("%s --plan", async (_, cmd, pre, timeout) => {
    const r = await run(cmd, [...pre, ...planArgs, "--payload", '{"replicas": 5}', "--timeout", timeout]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(new RegExp(`^agenttask ${NS}/plan-scale-${TARGET}-[a-z0-9]{5} planned$`, "m"));
    expect(fields(r.stdout)).toMatchObject({
      phase: "Planned",
      changeSha256: digest,
      riskTier: "LOW",
      diffTruncated: "false",
    });
    expect(fields(r.stdout).approvalsRequired).toMatch(/^0: /);
    expect(r.stdout).toMatch(/^\+.*replicas: 5$/m);
    expect(replicas()).toBe(3);
  });

  test.each([
    ["Python", VENV_PYTHON, PY],
    ["Go", GO_BIN, []],
  ])("%s --plan of a kind the action does not take: the API server's message, exit 2", async (_, cmd, pre) => {
    const args = [...pre, ...planArgs.slice(0, -1), `ConfigMap/${NS}/${TARGET}`, "--payload", '{"replicas": 5}'];
    const r = await run(cmd, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("kind ConfigMap is not supported by action scale");
  });
});

describe("awaitApproval: a task that needs approvals", () => {
  const NAME = "needs-approval";

  beforeAll(async () => {
    // 3 -> 0 replicas is MEDIUM: without an approval it waits in AwaitingApproval until its PoA expires.
    const token = await stack.mint({
      agent: AGENT,
      action: "scale",
      target: CHANGE.target,
      maxReplicas: 10,
      ttlSeconds: 40,
      payload: { replicas: 0 },
    });
    minted.push(token);
    const created = kube.create({
      apiVersion: "atb.siemens.com/v1alpha1",
      kind: "AgentTask",
      metadata: { name: NAME, namespace: NS },
      spec: { agentId: AGENT, poaToken: token, action: "scale", target: CHANGE.target, payload: { replicas: 0 } },
    });
    if (!created.ok) throw new Error(created.stderr);
    await eventually("the task to wait for approvals", 60_000, () =>
      kube.get<{ status?: { phase?: string } }>("agenttask", NAME, NS).status?.phase === "AwaitingApproval"
        ? true
        : undefined,
    );
  });

  test("while it waits: each client times out and says so (TypeScript: timedOut; Python, Go: exit 2)", async () => {
    const ts = await awaitApproval({ name: NAME, namespace: NS }, { kubeconfig: cluster.kubeconfig, timeoutMs: 5_000 });
    expect(ts).toMatchObject({ phase: "AwaitingApproval", timedOut: true });
    const waitArgs = ["--await-approval", NAME, "--namespace", NS];
    const [py, go] = await Promise.all([
      run(VENV_PYTHON, [...PY, ...waitArgs, "--timeout", "4"]),
      run(GO_BIN, [...waitArgs, "--timeout", "4s"]),
    ]);
    for (const r of [py, go]) {
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`^error: timed out after 4s?: AgentTask ${NS}/${NAME} is still AwaitingApproval$`, "m"),
      );
    }
  });

  test("once the PoA expires it is Denied ApprovalTimeout: each client returns that (Python, Go: exit 1)", async () => {
    const waitArgs = ["--await-approval", NAME, "--namespace", NS];
    const [ts, py, go] = await Promise.all([
      awaitApproval(
        { name: NAME, namespace: NS },
        { kubeconfig: cluster.kubeconfig, timeoutMs: 150_000, pollMs: 1_000 },
      ),
      run(VENV_PYTHON, [...PY, ...waitArgs, "--timeout", "150"]),
      run(GO_BIN, [...waitArgs, "--timeout", "150s"]),
    ]);
    expect(ts).toMatchObject({ phase: "Denied", timedOut: false });
    expect(ts.status.conditions?.find(c => c.status === "False")?.reason).toBe("ApprovalTimeout");
    for (const r of [py, go]) {
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: "" });
      expect(fields(r.stdout)).toMatchObject({ phase: "Denied", riskTier: "MEDIUM" });
    }
    expect(replicas()).toBe(3);
  });

  test("no client printed a token", () => {
    expect(scanForSecrets(printed, minted)).toEqual([]);
  });
});
