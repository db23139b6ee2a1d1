// GIVEN the reference broker over real mTLS with real OPA WHEN the operator's client asks the
// token preflight (POST /api/v1/verify) THEN the token's signature, lifetime, subject, action,
// target binding and single use are judged without params or context, the answer has the
// decision's shape, nothing is reserved, and every preflight is audited with phase "preflight".
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { BrokerClient, DecideRequest, VerifyRequest } from "../../capabilities/lib/broker/client";
import { mintPoa, type MintOptions } from "../../broker/poa";
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
} from "./helpers";

const logs = new LogCapture();
const keys = makePoaKeys();
const tmp = makeTempDir("atb-preflight-");
let broker: RunningBroker;
let client: BrokerClient;
let seq = 0;
const target = { kind: "Deployment", namespace: "shop", name: "web" };

const mint = (o: Partial<MintOptions> = {}): Promise<string> =>
  mintPoa({ key: keys.es256, agent: AGENT, action: "scale", target, ...o });

function ask(token: string, over: Partial<VerifyRequest> = {}, uid = "task-1") {
  const request: VerifyRequest = {
    action: "k8s.Deployment.scale",
    token,
    agentId: AGENT,
    requester: REQUESTER,
    target,
    context: { task: { uid, name: "t", namespace: "shop" } },
    ...over,
  };
  return client.verify(request, { deadline: soon(), requestIdBase: `pre-${++seq}` });
}

function decide(token: string, uid: string) {
  const request: DecideRequest = {
    action: "k8s.Deployment.scale",
    token,
    agentId: AGENT,
    requester: REQUESTER,
    target,
    params: { replicas: 4 },
    context: { current: { replicas: 3 }, task: { uid, name: "t", namespace: "shop" } },
  };
  return client.decide(request, { deadline: soon(), requestIdBase: `dec-${++seq}` });
}

beforeAll(async () => {
  const pki = makePki(tmp.dir);
  broker = await startTestBroker(pki, keys, logs, { audit: join(tmp.dir, "audit.jsonl") });
  client = testClient(broker.url, pki, logs);
});

afterAll(async () => {
  await client?.close();
  await broker?.stop();
  tmp.remove();
});

test("a token bound to this action and target passes, with the action's default tier", async () => {
  await expect(ask(await mint())).resolves.toMatchObject({ allowed: true, reason: "token_verified", riskTier: "LOW" });
});

test.each([
  ["a token signed by an unknown key", () => mint({ key: keys.rogue }), {}, "poa_signature_invalid"],
  [
    "an expired token",
    () => mint({ issuedAt: Math.floor(Date.now() / 1000) - 400, ttlSeconds: 300 }),
    {},
    "poa_expired",
  ],
  ["a token for another agent", () => mint({ agent: "spiffe://atb.test/agent/other" }), {}, "sub_mismatch"],
  ["a token for another target", () => mint(), { target: { ...target, name: "api" } }, "target_mismatch"],
  ["a token for another action", () => mint({ action: "restart" }), {}, "action_mismatch"],
])("%s is refused with its reason", async (_name, make, over, reason) => {
  await expect(ask(await make(), over)).resolves.toMatchObject({ allowed: false, reason });
});

test("the preflight reserves nothing; once a decision used the jti, another task's preflight is a replay, the same task's is not", async () => {
  const token = await mint();
  await expect(ask(token, {}, "a")).resolves.toMatchObject({ allowed: true });
  await expect(ask(token, {}, "b")).resolves.toMatchObject({ allowed: true });
  await expect(decide(token, "a")).resolves.toMatchObject({ allowed: true });
  await expect(ask(token, {}, "b")).resolves.toMatchObject({ allowed: false, reason: "jti_replayed" });
  await expect(ask(token, {}, "a")).resolves.toMatchObject({ allowed: true });
});

test("every preflight is audited with phase preflight; decisions are not", () => {
  const lines = readFileSync(join(tmp.dir, "audit.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map(l => JSON.parse(l) as { phase?: string; reason: string });
  const pre = lines.filter(l => l.phase === "preflight");
  expect(pre.length).toBeGreaterThanOrEqual(9);
  expect(lines.filter(l => l.phase === undefined).map(l => l.reason)).toEqual(["allowed"]);
});
