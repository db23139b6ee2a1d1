// GIVEN the reference broker (real OPA on policies/, real mTLS) and the operator's broker client
// WHEN the client asks for decisions with freshly minted PoAs
// THEN each tier, binding and approval rule answers with its documented reason code.
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { BrokerClient, DecideRequest } from "../../capabilities/lib/broker/client";
import { mintPoa, type MintOptions } from "../../broker/poa";
import { changeDigest } from "../../capabilities/lib/change-digest";
import type { RunningBroker } from "../../broker/server";
import {
  AGENT,
  REQUESTER,
  LogCapture,
  makePki,
  makePoaKeys,
  makeTempDir,
  secretPieces,
  soon,
  startTestBroker,
  testClient,
} from "./helpers";

const logs = new LogCapture();
const keys = makePoaKeys();
const tokens: string[] = [];
const tmp = makeTempDir("atb-policy-");
let broker: RunningBroker;
let frozen: RunningBroker;
let client: BrokerClient;
let frozenClient: BrokerClient;
let seq = 0;
let pki: ReturnType<typeof makePki>;

type Spec = Partial<MintOptions> & {
  verb?: string;
  kind?: string;
  name?: string;
  params?: Record<string, unknown>;
  current?: number;
  /** The token carries no con.change_sha256 (default: it binds the request's params). */
  unbound?: boolean;
};

async function mint(s: Spec): Promise<string> {
  const kind = s.kind ?? "Deployment";
  const token = await mintPoa({
    key: keys.es256,
    agent: AGENT,
    action: s.verb ?? "scale",
    target: { kind, namespace: "shop", name: "web" },
    // The change digest of what the request will carry: MEDIUM and up require it.
    changeSha256: s.unbound ? undefined : changeDigest(s.params ?? { replicas: 5 }),
    ...s,
  });
  tokens.push(token);
  return token;
}

function request(s: Spec, token: string): DecideRequest {
  const kind = s.kind ?? "Deployment";
  return {
    action: `k8s.${kind}.${s.verb ?? "scale"}`,
    token,
    agentId: AGENT,
    requester: REQUESTER,
    target: { kind, namespace: "shop", name: s.name ?? "web" },
    params: s.params ?? { replicas: 5 },
    context: { task: { uid: `uid-${seq}`, name: "t", namespace: "agents" }, current: { replicas: s.current ?? 3 } },
  };
}

async function decide(s: Spec, via: BrokerClient = client) {
  const token = await mint(s);
  return via.decide(request(s, token), { deadline: soon(), requestIdBase: `task-${++seq}` });
}

beforeAll(async () => {
  pki = makePki(tmp.dir);
  const data = JSON.parse(readFileSync(join(__dirname, "../../policies/data.json"), "utf8"));
  const now = Date.now();
  data.atb_config.maintenance_windows = [
    {
      name: "test-freeze",
      start: new Date(now - 3_600_000).toISOString(),
      end: new Date(now + 3_600_000).toISOString(),
    },
  ];
  const frozenData = join(tmp.dir, "frozen.json");
  writeFileSync(frozenData, JSON.stringify(data));
  broker = await startTestBroker(pki, keys, logs);
  frozen = await startTestBroker(pki, keys, logs, { dataFile: frozenData });
  client = testClient(broker.url, pki, logs);
  frozenClient = testClient(frozen.url, pki, logs);
});

afterAll(async () => {
  await client?.close();
  await frozenClient?.close();
  await broker?.stop();
  await frozen?.stop();
  tmp.remove();
});

describe("allow", () => {
  it("allows a LOW scale with a valid bound PoA and reports the decision metadata", async () => {
    const d = await decide({ maxReplicas: 5 });
    expect(d).toMatchObject({ allowed: true, riskTier: "LOW", reason: "allowed", requestId: `task-${seq}-a1` });
    expect(d.decisionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(d.policyRevision).toBe(broker.policyRevision);
    expect(d.evaluateMs).toBeGreaterThan(0);
  });
});

describe("tiers and approvals", () => {
  it.each([
    [
      "MEDIUM without approval",
      { verb: "restart", params: {} },
      { allowed: false, riskTier: "MEDIUM", reason: "medium_risk_approval_required" },
    ],
    [
      "MEDIUM with an approval",
      { verb: "restart", params: {}, approvers: ["alice"] },
      { allowed: true, riskTier: "MEDIUM", reason: "allowed" },
    ],
    [
      "MEDIUM approved by the agent itself",
      { verb: "restart", params: {}, approvers: [AGENT] },
      { allowed: false, riskTier: "MEDIUM", reason: "self_approval_not_allowed" },
    ],
    [
      "risky scale (to zero) without approval",
      { params: { replicas: 0 } },
      { allowed: false, riskTier: "MEDIUM", reason: "medium_risk_approval_required" },
    ],
    [
      "update-config without approval",
      { verb: "update-config", kind: "ConfigMap", params: {} },
      { allowed: false, riskTier: "MEDIUM", reason: "medium_risk_approval_required" },
    ],
    [
      "HIGH with one approver",
      { verb: "deploy", params: {}, approvers: ["alice"] },
      { allowed: false, riskTier: "HIGH", reason: "high_risk_dual_control_required" },
    ],
    [
      "HIGH with two identical approvers",
      { verb: "deploy", params: {}, approvers: ["alice", "alice"] },
      { allowed: false, riskTier: "HIGH", reason: "duplicate_approvers" },
    ],
    [
      "HIGH with the agent as approver",
      { verb: "rollback", params: {}, approvers: ["alice", AGENT] },
      { allowed: false, riskTier: "HIGH", reason: "self_approval_not_allowed" },
    ],
    [
      "HIGH with two distinct approvers",
      { verb: "deploy", params: {}, approvers: ["alice", "bob"] },
      { allowed: true, riskTier: "HIGH", reason: "allowed" },
    ],
    [
      "patch with two distinct approvers",
      { verb: "patch", params: {}, approvers: ["alice", "bob"] },
      { allowed: true, riskTier: "HIGH", reason: "allowed" },
    ],
    [
      "token asserting a higher tier",
      { tier: "HIGH", approvers: ["alice"] },
      { allowed: false, riskTier: "HIGH", reason: "high_risk_dual_control_required" },
    ],
    [
      "token asserting an unknown tier",
      { tier: "urgent" },
      { allowed: false, riskTier: "LOW", reason: "risk_tier_invalid" },
    ],
  ] as [string, Spec, object][])("%s", async (_name, spec, expected) => {
    const d = await decide(spec);
    expect({ allowed: d.allowed, riskTier: d.riskTier, reason: d.reason }).toEqual(expected);
  });

  it("CRITICAL (protected namespace) needs two executive approvers", async () => {
    const crit = (o: Spec) => ({ ...o, target: { kind: "Deployment", namespace: "kube-system", name: "coredns" } });
    const ask = async (o: Spec) => {
      const token = await mint(crit(o));
      const req = { ...request(o, token), target: { kind: "Deployment", namespace: "kube-system", name: "coredns" } };
      return client.decide(req, { deadline: soon(), requestIdBase: `task-${++seq}` });
    };
    await expect(ask({ approvers: ["alice", "bob"] })).resolves.toMatchObject({
      allowed: false,
      riskTier: "CRITICAL",
      reason: "critical_risk_executive_approval_required",
    });
    await expect(ask({ executiveApprovers: ["cto", "ciso"] })).resolves.toMatchObject({
      allowed: true,
      riskTier: "CRITICAL",
    });
  });
});

describe("binding", () => {
  it("denies a token for another deployment", async () => {
    await expect(decide({ name: "api" })).resolves.toMatchObject({ allowed: false, reason: "target_mismatch" });
  });

  it("denies a larger change than the token allows", async () => {
    await expect(decide({ maxReplicas: 4, params: { replicas: 5 } })).resolves.toMatchObject({
      allowed: false,
      reason: "payload_exceeds_constraints",
    });
  });

  it.each([
    ["a token for another action", { action: "k8s.Deployment.restart" }, "action_mismatch"],
    ["constraints without the target name", { constraints: { name: undefined } }, "constraints_missing_target"],
    ["replicas that are not an integer", { params: { replicas: "5" } }, "params_invalid"],
    ["replicas above the global limit", { params: { replicas: 500 }, current: 495 }, "replicas_above_limit"],
  ] as const)("denies %s", async (_n, spec, reason) => {
    await expect(decide(spec as Spec)).resolves.toMatchObject({ allowed: false, reason });
  });

  it("denies an unknown action and an action whose kind is not the target's", async () => {
    const unknown = await mint({ action: "k8s.Deployment.delete" });
    const r1 = { ...request({}, unknown), action: "k8s.Deployment.delete" };
    await expect(client.decide(r1, { deadline: soon(), requestIdBase: "unknown" })).resolves.toMatchObject({
      allowed: false,
      reason: "unknown_action",
      riskTier: "CRITICAL",
    });
    const mismatch = await mint({ action: "k8s.StatefulSet.scale" });
    const r2 = { ...request({}, mismatch), action: "k8s.StatefulSet.scale" };
    await expect(client.decide(r2, { deadline: soon(), requestIdBase: "kind" })).resolves.toMatchObject({
      allowed: false,
      reason: "action_target_kind_mismatch",
    });
  });
});

describe("the change digest (con.change_sha256 against the digest of the request's params)", () => {
  it("allows a token bound to the change, whatever the order of its keys", async () => {
    const manifest = { metadata: { name: "web", labels: { b: "2", a: "1" } }, kind: "Deployment" };
    const reordered = { kind: "Deployment", metadata: { labels: { a: "1", b: "2" }, name: "web" } };
    const token = await mint({ verb: "deploy", approvers: ["alice", "bob"], changeSha256: changeDigest({ manifest }) });
    const r = { ...request({ verb: "deploy" }, token), params: { manifest: reordered } };
    await expect(client.decide(r, { deadline: soon(), requestIdBase: `task-${++seq}` })).resolves.toMatchObject({
      allowed: true,
      riskTier: "HIGH",
    });
  });

  it("denies a token bound to another change, whatever the tier (change_mismatch)", async () => {
    const other = changeDigest({ replicas: 4 });
    await expect(decide({ changeSha256: other, maxReplicas: 10 })).resolves.toMatchObject({
      allowed: false,
      riskTier: "LOW",
      reason: "change_mismatch",
    });
    const restart: Spec = { verb: "restart", params: { restart: true }, approvers: ["alice"] };
    await expect(decide({ ...restart, changeSha256: other })).resolves.toMatchObject({
      allowed: false,
      riskTier: "MEDIUM",
      reason: "change_mismatch",
    });
  });

  it("denies a MEDIUM or HIGH token without a digest (change_digest_required); a LOW scale may do without", async () => {
    const restart: Spec = { verb: "restart", params: { restart: true }, approvers: ["alice"], unbound: true };
    await expect(decide(restart)).resolves.toMatchObject({
      allowed: false,
      riskTier: "MEDIUM",
      reason: "change_digest_required",
    });
    await expect(
      decide({ verb: "deploy", params: {}, approvers: ["alice", "bob"], unbound: true }),
    ).resolves.toMatchObject({
      allowed: false,
      riskTier: "HIGH",
      reason: "change_digest_required",
    });
    await expect(decide({ unbound: true, maxReplicas: 10 })).resolves.toMatchObject({ allowed: true, riskTier: "LOW" });
  });

  it("requires the digest only in the tiers the data names (change_digest.required_tiers)", async () => {
    const data = JSON.parse(readFileSync(join(__dirname, "../../policies/data.json"), "utf8"));
    data.atb_config.change_digest = { required_tiers: ["HIGH", "CRITICAL"] };
    const file = join(tmp.dir, "high-only.json");
    writeFileSync(file, JSON.stringify(data));
    const lenient = await startTestBroker(pki, keys, logs, { dataFile: file });
    const lenientClient = testClient(lenient.url, pki, logs);
    try {
      const restart: Spec = { verb: "restart", params: { restart: true }, approvers: ["alice"], unbound: true };
      await expect(decide(restart, lenientClient)).resolves.toMatchObject({ allowed: true, riskTier: "MEDIUM" });
      await expect(
        decide({ verb: "deploy", params: {}, approvers: ["alice", "bob"], unbound: true }, lenientClient),
      ).resolves.toMatchObject({ allowed: false, reason: "change_digest_required" });
    } finally {
      await lenientClient.close();
      await lenient.stop();
    }
  });
});

describe("maintenance window (data file, request time)", () => {
  it("denies a deploy inside the window and allows it on a broker without the window", async () => {
    const spec: Spec = { verb: "deploy", params: {}, approvers: ["alice", "bob"] };
    await expect(decide(spec, frozenClient)).resolves.toMatchObject({
      allowed: false,
      riskTier: "HIGH",
      reason: "maintenance_window",
    });
    await expect(decide(spec, client)).resolves.toMatchObject({ allowed: true });
  });

  it("does not freeze a scale", async () => {
    await expect(decide({}, frozenClient)).resolves.toMatchObject({ allowed: true });
  });
});

describe("secrets", () => {
  it("never writes a token (or a segment of one) to any client, broker or audit line", () => {
    expect(tokens.length).toBeGreaterThan(20);
    expect(logs.lines.some(l => l.includes('"type":"audit"'))).toBe(true);
    expect(logs.lines.some(l => l.includes('"subsystem":"broker-client"'))).toBe(true);
    const text = logs.text();
    for (const token of tokens) for (const piece of secretPieces(token)) expect(text).not.toContain(piece);
  });
});
