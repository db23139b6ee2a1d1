// GIVEN the whole product on the local control plane (broker over mTLS with real OPA, operator with
// its webhooks), WHEN an agent submits tasks with each of the three clients in clients/ (Python,
// Go, TypeScript) exactly as docs/agents.md tells it to, THEN each client reports the terminal
// phase, risk tier and reason with the documented exit code, the Deployment changes only when the
// task Completed, admission errors and timeouts are reported clearly, and no token is ever printed.
//
// The commands come from the marked blocks of docs/agents.md (<!-- test:ID --> before a fenced
// block), so the documentation is exercised as written. Setup: the Python virtualenv at .venv/
// (re-created only when clients/python/requirements.txt changes; stamp file inside .venv) and the
// Go binary (cached under ~/.cache/atb-operator/clients/go-<hash of the module's files>).
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { e2eCluster } from "../helpers/cluster-env";
import { Kube } from "../helpers/kube";
import { cacheRoot, docBlock, ensureVenv, sha256, VENV_PYTHON, withLock } from "../helpers/python-venv";
import { scanForSecrets } from "../helpers/secrets";
import { startStack, type Stack } from "../../tools/stack";
import { submitAgentTask } from "../../clients/typescript";

const ROOT = join(__dirname, "..", "..");
const cluster = e2eCluster();
const WORK = join(cluster.dataDir, "stack-clients");
const NS = "production"; // the namespace docs/agents.md uses
/** A second namespace of this file's operator, for the cross-namespace admission case. */
const OTHER_NS = "clients-other";
const TARGET = "web-frontend";
const SLOW_TARGET = "web-slow";
const AGENT = "spiffe://atb.example.com/agent/me";
const GO_BIN = join(ROOT, "clients", "go", "bin", "atb-submit");

let stack: Stack;
let kube: Kube;
const minted: string[] = [];
const printed: string[] = [];

const progress = (line: string) => process.stderr.write(`[clients.test] ${line}\n`);

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell; never throws for a non-zero exit. Records what it printed. */
function run(
  cmd: string,
  args: string[],
  o: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; logFile?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: o.cwd ?? ROOT,
      env: o.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 290_000);
    child.on("error", err => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", code => {
      clearTimeout(timer);
      printed.push(stdout, stderr);
      if (o.logFile) writeFileSync(o.logFile, `$ ${cmd} ${args.join(" ")}\n${stdout}\n${stderr}`);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a bash block from the docs in the repository folder with the agent's environment. */
function runDoc(ids: string[], env: Record<string, string>, timeoutMs = 290_000, logFile?: string): Promise<RunResult> {
  const script = ["set -euo pipefail", ...ids.map(docBlock)].join("\n");
  return run("bash", ["-c", script], {
    env: { ...process.env, KUBECONFIG: cluster.kubeconfig, ATB_AGENT_ID: AGENT, ...env },
    timeoutMs,
    logFile,
  });
}

/** "key: value" lines of a client's output. */
function fields(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const m = /^(phase|riskTier|reason|message|requestId|approvals): (.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

async function ensureGoClient(logDir: string): Promise<void> {
  const dir = join(ROOT, "clients", "go");
  const files = [
    "go.mod",
    "go.sum",
    ...readdirSync(dir)
      .filter(f => f.endsWith(".go"))
      .sort(),
  ];
  const key = sha256(...files.flatMap(f => [f, readFileSync(join(dir, f))])).slice(0, 16);
  const cached = join(cacheRoot, `go-${key}`, "atb-submit");
  await withLock(join(cacheRoot, "go-build.lock"), async () => {
    if (!existsSync(cached)) {
      const t0 = Date.now();
      progress(
        `building the Go client (clients/go, k8s.io/client-go v0.36.3): the first build takes a few minutes on 2 cores...`,
      );
      const r = await runDoc(["go-build"], {}, 20 * 60_000, join(logDir, "go-build.log"));
      if (r.code !== 0)
        throw new Error(`go-build failed (exit ${r.code}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-4000)}`);
      mkdirSync(dirname(cached), { recursive: true });
      const tmp = `${cached}.${process.pid}`;
      copyFileSync(GO_BIN, tmp);
      renameSync(tmp, cached);
      progress(`Go client built in ${((Date.now() - t0) / 1000).toFixed(1)}s, cached at ${cached}`);
      return;
    }
    progress(`Go client cached at ${cached}`);
    mkdirSync(dirname(GO_BIN), { recursive: true });
    const tmp = `${GO_BIN}.${process.pid}`;
    copyFileSync(cached, tmp);
    renameSync(tmp, GO_BIN);
  });
}

async function mint(
  target = TARGET,
  extra: { approvers?: string[]; payload?: Record<string, unknown> } = {},
): Promise<string> {
  const token = await stack.mint({
    agent: AGENT,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name: target },
    maxReplicas: 10,
    ttlSeconds: 300,
    ...extra,
  });
  minted.push(token);
  return token;
}

function deployment(name: string, replicas: number) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "app", image: "nginx:1.27" }] } },
    },
  };
}

const replicasOf = (name: string) => kube.get<{ spec: { replicas: number } }>("deployment", name, NS).spec.replicas;
const resetReplicas = (name: string, n: number) => kube.run(["scale", "deployment", name, "-n", NS, `--replicas=${n}`]);
const uniq = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;

beforeAll(async () => {
  const logDir = join(WORK, "client-setup");
  mkdirSync(logDir, { recursive: true });
  const t0 = Date.now();
  progress("preparing the clients (logs in " + logDir + ")");
  await Promise.all([ensureVenv(logDir, progress), ensureGoClient(logDir)]);
  progress(`clients ready in ${((Date.now() - t0) / 1000).toFixed(1)}s; starting broker and operator...`);
  stack = await startStack({ cluster, workDir: WORK, namespaces: [NS, OTHER_NS] });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  kube.namespace(NS);
  kube.applyObject(deployment(TARGET, 2));
  kube.applyObject(deployment(SLOW_TARGET, 2));
  progress(`stack ready after ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}, 40 * 60_000);

afterAll(async () => stack?.stop());

// 3 -> 5 replicas is LOW under policies/data.json (within a factor of 2, fewer than 10 apart).
describe("a LOW scale task, submitted as docs/agents.md shows, ends Completed and changes the Deployment", () => {
  test("Python (.venv/bin/python clients/python/submit_task.py)", async () => {
    resetReplicas(TARGET, 3);
    const r = await runDoc(["python-submit"], { ATB_POA_TOKEN: await mint() });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(new RegExp(`^agenttask ${NS}/scale-${TARGET}-[a-z0-9]{5} created$`, "m"));
    expect(fields(r.stdout)).toMatchObject({ phase: "Completed", riskTier: "LOW", reason: "allowed" });
    expect(replicasOf(TARGET)).toBe(5);
  });

  test("Go (clients/go/bin/atb-submit)", async () => {
    resetReplicas(TARGET, 3);
    const r = await runDoc(["go-submit"], { ATB_POA_TOKEN: await mint() });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(new RegExp(`^agenttask ${NS}/scale-${TARGET}-[a-z0-9]{5} created$`, "m"));
    expect(fields(r.stdout)).toMatchObject({ phase: "Completed", riskTier: "LOW", reason: "allowed" });
    expect(replicasOf(TARGET)).toBe(5);
  });

  test("TypeScript (the docs' my-agent.ts, run with tsx)", async () => {
    resetReplicas(TARGET, 3);
    // The one change to the docs' code: the relative import, since the file is not in the repository folder.
    const code = docBlock("typescript").replace(
      `from "./clients/typescript"`,
      `from ${JSON.stringify(join(ROOT, "clients", "typescript"))}`,
    );
    expect(code).toContain(join(ROOT, "clients", "typescript"));
    const file = join(WORK, "my-agent.ts");
    writeFileSync(file, code);
    const r = await run(join(ROOT, "node_modules", ".bin", "tsx"), [file], {
      env: { ...process.env, KUBECONFIG: cluster.kubeconfig, ATB_AGENT_ID: AGENT, ATB_POA_TOKEN: await mint() },
    });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(fields(r.stdout)).toEqual({ phase: "Completed", riskTier: "LOW", reason: "allowed" });
    expect(replicasOf(TARGET)).toBe(5);
  });

  test("TypeScript in-process: submitAgentTask resolves with the terminal status", async () => {
    resetReplicas(TARGET, 2);
    const name = uniq("ts-low");
    const result = await submitAgentTask(
      {
        name,
        namespace: NS,
        agentId: AGENT,
        poaToken: await mint(),
        action: "scale",
        target: { kind: "Deployment", name: TARGET, namespace: NS },
        payload: { replicas: 3 },
      },
      { timeoutMs: 180_000, kubeconfig: cluster.kubeconfig, pollMs: 1_000 },
    );
    expect(result).toMatchObject({
      phase: "Completed",
      name,
      namespace: NS,
      status: { phase: "Completed", atbResult: { allowed: true, riskTier: "LOW" } },
    });
    expect(result.status.atbResult?.requestId).toBeTruthy();
    expect(replicasOf(TARGET)).toBe(3);
  });
});

describe("a MEDIUM task without approval (scale to 0) waits for approval, and the client returns, the Deployment untouched", () => {
  test("Python, with a token from the docs' mint command: exit code 3, phase, risk tier, reason and the approvals needed printed", async () => {
    const before = replicasOf(TARGET);
    expect(before).toBeGreaterThan(0);
    const r = await runDoc(["token", "python-denied"], { ATB_POA_KEY: stack.material.poaPrivateKey });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 3, stderr: "" });
    expect(fields(r.stdout)).toMatchObject({
      phase: "AwaitingApproval",
      riskTier: "MEDIUM",
      reason: "medium_risk_approval_required",
    });
    expect(fields(r.stdout).message).toMatch(
      /^waiting for approval: MEDIUM: 1 approver other than the agent must approve/,
    );
    expect(fields(r.stdout).approvals).toMatch(/^MEDIUM: 1 approver other than the agent must approve/);
    expect(replicasOf(TARGET)).toBe(before);
  });

  test("Go: exit code 3 with the broker's reason", async () => {
    const before = replicasOf(TARGET);
    const r = await run(
      GO_BIN,
      [
        "--agent-id",
        AGENT,
        "--action",
        "scale",
        "--target",
        `Deployment/${NS}/${TARGET}`,
        "--payload",
        '{"replicas":0}',
      ],
      {
        env: {
          ...process.env,
          KUBECONFIG: cluster.kubeconfig,
          ATB_POA_TOKEN: await mint(TARGET, { payload: { replicas: 0 } }),
        },
      },
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 3, stderr: "" });
    expect(fields(r.stdout)).toMatchObject({
      phase: "AwaitingApproval",
      riskTier: "MEDIUM",
      reason: "medium_risk_approval_required",
    });
    expect(fields(r.stdout).approvals).toMatch(/must approve/);
    expect(replicasOf(TARGET)).toBe(before);
  });

  test("TypeScript: submitAgentTask resolves (does not reject) with phase AwaitingApproval", async () => {
    const before = replicasOf(TARGET);
    const result = await submitAgentTask(
      {
        name: uniq("ts-zero"),
        namespace: NS,
        agentId: AGENT,
        poaToken: await mint(TARGET, { payload: { replicas: 0 } }),
        action: "scale",
        target: { kind: "Deployment", name: TARGET, namespace: NS },
        payload: { replicas: 0 },
      },
      { timeoutMs: 180_000, kubeconfig: cluster.kubeconfig },
    );
    expect(result.phase).toBe("AwaitingApproval");
    expect(result.status.approvals?.sentence).toMatch(/must approve/);
    expect(result.status.atbResult).toMatchObject({
      allowed: false,
      riskTier: "MEDIUM",
      reason: "medium_risk_approval_required",
    });
    expect(replicasOf(TARGET)).toBe(before);
  });

  test("with an approver in the token the same request Completes (the wait was the policy, not the client)", async () => {
    const r = await run(
      VENV_PYTHON,
      [
        "clients/python/submit_task.py",
        "--agent-id",
        AGENT,
        "--action",
        "scale",
        "--target",
        `Deployment/${NS}/${TARGET}`,
        "--payload",
        '{"replicas":0}',
      ],
      {
        env: {
          ...process.env,
          KUBECONFIG: cluster.kubeconfig,
          ATB_POA_TOKEN: await mint(TARGET, { approvers: ["alice@example.com"], payload: { replicas: 0 } }),
        },
      },
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(fields(r.stdout)).toMatchObject({ phase: "Completed", riskTier: "MEDIUM" });
    expect(replicasOf(TARGET)).toBe(0);
  });
});

describe("admission rejections are reported with the API server's message", () => {
  const badPayload = JSON.stringify({ replicas: 3, image: "evil:latest" });

  test("Python and Go exit 2 and print the webhook's message", async () => {
    const token = await mint();
    const env = { ...process.env, KUBECONFIG: cluster.kubeconfig, ATB_POA_TOKEN: token };
    const args = [
      "--agent-id",
      AGENT,
      "--action",
      "scale",
      "--target",
      `Deployment/${NS}/${TARGET}`,
      "--payload",
      badPayload,
    ];
    const py = await run(VENV_PYTHON, ["clients/python/submit_task.py", ...args], { env });
    const go = await run(GO_BIN, args, { env });
    for (const r of [py, go]) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(
        /^error: the API server rejected the AgentTask in namespace production: .*spec\.payload\.image: not a field of action scale/m,
      );
    }
  });

  test("TypeScript rejects with an Error carrying the message", async () => {
    const name = uniq("ts-bad");
    const p = submitAgentTask(
      {
        name,
        namespace: NS,
        agentId: AGENT,
        poaToken: await mint(),
        action: "scale",
        target: { kind: "Deployment", name: TARGET, namespace: NS },
        payload: JSON.parse(badPayload) as Record<string, unknown>,
      },
      { timeoutMs: 60_000, kubeconfig: cluster.kubeconfig },
    );
    await expect(p).rejects.toThrow(new RegExp(`rejected AgentTask ${NS}/${name}: .*spec\\.payload\\.image`));
    await p.catch((e: Error) => printed.push(e.message));
    expect(kube.try(["get", "agenttask", name, "-n", NS]).ok).toBe(false);
  });

  test("a task in another namespace than its target is rejected (cross-namespace targets are disabled)", async () => {
    const r = await run(
      VENV_PYTHON,
      [
        "clients/python/submit_task.py",
        "--agent-id",
        AGENT,
        "--action",
        "scale",
        "--target",
        `Deployment/${NS}/${TARGET}`,
        "--namespace",
        OTHER_NS,
        "--payload",
        '{"replicas":3}',
      ],
      {
        env: { ...process.env, KUBECONFIG: cluster.kubeconfig, ATB_POA_TOKEN: await mint() },
      },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/spec\.target\.namespace: must equal the task's namespace/);
  });
});

describe("usage errors exit 2 before anything is created", () => {
  test.each([
    ["Python", () => [VENV_PYTHON, "clients/python/submit_task.py"]],
    ["Go", () => [GO_BIN]],
  ])("%s: no ATB_POA_TOKEN, a malformed target, a payload that is not an object", async (_lang, cmd) => {
    const [bin, ...pre] = cmd() as [string, ...string[]];
    const env = { ...process.env, KUBECONFIG: cluster.kubeconfig, ATB_POA_TOKEN: "" };
    const base = ["--agent-id", AGENT, "--action", "scale"];
    const noToken = await run(bin, [...pre, ...base, "--target", `Deployment/${NS}/${TARGET}`, "--payload", "{}"], {
      env,
    });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/ATB_POA_TOKEN is not set/);
    const withToken = { ...env, ATB_POA_TOKEN: "a.b.c" };
    const badTarget = await run(bin, [...pre, ...base, "--target", `${NS}/${TARGET}`], { env: withToken });
    expect(badTarget.code).toBe(2);
    expect(badTarget.stderr).toMatch(/--target must be KIND\/NAMESPACE\/NAME/);
    const badPayload = await run(bin, [...pre, ...base, "--target", `Deployment/${NS}/${TARGET}`, "--payload", "[1]"], {
      env: withToken,
    });
    expect(badPayload.code).toBe(2);
    expect(badPayload.stderr).toMatch(/--payload must be a JSON object/);
  });
});

describe("with the broker down the task cannot finish: each client gives up at its timeout, naming the task and its last phase", () => {
  beforeAll(async () => stack.stopBroker());
  afterAll(async () => {
    await stack.startBroker();
  });

  test("Python --timeout 4 and Go --timeout 4s exit 2", async () => {
    for (const [bin, pre, timeout] of [
      [VENV_PYTHON, ["clients/python/submit_task.py"], "4"],
      [GO_BIN, [], "4s"],
    ] as const) {
      const name = uniq("slow");
      const r = await run(
        bin,
        [
          ...pre,
          "--name",
          name,
          "--timeout",
          timeout,
          "--agent-id",
          AGENT,
          "--action",
          "scale",
          "--target",
          `Deployment/${NS}/${SLOW_TARGET}`,
          "--payload",
          '{"replicas":3}',
        ],
        {
          env: { ...process.env, KUBECONFIG: cluster.kubeconfig, ATB_POA_TOKEN: await mint(SLOW_TARGET) },
        },
      );
      expect(r.code).toBe(2);
      expect(r.stdout).toContain(`agenttask ${NS}/${name} created`);
      expect(r.stderr).toMatch(
        new RegExp(
          `^error: timed out after 4s waiting for AgentTask ${NS}/${name} to finish \\(last phase: (\\(none yet\\)|Pending|Processing)\\)$`,
          "m",
        ),
      );
    }
    expect(replicasOf(SLOW_TARGET)).toBe(2);
  });

  test("TypeScript rejects with a timeout Error", async () => {
    const name = uniq("ts-slow");
    const p = submitAgentTask(
      {
        name,
        namespace: NS,
        agentId: AGENT,
        poaToken: await mint(SLOW_TARGET),
        action: "scale",
        target: { kind: "Deployment", name: SLOW_TARGET, namespace: NS },
        payload: { replicas: 3 },
      },
      { timeoutMs: 4_000, kubeconfig: cluster.kubeconfig, pollMs: 500 },
    );
    await expect(p).rejects.toThrow(
      new RegExp(
        `^timed out after 4000ms waiting for AgentTask ${NS}/${name} to finish \\(last phase: (\\(none yet\\)|Pending|Processing)\\)$`,
      ),
    );
    await p.catch((e: Error) => printed.push(e.message));
    expect(replicasOf(SLOW_TARGET)).toBe(2);
  });
});

test("no client printed a token, and no error message carried one", () => {
  expect(minted.length).toBeGreaterThan(8);
  expect(printed.length).toBeGreaterThan(20);
  expect(scanForSecrets(printed, minted)).toEqual([]);
  // Nor any part of one: no 20-character piece of a token's signature appears anywhere.
  const pieces = minted.flatMap(t => {
    const sig = t.split(".")[2] ?? "";
    return Array.from({ length: Math.max(0, sig.length - 19) }, (_, i) => sig.slice(i, i + 20));
  });
  expect(pieces.length).toBeGreaterThan(minted.length * 20);
  const leaks = printed.flatMap((text, i) => (pieces.some(p => text.includes(p)) ? [`output #${i}`] : []));
  expect(leaks).toEqual([]);
});
