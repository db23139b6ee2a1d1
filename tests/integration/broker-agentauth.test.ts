// GIVEN the reference broker (real OPA, real mTLS) trusting the upstream ATB AgentAuth through its
//   JWKS URL (an https server here, with its own CA) under the "agentauth" issuer profile, plus
//   approver keys for attestations
// WHEN tokens are built exactly as AgentAuth builds them (EdDSA; header {alg, kid =
//   base64url(sha256(raw Ed25519 key)), typ: JWT}; iss atb-agentauth, sub, act, con, leg as the
//   agent sent it plus dual_control {required: true, approvers: [{id, approved_at}]} when dual
//   control was enforced, iat, exp = iat + 300, jti poa_…; no aud, no nbf)
// THEN only what AgentAuth itself vouches for, or what an approver signed, counts as an approval;
//   everything else is listed in the decision's details and ignored; the JWKS is fetched again on
//   an unknown kid; a wrong iss, aud or typ is denied with its own reason.
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { SignJWT } from "jose";
import { Agent, request } from "undici";
import { changeDigest } from "../../capabilities/lib/change-digest";
import { signAttestation, type AttestOptions } from "../../broker/poa";
import type { RunningBroker } from "../../broker/server";
import {
  AGENT,
  REQUESTER,
  LogCapture,
  makePki,
  makePoaKeys,
  makeTempDir,
  secretPieces,
  startTestBroker,
  type TestPki,
} from "./helpers";

const logs = new LogCapture();
const tmp = makeTempDir("atb-agentauth-");
const tokens: string[] = [];
let pki: TestPki;
let broker: RunningBroker;
let dispatcher: Agent;
let seq = 0;

// ---- AgentAuth: an Ed25519 key, its kid rule, its JWKS served over https -------------------

interface Issuer {
  key: KeyObject;
  kid: string;
  jwk: Record<string, string>;
}

function agentAuthKey(): Issuer {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const x = publicKey.export({ format: "jwk" }).x!;
  // AgentAuth's kid: base64url(sha256(raw 32-byte public key)), not an RFC 7638 thumbprint.
  const kid = createHash("sha256").update(Buffer.from(x, "base64url")).digest("base64url");
  return { key: privateKey, kid, jwk: { kty: "OKP", crv: "Ed25519", use: "sig", alg: "EdDSA", kid, x } };
}

let agentAuth = agentAuthKey();
const served = { keys: [agentAuth.jwk], fetches: 0, failing: false };
let jwksServer: Server;

// A second issuer, for the aud check: a PEM key under a profile that requires aud "atb-broker".
const audienced = generateKeyPairSync("ed25519");

// ---- Approvers --------------------------------------------------------------------------------

const approverKeys = {
  alice: generateKeyPairSync("ed25519"),
  bob: generateKeyPairSync("ec", { namedCurve: "P-256" }),
  cto: generateKeyPairSync("ed25519"),
  ciso: generateKeyPairSync("ed25519"),
  carol: generateKeyPairSync("ed25519"),
  agentAlias: generateKeyPairSync("ed25519"),
};
const pem = (k: KeyObject) => k.export({ type: "spki", format: "pem" }).toString();
/** The approver id of the agent's own key, in another spelling of the agent's SPIFFE ID. */
const AGENT_ALIAS = `${AGENT.toUpperCase()}/`;

// ---- Requests ---------------------------------------------------------------------------------

const shop = { kind: "Deployment", namespace: "shop", name: "web" };
const system = { kind: "Deployment", namespace: "kube-system", name: "coredns" };
const rollbackParams = { revision: 1, template_hash: "5d4b9c7f8" };
const restartParams = { restartedAt: "intent" };

interface Case {
  action?: string;
  target?: typeof shop;
  params?: Record<string, unknown>;
  taskUid?: string;
  attestations?: string[];
}

const actionOf = (c: Case) => c.action ?? "k8s.Deployment.rollback";
const paramsOf = (c: Case) => c.params ?? rollbackParams;

interface Minted {
  token: string;
  jti: string;
}

/** A PoA exactly as AgentAuth mints it at /v1/mandate. */
async function mandate(
  c: Case,
  leg: Record<string, unknown>,
  o: { issuer?: Issuer; iss?: string; typ?: string; aud?: string | string[]; key?: KeyObject } = {},
): Promise<Minted> {
  const issuer = o.issuer ?? agentAuth;
  const target = c.target ?? shop;
  const iat = Math.floor(Date.now() / 1000);
  const jti = `poa_${randomBytes(16).toString("base64url")}`;
  const claims: Record<string, unknown> = {
    act: actionOf(c),
    con: { ...target, change_sha256: changeDigest(paramsOf(c)) },
    leg: { jurisdiction: "EU", accountable_party: { type: "human", id: "owner@example.com" }, ...leg },
    iss: o.iss ?? "atb-agentauth",
    sub: AGENT,
    iat,
    exp: iat + 300,
    jti,
  };
  if (o.aud !== undefined) claims.aud = o.aud;
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "EdDSA", kid: issuer.kid, typ: o.typ ?? "JWT" })
    .sign(o.key ?? issuer.key);
  tokens.push(token);
  return { token, jti };
}

/** The leg block AgentAuth itself writes when it enforced dual control. */
function enforcedDualControl(...ids: string[]): Record<string, unknown> {
  const approvedAt = new Date().toISOString();
  return { dual_control: { required: true, approvers: ids.map(id => ({ id, approved_at: approvedAt })) } };
}

interface Answer {
  status: number;
  body: {
    allowed?: boolean;
    reason?: string;
    risk_tier?: string;
    error?: string;
    metadata?: { details?: { ignored_approvals?: { source: string; id: string | null; why: string }[] } };
  };
}

async function decide(m: Minted, c: Case = {}): Promise<Answer> {
  const target = c.target ?? shop;
  const body = {
    action: actionOf(c),
    token: m.token,
    agent_id: AGENT,
    requester: REQUESTER,
    target,
    params: paramsOf(c),
    context: { task: { uid: c.taskUid ?? `uid-${++seq}`, name: "t", namespace: "agents" }, current: { replicas: 3 } },
    ...(c.attestations ? { attestations: c.attestations } : {}),
  };
  const res = await request(`${broker.url}/api/v1/decide`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", "x-request-id": `agentauth-${seq}` },
    dispatcher,
  });
  return { status: res.statusCode, body: (await res.body.json()) as Answer["body"] };
}

const ignored = (a: Answer) =>
  (a.body.metadata?.details?.ignored_approvals ?? []).map(i => `${i.source}:${i.id}:${i.why}`);

type Who = keyof typeof approverKeys;
const ids: Record<Who, string> = {
  alice: "spiffe://atb.test/user/alice",
  bob: "bob@example.com",
  cto: "cto",
  ciso: "ciso",
  carol: "carol",
  agentAlias: AGENT_ALIAS,
};

function attest(who: Who, over: Partial<AttestOptions> = {}): Promise<string> {
  return signAttestation({
    key: approverKeys[who].privateKey,
    approver: ids[who],
    change: rollbackParams,
    ttlSeconds: 600,
    ...over,
  });
}

beforeAll(async () => {
  pki = makePki(tmp.dir);
  jwksServer = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) }, (req, res) => {
    served.fetches++;
    if (req.url !== "/.well-known/jwks.json" || served.failing) {
      res.writeHead(served.failing ? 500 : 404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: served.keys }));
  });
  await new Promise<void>(resolve => jwksServer.listen(0, "127.0.0.1", resolve));
  const jwksUrl = `https://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  broker = await startTestBroker(pki, makePoaKeys(), logs, {
    poa: {
      maxLifetimeS: 300,
      clockSkewS: 5,
      trust: {
        profiles: [
          // Cooldown 0: every unknown kid may fetch again (upstream's broker does the same).
          { name: "agentauth", preset: "agentauth", jwks_url: jwksUrl, jwks_ca_file: pki.ca.cert, jwks_cooldown_s: 0 },
          { name: "audienced", iss: "other-issuer", aud: "atb-broker", typ: "JWT", keys: [pem(audienced.publicKey)] },
        ],
        approvers: [
          { id: ids.alice, keys: [pem(approverKeys.alice.publicKey)] },
          { id: ids.bob, keys: [pem(approverKeys.bob.publicKey)] },
          { id: ids.cto, roles: ["executive"], keys: [pem(approverKeys.cto.publicKey)] },
          { id: ids.ciso, roles: ["executive"], keys: [pem(approverKeys.ciso.publicKey)] },
          { id: ids.carol, keys: [pem(approverKeys.carol.publicKey)] },
          { id: ids.agentAlias, keys: [pem(approverKeys.agentAlias.publicKey)] },
        ],
      },
    },
  });
  dispatcher = new Agent({
    connect: { ca: readFileSync(pki.ca.cert), cert: readFileSync(pki.client.cert), key: readFileSync(pki.client.key) },
  });
});

afterAll(async () => {
  await dispatcher?.close();
  await broker?.stop();
  await new Promise(resolve => jwksServer?.close(resolve));
  tmp.remove();
});

describe("AgentAuth tokens under the agentauth issuer profile", () => {
  it("allows a LOW change with a token verified through the JWKS URL (kid = sha256 of the raw key)", async () => {
    const m = await mandate({ action: "k8s.Deployment.scale", params: { replicas: 4 } }, {});
    const a = await decide(m, { action: "k8s.Deployment.scale", params: { replicas: 4 } });
    expect(a.body).toMatchObject({ allowed: true, reason: "allowed", risk_tier: "LOW" });
  });

  it("counts no agent-written leg block: a HIGH change is denied and the details list what was ignored", async () => {
    const m = await mandate(
      {},
      {
        approval: { approver_id: "alice" },
        dual_control: { required: false, approvers: [{ id: "alice" }, { id: "bob" }] },
        executive_control: { required: true, approvers: [{ id: "cto" }, { id: "ciso" }] },
      },
    );
    const a = await decide(m);
    expect(a.body).toMatchObject({ allowed: false, reason: "high_risk_dual_control_required", risk_tier: "HIGH" });
    expect(ignored(a)).toEqual([
      "approval:alice:not_vouched_by_issuer",
      "dual_control:alice:dual_control_not_required",
      "dual_control:bob:dual_control_not_required",
      "executive_control:cto:not_vouched_by_issuer",
      "executive_control:ciso:not_vouched_by_issuer",
    ]);
  });

  it("does not count a dual_control block without required (the agent's words)", async () => {
    const m = await mandate({}, { dual_control: { approvers: [{ id: "alice" }, { id: "bob" }] } });
    const a = await decide(m);
    expect(a.body).toMatchObject({ allowed: false, reason: "high_risk_dual_control_required" });
    expect(ignored(a)).toEqual([
      "dual_control:alice:dual_control_not_required",
      "dual_control:bob:dual_control_not_required",
    ]);
  });

  it("does not let agent-written executive_control open a protected namespace (CRITICAL)", async () => {
    const c = { action: "k8s.Deployment.restart", target: system, params: restartParams };
    const m = await mandate(c, { executive_control: { required: true, approvers: [{ id: "cto" }, { id: "ciso" }] } });
    const a = await decide(m, c);
    expect(a.body).toMatchObject({
      allowed: false,
      reason: "critical_risk_executive_approval_required",
      risk_tier: "CRITICAL",
    });
  });

  it("counts AgentAuth's own dual_control {required: true} with two distinct approvers: a HIGH change is allowed", async () => {
    const m = await mandate({}, enforcedDualControl("alice@example.com", "bob@example.com"));
    await expect(decide(m)).resolves.toMatchObject({ body: { allowed: true, reason: "allowed", risk_tier: "HIGH" } });
  });

  it("does not count one approver twice in AgentAuth's dual_control, however the id is spelled", async () => {
    const m = await mandate({}, enforcedDualControl("alice@example.com", "Alice@Example.com/"));
    await expect(decide(m)).resolves.toMatchObject({ body: { allowed: false, reason: "duplicate_approvers" } });
  });
});

describe("approver attestations", () => {
  it("allows a HIGH change with two valid attestations carried in leg.attestations, bound to the jti", async () => {
    const jti = `poa_${randomBytes(16).toString("base64url")}`;
    // The agent cannot know AgentAuth's jti in advance; here the test signs the token itself to
    // bind it (the task uid binding below is the one that works with AgentAuth).
    const iat = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({
      act: "k8s.Deployment.rollback",
      con: { ...shop, change_sha256: changeDigest(rollbackParams) },
      leg: { attestations: [await attest("alice", { poaJti: jti }), await attest("bob", { poaJti: jti })] },
      iss: "atb-agentauth",
      sub: AGENT,
      iat,
      exp: iat + 300,
      jti,
    })
      .setProtectedHeader({ alg: "EdDSA", kid: agentAuth.kid, typ: "JWT" })
      .sign(agentAuth.key);
    tokens.push(token);
    await expect(decide({ token, jti })).resolves.toMatchObject({ body: { allowed: true, risk_tier: "HIGH" } });
  });

  it("allows a HIGH change with two valid attestations sent next to the token, bound to the task", async () => {
    const m = await mandate({}, {});
    const taskUid = "task-attested-1";
    const attestations = [await attest("alice", { taskUid }), await attest("bob", { taskUid })];
    await expect(decide(m, { taskUid, attestations })).resolves.toMatchObject({ body: { allowed: true } });
  });

  it.each<[string, (jti: string) => Promise<string>, string]>([
    [
      "forged (signed by another key in alice's name)",
      jti =>
        signAttestation({
          key: generateKeyPairSync("ed25519").privateKey,
          approver: ids.alice,
          change: rollbackParams,
          poaJti: jti,
        }),
      "attestation:alice:signature_invalid",
    ],
    [
      "expired",
      jti => attest("alice", { poaJti: jti, issuedAt: Math.floor(Date.now() / 1000) - 700, ttlSeconds: 600 }),
      "attestation:alice:expired",
    ],
    [
      "for another change",
      jti => attest("alice", { poaJti: jti, change: { ...rollbackParams, revision: 7 } }),
      "attestation:alice:change_digest_mismatch",
    ],
    ["for another token", () => attest("alice", { poaJti: "poa_someone-elses" }), "attestation:alice:binding_mismatch"],
    ["for another task", () => attest("alice", { taskUid: "another-task" }), "attestation:alice:binding_mismatch"],
    [
      "longer-lived than the broker accepts",
      jti => attest("alice", { poaJti: jti, ttlSeconds: 7200 }),
      "attestation:alice:lifetime_invalid",
    ],
    [
      "from an approver the broker does not know",
      jti =>
        signAttestation({
          key: approverKeys.alice.privateKey,
          approver: "mallory",
          change: rollbackParams,
          poaJti: jti,
        }),
      "attestation:mallory:approver_unknown",
    ],
  ])("does not count an attestation %s", async (_name, make, why) => {
    const m = await mandate({}, {});
    const a = await decide(m, { attestations: [await make(m.jti), await attest("bob", { poaJti: m.jti })] });
    expect(a.body).toMatchObject({ allowed: false, reason: "high_risk_dual_control_required" });
    expect(ignored(a)).toEqual([why]);
  });

  it("does not count an attestation without a binding", async () => {
    const m = await mandate({}, {});
    const iat = Math.floor(Date.now() / 1000);
    const unbound = await new SignJWT({ approver: ids.alice, change_sha256: changeDigest(rollbackParams) })
      .setProtectedHeader({ alg: "EdDSA", typ: "atb-attestation+jwt" })
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .sign(approverKeys.alice.privateKey);
    const a = await decide(m, { attestations: [unbound, await attest("bob", { poaJti: m.jti })] });
    expect(a.body).toMatchObject({ allowed: false, reason: "high_risk_dual_control_required" });
    expect(ignored(a)).toEqual(["attestation:alice:binding_missing"]);
  });

  it("denies a request in which the agent attests for itself (its id in another spelling)", async () => {
    const m = await mandate({}, {});
    const attestations = [await attest("alice", { poaJti: m.jti }), await attest("agentAlias", { poaJti: m.jti })];
    await expect(decide(m, { attestations })).resolves.toMatchObject({
      body: { allowed: false, reason: "self_approval_not_allowed" },
    });
  });

  it("counts one approver once, whatever the case or form of the id it signed", async () => {
    const m = await mandate({}, {});
    const attestations = [
      await attest("alice", { poaJti: m.jti, approver: "ALICE" }),
      await attest("alice", { poaJti: m.jti, approver: "spiffe://atb.test/user/Alice/" }),
    ];
    await expect(decide(m, { attestations })).resolves.toMatchObject({
      body: { allowed: false, reason: "duplicate_approvers" },
    });
  });

  it("counts an executive role only where the approver's key grants it (CRITICAL)", async () => {
    const c = { action: "k8s.Deployment.restart", target: system, params: restartParams };
    const change = restartParams;
    const m = await mandate(c, {});
    const withCarol = [
      await attest("cto", { poaJti: m.jti, change, roles: ["executive"] }),
      await attest("carol", { poaJti: m.jti, change, roles: ["executive"] }),
    ];
    const denied = await decide(m, { ...c, attestations: withCarol });
    expect(denied.body).toMatchObject({ allowed: false, reason: "critical_risk_executive_approval_required" });
    expect(ignored(denied)).toEqual(["attestation:carol:role_not_granted"]);
    const executives = [
      await attest("cto", { poaJti: m.jti, change, roles: ["executive"] }),
      await attest("ciso", { poaJti: m.jti, change, roles: ["executive"] }),
    ];
    await expect(decide(m, { ...c, attestations: executives })).resolves.toMatchObject({
      body: { allowed: true, risk_tier: "CRITICAL" },
    });
  });
});

describe("keys and the issuer's rules", () => {
  it("fetches the JWKS URL once more on an unknown kid (key rotation) and then verifies", async () => {
    const rotated = agentAuthKey();
    served.keys = [agentAuth.jwk, rotated.jwk];
    const before = served.fetches;
    const first = await mandate({ action: "k8s.Deployment.scale", params: { replicas: 4 } }, {}, { issuer: rotated });
    await expect(decide(first, { action: "k8s.Deployment.scale", params: { replicas: 4 } })).resolves.toMatchObject({
      body: { allowed: true },
    });
    expect(served.fetches - before).toBe(1);
    const second = await mandate({ action: "k8s.Deployment.scale", params: { replicas: 4 } }, {}, { issuer: rotated });
    await expect(decide(second, { action: "k8s.Deployment.scale", params: { replicas: 4 } })).resolves.toMatchObject({
      body: { allowed: true },
    });
    expect(served.fetches - before).toBe(1);
    agentAuth = rotated;
  });

  it("answers 503 poa_keys_unavailable (retried by the operator) when the JWKS cannot be fetched for an unknown kid", async () => {
    served.failing = true;
    try {
      const m = await mandate({}, {}, { issuer: agentAuthKey() });
      const a = await decide(m);
      expect(a.status).toBe(503);
      expect(a.body.error).toBe("poa_keys_unavailable");
    } finally {
      served.failing = false;
    }
  });

  it("denies a token signed by a key the JWKS does not hold", async () => {
    const stranger = agentAuthKey();
    const m = await mandate({}, {}, { issuer: stranger });
    await expect(decide(m)).resolves.toMatchObject({ body: { allowed: false, reason: "poa_signature_invalid" } });
  });

  it("denies an AgentAuth-signed token with another iss", async () => {
    const m = await mandate({}, {}, { iss: "someone-else" });
    await expect(decide(m)).resolves.toMatchObject({ body: { allowed: false, reason: "poa_issuer_untrusted" } });
  });

  it("denies an AgentAuth-signed token with another typ", async () => {
    const m = await mandate({}, {}, { typ: "at+jwt" });
    await expect(decide(m)).resolves.toMatchObject({ body: { allowed: false, reason: "poa_type_invalid" } });
  });

  it("denies a token of a profile that requires an aud when the aud is missing or another", async () => {
    const issuer = { key: audienced.privateKey, kid: "any-kid", jwk: {} };
    const scale = { action: "k8s.Deployment.scale", params: { replicas: 4 } };
    for (const aud of [undefined, "someone-else"]) {
      const m = await mandate(scale, {}, { issuer, iss: "other-issuer", aud });
      await expect(decide(m, scale)).resolves.toMatchObject({
        body: { allowed: false, reason: "poa_audience_invalid" },
      });
    }
    // A PEM key matches whatever kid the token names.
    const ok = await mandate(scale, {}, { issuer, iss: "other-issuer", aud: ["x", "atb-broker"] });
    await expect(decide(ok, scale)).resolves.toMatchObject({ body: { allowed: true } });
  });

  it("never writes a token or an attestation to a log or audit line", () => {
    const text = logs.text();
    for (const token of tokens) for (const piece of secretPieces(token)) expect(text).not.toContain(piece);
  });
});
