// GIVEN the reference broker over real mTLS with real OPA and the shipped policy data (the SPIFFE
// Kubernetes form in atb.example.com) WHEN the operator's client asks the preflight and the
// decision with a `requester` THEN a ServiceAccount may act as its own SPIFFE ID and nothing else:
// another identity presenting a valid token for that agent, a copy of a token a task already used,
// or a request without a requester is denied requester_mismatch, by the preflight and by the
// decision alike, without burning the token for its holder; explicit entries in the policy data
// bind users, groups and ServiceAccounts to exact agents or prefixes; the audit names the requester.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import { Agent } from "undici";
import type { BrokerClient, DecideRequest, VerifyRequest } from "../../capabilities/lib/broker/client";
import type { Requester } from "../../capabilities/lib/requester";
import { mintPoa, type MintOptions } from "../../broker/poa";
import type { RunningBroker } from "../../broker/server";
import {
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
const tmp = makeTempDir("atb-requester-");
const target = { kind: "Deployment", namespace: "shop", name: "web" };
const sa = (ns: string, name: string): Requester => ({
  username: `system:serviceaccount:${ns}:${name}`,
  uid: `uid-of-${name}`,
  groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"],
});
const A = sa("shop", "agent-a");
const B = sa("shop", "agent-b");
const ID_A = "spiffe://atb.example.com/ns/shop/sa/agent-a";
const ID_B = "spiffe://atb.example.com/ns/shop/sa/agent-b";
const RELEASE = "spiffe://atb.example.com/agent/release/nightly";
const ALICE: Requester = { username: "alice@example.com", groups: ["release-managers", "system:authenticated"] };

let pki: TestPki;
let broker: RunningBroker;
let client: BrokerClient;
let seq = 0;

const mint = (agent: string, o: Partial<MintOptions> = {}): Promise<string> =>
  mintPoa({ key: keys.es256, agent, action: "scale", target, ...o });

interface Ask {
  token: string;
  agentId: string;
  requester: Requester;
  task: string;
}

function verifyReq(a: Ask): VerifyRequest {
  return {
    action: "k8s.Deployment.scale",
    token: a.token,
    agentId: a.agentId,
    requester: a.requester,
    target,
    context: { task: { uid: a.task, name: a.task, namespace: "shop" } },
  };
}

const decideReq = (a: Ask): DecideRequest => ({
  ...verifyReq(a),
  params: { replicas: 4 },
  context: { current: { replicas: 3 }, task: { uid: a.task, name: a.task, namespace: "shop" } },
});

const options = () => ({ deadline: soon(), requestIdBase: `req-${++seq}` });
const preflight = (a: Ask) => client.verify(verifyReq(a), options());
const decide = (a: Ask) => client.decide(decideReq(a), options());

/** Both questions, as the operator asks them for one task. */
async function both(a: Ask): Promise<[string, string]> {
  const [p, d] = [await preflight(a), await decide(a)];
  return [p.allowed ? "allowed" : p.reason, d.allowed ? "allowed" : d.reason];
}

/** A raw POST, for bodies the operator's client never sends. */
async function post(
  path: string,
  body: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const dispatcher = new Agent({
    connect: { cert: readFileSync(pki.client.cert), key: readFileSync(pki.client.key), ca: readFileSync(pki.ca.cert) },
  });
  try {
    const res = await request(`${broker.url}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
      dispatcher,
    });
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
  } finally {
    await dispatcher.close();
  }
}

beforeAll(async () => {
  pki = makePki(tmp.dir);
  // The shipped data, plus two explicit entries: alice (by user) and the release managers (by
  // group) for the release agents, and the ServiceAccount ci/deployer for one exact agent.
  broker = await startTestBroker(pki, keys, logs, {
    audit: join(tmp.dir, "audit.jsonl"),
    bindingEntries: [
      { name: "release", agents: ["spiffe://atb.example.com/agent/release/*"], users: ["alice@example.com"] },
      { name: "release-managers", agents: [RELEASE], groups: ["release-managers"] },
      { name: "ci", agents: ["spiffe://atb.example.com/agent/deployer"], service_accounts: ["ci/deployer"] },
    ],
  });
  client = testClient(broker.url, pki, logs);
});

afterAll(async () => {
  await client?.close();
  await broker?.stop();
  tmp.remove();
});

describe("the SPIFFE Kubernetes form", () => {
  test("a ServiceAccount acts as spiffe://<trust domain>/ns/<ns>/sa/<name>", async () => {
    expect(await both({ token: await mint(ID_A), agentId: ID_A, requester: A, task: "a-own" })).toEqual([
      "allowed",
      "allowed",
    ]);
  });

  test("identity A claiming agent B with B's valid token is denied requester_mismatch, and the token stays B's", async () => {
    const token = await mint(ID_B);
    expect(await both({ token, agentId: ID_B, requester: A, task: "a-claims-b" })).toEqual([
      "requester_mismatch",
      "requester_mismatch",
    ]);
    // The denial burned nothing: B's own task with the same token is allowed.
    expect(await both({ token, agentId: ID_B, requester: B, task: "b-own" })).toEqual(["allowed", "allowed"]);
  });

  test("a token copied from B's task into a new task by A is denied, whichever agent the copy claims", async () => {
    const token = await mint(ID_B);
    expect(await both({ token, agentId: ID_B, requester: B, task: "b-first" })).toEqual(["allowed", "allowed"]);
    // The operator asks the preflight first: requester_mismatch. The decision checks the jti
    // before the policy, so a copy of a used token is a replay there, whoever presents it.
    expect(await both({ token, agentId: ID_B, requester: A, task: "a-copy" })).toEqual([
      "requester_mismatch",
      "jti_replayed",
    ]);
    expect(await both({ token, agentId: ID_A, requester: A, task: "a-copy-own" })).toEqual([
      "sub_mismatch",
      "sub_mismatch",
    ]);
  });

  test("the same account in another trust domain, or another account's path, binds nothing", async () => {
    const elsewhere = "spiffe://elsewhere.example/ns/shop/sa/agent-a";
    expect(await both({ token: await mint(elsewhere), agentId: elsewhere, requester: A, task: "td" })).toEqual([
      "requester_mismatch",
      "requester_mismatch",
    ]);
    const human: Requester = { username: "agent-a", groups: ["system:authenticated"] };
    expect(await both({ token: await mint(ID_A), agentId: ID_A, requester: human, task: "user" })).toEqual([
      "requester_mismatch",
      "requester_mismatch",
    ]);
  });
});

describe("explicit entries", () => {
  test("bind a user to a prefix of agents, a group and a ServiceAccount to exact agents", async () => {
    const nightly = await mint(RELEASE);
    expect(await both({ token: nightly, agentId: RELEASE, requester: ALICE, task: "alice" })).toEqual([
      "allowed",
      "allowed",
    ]);
    const carol: Requester = { username: "carol@example.com", groups: ["release-managers"] };
    expect(await both({ token: await mint(RELEASE), agentId: RELEASE, requester: carol, task: "carol" })).toEqual([
      "allowed",
      "allowed",
    ]);
    const weekly = "spiffe://atb.example.com/agent/release/weekly";
    expect(await both({ token: await mint(weekly), agentId: weekly, requester: carol, task: "carol-weekly" })).toEqual([
      "requester_mismatch",
      "requester_mismatch",
    ]);
    const deployer = "spiffe://atb.example.com/agent/deployer";
    expect(
      await both({ token: await mint(deployer), agentId: deployer, requester: sa("ci", "deployer"), task: "ci" }),
    ).toEqual(["allowed", "allowed"]);
    expect(
      await both({ token: await mint(deployer), agentId: deployer, requester: sa("ci", "other"), task: "ci-other" }),
    ).toEqual(["requester_mismatch", "requester_mismatch"]);
  });

  test("the decision says which rule bound the requester", async () => {
    const d = await post("/api/v1/decide", {
      action: "k8s.Deployment.scale",
      token: await mint(RELEASE),
      agent_id: RELEASE,
      requester: ALICE,
      target,
      params: { replicas: 4 },
      context: { current: { replicas: 3 }, task: { uid: "details", name: "t", namespace: "shop" } },
    });
    expect(d.status).toBe(200);
    expect((d.json.metadata as { details: { requester: unknown } }).details.requester).toEqual({
      username: "alice@example.com",
      bound_by: ["entry:release", "entry:release-managers"],
    });
  });
});

describe("requests without a (well-formed) requester", () => {
  test("a body without one is denied requester_mismatch by both endpoints (an operator that does not send it)", async () => {
    for (const path of ["/api/v1/verify", "/api/v1/decide"]) {
      const r = await post(path, {
        action: "k8s.Deployment.scale",
        token: await mint(ID_A),
        agent_id: ID_A,
        target,
        params: { replicas: 4 },
        context: { current: { replicas: 3 }, task: { uid: `none-${path}`, name: "t", namespace: "shop" } },
      });
      expect({ path, status: r.status, allowed: r.json.allowed, reason: r.json.reason }).toEqual({
        path,
        status: 200,
        allowed: false,
        reason: "requester_mismatch",
      });
    }
  });

  test.each([
    ["a string", "system:serviceaccount:shop:agent-a"],
    ["no username", { groups: [] }],
    ["an empty username", { username: "", groups: [] }],
    ["groups that are not a list of strings", { username: "bob", groups: "admins" }],
    ["too many groups", { username: "bob", groups: Array.from({ length: 65 }, (_, i) => `g${i}`) }],
  ])("a requester that is %s is a 400 naming the field", async (_what, requester) => {
    const r = await post("/api/v1/decide", {
      action: "k8s.Deployment.scale",
      token: await mint(ID_A),
      agent_id: ID_A,
      requester,
      target,
      params: { replicas: 4 },
    });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ error: "bad_request", message: expect.stringMatching(/^`requester` must be/) });
  });
});

test("every audit line names the requester's username (never its groups or uid)", () => {
  const lines = readFileSync(join(tmp.dir, "audit.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map(l => JSON.parse(l) as Record<string, unknown>);
  expect(lines.length).toBeGreaterThanOrEqual(20);
  const named = lines.filter(l => l.agent_identity === ID_B && l.reason === "requester_mismatch");
  expect(named.length).toBeGreaterThanOrEqual(2);
  for (const l of named) expect(l.requester_identity).toBe(A.username);
  const text = lines.map(l => JSON.stringify(l)).join("\n");
  expect(text).not.toContain("system:serviceaccounts:shop");
  expect(text).not.toContain(A.uid!);
  expect(lines.filter(l => l.requester_identity === null).length).toBeGreaterThanOrEqual(2);
});
