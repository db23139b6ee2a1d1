// GIVEN the whole product on the local control plane (broker over mTLS with real OPA, operator with
// its webhooks) and atb-mcp started as an agent client starts it (package.json "bin", the shim
// clients/mcp/atb-mcp.mjs, with the admin kubeconfig), WHEN the MCP SDK's own Client talks to it
// over stdio (spawned) and over Streamable HTTP, THEN it lists the five tools with input schemas
// derived from the CRD, submits tasks that end as the operator decides (Completed, Denied) with
// their reason and request id, reads, lists and explains them, answers bad arguments and refused
// tasks with tool errors that name the field, and never returns or logs a token.
//
// plan_change and AwaitingApproval need the operator's plan mode and approvals (issue 15); the TS
// client's awaitApproval() is checked on a task that waits for approvals until its PoA expires.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { e2eCluster } from "../helpers/cluster-env";
import { Kube } from "../helpers/kube";
import { scanForSecrets } from "../helpers/secrets";
import { startStack, type Stack } from "../../tools/stack";
import { awaitApproval, taskChangeDigest } from "../../clients/typescript";
import { mainReason } from "../../clients/mcp/tools";

const ROOT = join(__dirname, "..", "..");
const BIN = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string> }).bin[
  "atb-mcp"
]!;
const cluster = e2eCluster();
const WORK = join(cluster.dataDir, "stack-mcp");
const NS = "mcp-agents";
const TARGET = "web";
const AGENT = "spiffe://atb.example.com/agent/mcp";

let stack: Stack;
let kube: Kube;
let stdio: Client;
let http: Client;
let httpServer: ChildProcess;
let stdioLog = "";
let httpLog = "";
const minted: string[] = [];
const returned: string[] = [];

interface ToolAnswer {
  isError?: boolean;
  content: { type: string; text: string }[];
  structuredContent?: Record<string, unknown>;
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<ToolAnswer> {
  const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 240_000 })) as ToolAnswer;
  returned.push(JSON.stringify(r));
  return r;
}

const text = (r: ToolAnswer) => r.content.map(c => c.text).join("\n");

async function mint(payload: Record<string, unknown>): Promise<string> {
  const token = await stack.mint({
    agent: AGENT,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name: TARGET },
    maxReplicas: 10,
    ttlSeconds: 300,
    payload,
  });
  minted.push(token);
  return token;
}

const scale = (replicas: number, poaToken: string) => ({
  agentId: AGENT,
  poaToken,
  action: "scale",
  target: { kind: "Deployment", name: TARGET, namespace: NS },
  payload: { replicas },
  waitSeconds: 180,
});

const replicas = () => kube.get<{ spec: { replicas: number } }>("deployment", TARGET, NS).spec.replicas;

/** Starts `atb-mcp --http 0` and resolves with the URL it prints on stderr. */
function startHttp(): Promise<URL> {
  httpServer = spawn(process.execPath, [join(ROOT, BIN), "--http", "0", "--kubeconfig", cluster.kubeconfig], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, KUBECONFIG: "" },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`atb-mcp --http did not start: ${httpLog}`)), 60_000);
    httpServer.stdout!.on("data", (c: Buffer) => (httpLog += c.toString()));
    httpServer.stderr!.on("data", (c: Buffer) => {
      httpLog += c.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(httpLog);
      if (m) {
        clearTimeout(timer);
        resolve(new URL(m[1]!));
      }
    });
    httpServer.on("exit", code => reject(new Error(`atb-mcp --http exited ${code}: ${httpLog}`)));
  });
}

beforeAll(async () => {
  stack = await startStack({ cluster, workDir: WORK, namespaces: [NS] });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  kube.applyObject({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: TARGET, namespace: NS },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: TARGET } },
      template: { metadata: { labels: { app: TARGET } }, spec: { containers: [{ name: "app", image: "nginx:1.27" }] } },
    },
  });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [join(ROOT, BIN)],
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", KUBECONFIG: cluster.kubeconfig },
    stderr: "pipe",
  });
  transport.stderr?.on("data", (c: Buffer) => (stdioLog += c.toString()));
  stdio = new Client({ name: "atb-e2e-stdio", version: "1" });
  await stdio.connect(transport);
  const url = await startHttp();
  http = new Client({ name: "atb-e2e-http", version: "1" });
  await http.connect(new StreamableHTTPClientTransport(url));
}, 20 * 60_000);

afterAll(async () => {
  await stdio?.close();
  await http?.close();
  httpServer?.kill("SIGTERM");
  await stack?.stop();
});

test("over stdio and over HTTP it lists the five tools, with the CRD's action enum and target kinds", async () => {
  const crd = load(readFileSync(join(ROOT, "crds", "agenttask.yaml"), "utf8")) as {
    spec: {
      versions: {
        schema: {
          openAPIV3Schema: {
            properties: {
              spec: {
                properties: { action: { enum: string[] }; target: { properties: { kind: { enum: string[] } } } };
              };
            };
          };
        };
      }[];
    };
  };
  const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties;
  for (const client of [stdio, http]) {
    const { tools } = await client.listTools();
    expect(tools.map(t => t.name).sort()).toEqual(
      ["explain_task", "get_task", "list_tasks", "plan_change", "submit_change"].sort(),
    );
    const submit = tools.find(t => t.name === "submit_change")!;
    const props = submit.inputSchema.properties as Record<
      string,
      { enum?: string[]; properties?: Record<string, { enum?: string[] }> }
    >;
    expect(props.action!.enum).toEqual(spec.action.enum);
    expect(props.target!.properties!.kind!.enum).toEqual(spec.target.properties.kind.enum);
    expect(submit.inputSchema.required).toEqual(expect.arrayContaining(["agentId", "action", "target", "poaToken"]));
    const plan = tools.find(t => t.name === "plan_change")!;
    expect(Object.keys(plan.inputSchema.properties ?? {})).not.toContain("poaToken");
  }
});

test("submit_change over stdio: a LOW scale Completes with its reason and request id; get, list and explain over HTTP", async () => {
  kube.run(["scale", "deployment", TARGET, "-n", NS, "--replicas=2"]);
  const token = await mint({ replicas: 3 });
  const r = await call(stdio, "submit_change", { ...scale(3, token), name: "mcp-scale-low" });
  expect(r.isError).toBeFalsy();
  expect(r.structuredContent).toMatchObject({
    name: "mcp-scale-low",
    namespace: NS,
    phase: "Completed",
    finished: true,
    reason: "Completed",
    policyReason: "allowed",
    riskTier: "LOW",
  });
  expect(r.structuredContent!.requestId).toEqual(expect.any(String));
  expect(replicas()).toBe(3);

  const got = await call(http, "get_task", { namespace: NS, name: "mcp-scale-low" });
  expect(got.isError).toBeFalsy();
  expect(got.structuredContent).toMatchObject({
    name: "mcp-scale-low",
    agentId: AGENT,
    action: "scale",
    phase: "Completed",
    payloadFields: ["replicas"],
    requestId: r.structuredContent!.requestId,
  });
  expect(text(got)).not.toContain(token);

  const listed = await call(http, "list_tasks", { namespace: NS, agentId: AGENT, phase: "Completed" });
  expect(listed.isError).toBeFalsy();
  const names = (listed.structuredContent!.tasks as { name: string }[]).map(t => t.name);
  expect(names).toContain("mcp-scale-low");

  const explained = await call(http, "explain_task", { namespace: NS, name: "mcp-scale-low" });
  expect(explained.isError).toBeFalsy();
  expect(explained.structuredContent!.sentence).toBe(
    `${NS}/mcp-scale-low is Completed (Completed): applied and verified. The broker's answer: allowed, every rule passed.`,
  );
  expect(explained.structuredContent!.policyReason).toMatchObject({ code: "allowed", meaning: "every rule passed" });
  const reasons = explained.structuredContent!.reasons as { reason: string; meaning: string }[];
  expect(reasons.find(x => x.reason === "Completed")?.meaning).toBe("applied and verified");
});

test("submit_change over HTTP: a token bound to another change is Denied, the Deployment unchanged, and explained", async () => {
  kube.run(["scale", "deployment", TARGET, "-n", NS, "--replicas=2"]);
  const token = await mint({ replicas: 4 });
  const r = await call(http, "submit_change", { ...scale(3, token), name: "mcp-scale-mismatch" });
  expect(r.isError).toBeFalsy();
  expect(r.structuredContent).toMatchObject({
    phase: "Denied",
    finished: true,
    reason: "PolicyDenied",
    policyReason: "change_mismatch",
  });
  expect(r.structuredContent!.requestId).toEqual(expect.any(String));
  expect(replicas()).toBe(2);
  const explained = await call(stdio, "explain_task", { namespace: NS, name: "mcp-scale-mismatch" });
  const sentence = explained.structuredContent!.sentence as string;
  expect(sentence).toContain(`${NS}/mcp-scale-mismatch is Denied (PolicyDenied): the broker denied the change`);
  expect(sentence).toContain("The broker's answer: change_mismatch, the token's `con.change_sha256` is not the digest");
  expect(explained.structuredContent!.next).toMatch(/^get a token bound to this change's digest/);
});

test("a MEDIUM scale without approvals: submit_change returns AwaitingApproval; awaitApproval waits, then returns when the PoA expires", async () => {
  kube.run(["scale", "deployment", TARGET, "-n", NS, "--replicas=2"]);
  const token = await stack.mint({
    agent: AGENT,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name: TARGET },
    maxReplicas: 10,
    ttlSeconds: 25,
    payload: { replicas: 0 },
  });
  minted.push(token);
  const r = await call(http, "submit_change", { ...scale(0, token), name: "mcp-scale-zero" });
  expect(r.isError).toBeFalsy();
  expect(r.structuredContent).toMatchObject({
    phase: "AwaitingApproval",
    finished: false,
    waitedOut: false,
    reason: "ApprovalRequired",
    riskTier: "MEDIUM",
  });
  const ref = { name: "mcp-scale-zero", namespace: NS };
  const waiting = await awaitApproval(ref, { kubeconfig: cluster.kubeconfig, timeoutMs: 3_000, pollMs: 500 });
  expect(waiting).toMatchObject({ phase: "AwaitingApproval", timedOut: true });
  const moved = await awaitApproval(ref, { kubeconfig: cluster.kubeconfig, timeoutMs: 120_000, pollMs: 1_000 });
  expect(moved).toMatchObject({ phase: "Denied", timedOut: false });
  expect(mainReason(moved.status)).toBe("ApprovalTimeout");
  expect(replicas()).toBe(2);
});

test("plan_change over stdio: digest, tier, approvals and diff, nothing written; a token for that digest then Completes", async () => {
  kube.run(["scale", "deployment", TARGET, "-n", NS, "--replicas=2"]);
  const change = {
    agentId: AGENT,
    action: "scale",
    target: { kind: "Deployment", name: TARGET, namespace: NS },
    payload: { replicas: 4 },
  };
  const r = await call(stdio, "plan_change", { ...change, name: "mcp-plan", waitSeconds: 180 });
  expect(r.isError).toBeFalsy();
  const digest = taskChangeDigest(change as never);
  expect(r.structuredContent).toMatchObject({
    name: "mcp-plan",
    phase: "Planned",
    changeSha256: digest,
    riskTier: "LOW",
    approvalsRequired: { count: 0 },
    diffTruncated: false,
  });
  expect(r.structuredContent!.diff).toMatch(/^\+.*replicas: 4$/m);
  expect(replicas()).toBe(2);
  const token = await stack.mint({
    agent: AGENT,
    action: "scale",
    target: change.target,
    maxReplicas: 10,
    ttlSeconds: 300,
    changeSha256: r.structuredContent!.changeSha256 as string,
  });
  minted.push(token);
  const done = await call(http, "submit_change", {
    ...change,
    poaToken: token,
    name: "mcp-plan-apply",
    waitSeconds: 180,
  });
  expect(done.structuredContent).toMatchObject({ phase: "Completed", policyReason: "allowed" });
  expect(replicas()).toBe(4);
});

describe("tool errors name the field", () => {
  test("a kind the action does not take, a negative replica count and an unknown field, before any task is created", async () => {
    const token = await mint({ replicas: 3 });
    const r = await call(stdio, "submit_change", {
      ...scale(-1, token),
      name: "mcp-bad-args",
      target: { kind: "ConfigMap", name: TARGET, namespace: NS },
      colour: "blue",
    });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain("target.kind: must be one of Deployment, StatefulSet, ReplicaSet for action scale");
    expect(text(r)).toContain("payload.replicas: must be at least 0");
    expect(text(r)).toContain("colour: not a known field");
    expect(text(r)).not.toContain(token);
    expect(kube.try(["get", "agenttask", "mcp-bad-args", "-n", NS]).ok).toBe(false);
  });

  test("plan_change: a payload field of another action and a missing target, over HTTP", async () => {
    const r = await call(http, "plan_change", {
      agentId: AGENT,
      action: "restart",
      payload: { replicas: 3 },
    });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain("target: is required");
    expect(text(r)).toContain("payload.replicas: not a known field (known: reason) for action restart");
  });

  test("get_task of a task that does not exist: the API server's answer", async () => {
    const r = await call(http, "get_task", { namespace: NS, name: "no-such-task" });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain(`reading AgentTask ${NS}/no-such-task:`);
    expect(text(r)).toContain("not found");
  });

  test("a task the webhook refuses (a token that is not a JWS): the API server's message, the token cut out", async () => {
    const bogus = `not-a-jws-${"x".repeat(40)}`;
    const r = await call(stdio, "submit_change", { ...scale(3, bogus), name: "mcp-bad-token" });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain(`the API server rejected AgentTask ${NS}/mcp-bad-token`);
    expect(text(r)).toContain("poaToken");
    expect(text(r)).not.toContain(bogus);
  });
});

test("no token in anything a tool returned or either server logged", () => {
  expect(minted.length).toBeGreaterThan(2);
  expect(returned.length).toBeGreaterThan(8);
  expect(scanForSecrets([...returned, stdioLog, httpLog], minted)).toEqual([]);
  expect(httpLog).toContain("no authentication: keep it local");
});
