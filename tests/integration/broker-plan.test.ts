// GIVEN the reference broker over real mTLS with real OPA WHEN the operator's client asks a plan
// (POST /api/v1/plan) THEN the answer is the tier and the approvals the policy would need and the
// change digest of the params, never an allow; no token is taken (a body with one is refused),
// and every plan is audited with phase "plan".
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import type { BrokerClient, PlanRequest } from "../../capabilities/lib/broker/client";
import { changeDigest } from "../../capabilities/lib/change-digest";
import type { RunningBroker } from "../../broker/server";
import {
  AGENT,
  REQUESTER,
  LogCapture,
  makePki,
  makePoaKeys,
  makeTempDir,
  soon,
  startTestBroker,
  testClient,
  type TestPki,
} from "./helpers";

const logs = new LogCapture();
const keys = makePoaKeys();
const tmp = makeTempDir("atb-plan-");
let broker: RunningBroker;
let client: BrokerClient;
let pki: TestPki;
let seq = 0;

function question(over: Partial<PlanRequest> = {}): PlanRequest {
  return {
    action: "k8s.Deployment.scale",
    agentId: AGENT,
    requester: REQUESTER,
    target: { kind: "Deployment", namespace: "shop", name: "web" },
    params: { replicas: 4 },
    context: { current: { replicas: 3 }, task: { uid: "t-1", name: "t", namespace: "shop" } },
    ...over,
  };
}

const plan = (over: Partial<PlanRequest> = {}) =>
  client.plan(question(over), { deadline: soon(), requestIdBase: `plan-${++seq}` });

/** A raw POST with the operator's client certificate (what the client itself never sends). */
function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(path, broker.url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: "POST",
        cert: readFileSync(pki.client.cert),
        key: readFileSync(pki.client.key),
        ca: readFileSync(pki.ca.cert),
        headers: { "content-type": "application/json" },
      },
      res => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }),
        );
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

beforeAll(async () => {
  pki = makePki(tmp.dir);
  broker = await startTestBroker(pki, keys, logs, { audit: join(tmp.dir, "audit.jsonl") });
  client = testClient(broker.url, pki, logs);
});

afterAll(async () => {
  await client?.close();
  await broker?.stop();
  tmp.remove();
});

test("a LOW scale: no approvals, never allowed", async () => {
  await expect(plan()).resolves.toMatchObject({
    riskTier: "LOW",
    approvalsRequired: { count: 0 },
    changeSha256: changeDigest({ replicas: 4 }),
    reason: "plan_only",
  });
});

test("the tier and approvals follow the policy: a risky scale, a deploy, a protected namespace", async () => {
  await expect(plan({ params: { replicas: 30 } })).resolves.toMatchObject({
    riskTier: "MEDIUM",
    approvalsRequired: { count: 1 },
  });
  const deploy = await plan({ action: "k8s.Deployment.deploy", params: { image: "nginx:1.28", container: null } });
  expect(deploy).toMatchObject({ riskTier: "HIGH", approvalsRequired: { count: 2 } });
  await expect(plan({ target: { kind: "Deployment", namespace: "kube-system", name: "web" } })).resolves.toMatchObject({
    riskTier: "CRITICAL",
    approvalsRequired: { count: 2, roles: ["executive"] },
  });
});

test("the answer on the wire never allows and carries the policy's details", async () => {
  const r = await post("/api/v1/plan", {
    action: "k8s.Deployment.scale",
    agent_id: AGENT,
    requester: REQUESTER,
    target: { kind: "Deployment", namespace: "shop", name: "web" },
    params: { replicas: 100000 },
    context: {},
  });
  expect(r.status).toBe(200);
  expect(r.body).toMatchObject({ allowed: false, plan: true, reason: "plan_only", risk_tier: "MEDIUM" });
  expect((r.body.details as { policy_denies: string[] }).policy_denies).toContain("replicas_above_limit");
});

test.each([
  ["token", { token: "a.b.c" }, "`token` is not taken by a plan"],
  ["attestations", { attestations: ["a.b.c"] }, "`attestations` is not taken by a plan"],
  ["a bad target", { target: { kind: "Deployment" } }, "`target.name`"],
])("a body with %s is refused (400)", async (_what, extra, message) => {
  const r = await post("/api/v1/plan", {
    action: "k8s.Deployment.scale",
    agent_id: AGENT,
    requester: REQUESTER,
    target: { kind: "Deployment", namespace: "shop", name: "web" },
    params: { replicas: 2 },
    context: {},
    ...extra,
  });
  expect(r.status).toBe(400);
  expect(String(r.body.message)).toContain(message);
  expect(JSON.stringify(r.body)).not.toContain("a.b.c");
});

test("every plan is audited with phase plan, reason plan_only, no jti", async () => {
  await plan();
  const lines = readFileSync(join(tmp.dir, "audit.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map(l => JSON.parse(l) as { phase?: string; reason: string; poa_jti: unknown; decision: string });
  const plans = lines.filter(l => l.phase === "plan");
  expect(plans.length).toBeGreaterThanOrEqual(5);
  for (const p of plans) expect(p).toMatchObject({ reason: "plan_only", poa_jti: null, decision: "deny" });
  expect(lines.filter(l => l.phase !== "plan")).toEqual([]);
});
