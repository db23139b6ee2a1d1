// GIVEN the reference broker over real mTLS with ES256, EdDSA and RS256 verification keys
// WHEN tokens are forged, expired, replayed, or the caller's TLS identity is wrong
// THEN the broker denies with a stable reason (or refuses at the TLS layer) and never allows.
import { readFileSync } from "node:fs";
import { connect } from "node:tls";
import { SignJWT, base64url } from "jose";
import { Agent, request as httpRequest } from "undici";
import { AtbError } from "../../capabilities/lib/errors";
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
  type TestPki,
} from "./helpers";

const logs = new LogCapture();
const keys = makePoaKeys();
const tokens: string[] = [];
const tmp = makeTempDir("atb-poa-");
let pki: TestPki;
let broker: RunningBroker;
let client: BrokerClient;
let seq = 0;
const target = { kind: "Deployment", namespace: "shop", name: "web" };

async function mint(o: Partial<MintOptions> = {}): Promise<string> {
  const token = await mintPoa({ key: keys.es256, agent: AGENT, action: "scale", target, ...o });
  tokens.push(token);
  return token;
}

function req(token: string, over: Partial<DecideRequest> = {}): DecideRequest {
  return {
    action: "k8s.Deployment.scale",
    token,
    agentId: AGENT,
    requester: REQUESTER,
    target,
    params: { replicas: 4 },
    context: { current: { replicas: 3 } },
    ...over,
  };
}

function decide(token: string, via: BrokerClient = client, over: Partial<DecideRequest> = {}) {
  return via.decide(req(token, over), { deadline: soon(), requestIdBase: `poa-${++seq}` });
}

const claims = () => ({ sub: AGENT, act: "k8s.Deployment.scale", con: target, jti: `jti-${Math.random()}` });
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  pki = makePki(tmp.dir);
  broker = await startTestBroker(pki, keys, logs);
  client = testClient(broker.url, pki, logs);
});

afterAll(async () => {
  await client?.close();
  await broker?.stop();
  tmp.remove();
});

describe("PoA verification", () => {
  it.each([
    ["ES256", () => mint()],
    ["EdDSA", () => mint({ key: keys.eddsa })],
    ["RS256", () => mint({ key: keys.rs256 })],
  ])("allows a valid %s token", async (_alg, make) => {
    await expect(decide(await make())).resolves.toMatchObject({ allowed: true, reason: "allowed" });
  });

  it.each([
    ["an expired token", () => mint({ issuedAt: now() - 400, ttlSeconds: 300 }), "poa_expired"],
    ["a token issued in the future", () => mint({ issuedAt: now() + 120 }), "poa_not_yet_valid"],
    ["a lifetime over the cap", () => mint({ ttlSeconds: 301 }), "poa_lifetime_invalid"],
    ["a token signed by an unknown key", () => mint({ key: keys.rogue }), "poa_signature_invalid"],
    ["a token for another agent", () => mint({ agent: "spiffe://atb.test/agent/other" }), "sub_mismatch"],
    [
      "a token without jti",
      async () => {
        const { sub, act, con } = claims();
        return new SignJWT({ sub, act, con })
          .setProtectedHeader({ alg: "ES256" })
          .setIssuedAt()
          .setExpirationTime("2m")
          .sign(keys.es256);
      },
      "poa_claims_missing",
    ],
    [
      "alg none",
      async () => {
        const enc = (o: object) => base64url.encode(JSON.stringify(o));
        return `${enc({ alg: "none", typ: "JWT" })}.${enc({ ...claims(), iat: now(), exp: now() + 60 })}.`;
      },
      "poa_alg_not_allowed",
    ],
    [
      "HS256",
      () =>
        new SignJWT({ ...claims() })
          .setProtectedHeader({ alg: "HS256" })
          .setIssuedAt()
          .setExpirationTime("2m")
          .sign(new TextEncoder().encode("a-shared-secret-of-32-bytes-long!")),
      "poa_alg_not_allowed",
    ],
    [
      "HS256 keyed with the broker's public key (key confusion)",
      () =>
        new SignJWT({ ...claims() })
          .setProtectedHeader({ alg: "HS256" })
          .setIssuedAt()
          .setExpirationTime("2m")
          .sign(new TextEncoder().encode(keys.publicPems[0])),
      "poa_alg_not_allowed",
    ],
    ["a string that is not a JWT", async () => "not-a-jwt", "poa_malformed"],
  ] as [string, () => Promise<string>, string][])("denies %s", async (_name, make, reason) => {
    const token = await make();
    tokens.push(token);
    await expect(decide(token)).resolves.toMatchObject({ allowed: false, reason });
  });

  it("denies a token whose payload was altered after signing", async () => {
    const [h, p, s] = (await mint()).split(".");
    const payload = JSON.parse(Buffer.from(p!, "base64url").toString());
    payload.con.name = "api";
    const forged = `${h}.${base64url.encode(JSON.stringify(payload))}.${s}`;
    tokens.push(forged);
    await expect(decide(forged, client, { target: { ...target, name: "api" } })).resolves.toMatchObject({
      allowed: false,
      reason: "poa_signature_invalid",
    });
  });
});

describe("single use (jti)", () => {
  it("denies the second use of an allowed token as a replay", async () => {
    const token = await mint();
    await expect(decide(token)).resolves.toMatchObject({ allowed: true });
    await expect(decide(token)).resolves.toMatchObject({ allowed: false, reason: "jti_replayed" });
  });

  it("binds the token to the task that used it: the same task may ask again, another task may not", async () => {
    const token = await mint();
    const forTask = (uid: string) => ({
      context: { current: { replicas: 3 }, task: { uid, name: "t", namespace: "prod" } },
    });
    await expect(decide(token, client, forTask("task-1"))).resolves.toMatchObject({ allowed: true });
    await expect(decide(token, client, forTask("task-1"))).resolves.toMatchObject({ allowed: true });
    await expect(decide(token, client, forTask("task-2"))).resolves.toMatchObject({
      allowed: false,
      reason: "jti_replayed",
    });
    await expect(decide(token)).resolves.toMatchObject({ allowed: false, reason: "jti_replayed" });
  });

  it("allows exactly one of two concurrent uses", async () => {
    const token = await mint();
    const results = await Promise.all([decide(token), decide(token)]);
    expect(results.map(r => r.allowed).sort()).toEqual([false, true]);
    expect(results.find(r => !r.allowed)?.reason).toBe("jti_replayed");
  });

  it("does not burn a token that was denied", async () => {
    // Bound to the change (MEDIUM requires it): the approval is what is missing.
    const token = await mint({ action: "restart", changeSha256: changeDigest({ restart: true }) });
    const restart = { action: "k8s.Deployment.restart", params: { restart: true } };
    await expect(decide(token, client, restart)).resolves.toMatchObject({
      allowed: false,
      reason: "medium_risk_approval_required",
    });
    await expect(decide(token, client, restart)).resolves.toMatchObject({
      allowed: false,
      reason: "medium_risk_approval_required",
    });
  });
});

describe("transport security and request validation", () => {
  function agentWith(cert: string, key: string): Agent {
    return new Agent({ connect: { ca: readFileSync(pki.ca.cert), cert: readFileSync(cert), key: readFileSync(key) } });
  }

  /** Connects with raw TLS and reports what came back before the socket closed. */
  function probe(cert?: string, key?: string): Promise<string[]> {
    return new Promise(resolve => {
      const events: string[] = [];
      const socket = connect(
        {
          host: "127.0.0.1",
          port: broker.port,
          ca: readFileSync(pki.ca.cert),
          cert: cert && readFileSync(cert),
          key: key && readFileSync(key),
        },
        () => {
          socket.write("GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n");
        },
      );
      socket.on("data", () => {
        events.push("http answer");
        socket.destroy();
      });
      socket.on("error", err => events.push(`error ${(err as NodeJS.ErrnoException).code}`));
      socket.on("close", () => resolve(events));
    });
  }

  it("answers a client with a certificate from its CA (control for the refusals below)", async () => {
    await expect(probe(pki.client.cert, pki.client.key)).resolves.toContain("http answer");
  });

  it.each([
    ["without a certificate", undefined],
    ["with a certificate from another CA", "otherClient"],
  ] as const)("refuses a client %s at the TLS layer, and the client never gets a decision", async (_name, which) => {
    const cert = which ? pki[which].cert : undefined;
    const key = which ? pki[which].key : undefined;
    expect(await probe(cert, key)).not.toContain("http answer");
    const refused = testClient(broker.url, pki, logs, {
      tls: { certFile: cert, keyFile: key, caFile: pki.ca.cert },
      maxAttempts: 2,
    });
    const err = await decide(await mint(), refused).catch((e: unknown) => e);
    await refused.close();
    expect(err).toBeInstanceOf(AtbError);
    // TLS 1.3 reports the refusal after the handshake as a closed socket (retried, then a deadline
    // error) or, when the alert arrives first, as BROKER_UNAUTHORIZED; both name the client certificate.
    expect(["AT_ERR_BROKER_DEADLINE", "AT_ERR_BROKER_UNAUTHORIZED"]).toContain((err as AtbError).code);
    expect((err as AtbError).message).toContain("TLS_CERT_FILE");
  });

  it("answers 400 with a clear message for malformed bodies", async () => {
    const dispatcher = agentWith(pki.client.cert, pki.client.key);
    const post = async (body: string) => {
      const res = await httpRequest(`${broker.url}/api/v1/decide`, { method: "POST", body, dispatcher });
      return { status: res.statusCode, body: (await res.body.json()) as { message: string } };
    };
    await expect(post("{not json")).resolves.toMatchObject({
      status: 400,
      body: { message: "body is not valid JSON" },
    });
    await expect(
      post(JSON.stringify({ action: "k8s.Deployment.scale", token: "x", agent_id: AGENT })),
    ).resolves.toMatchObject({ status: 400, body: { message: expect.stringContaining("target") } });
    await dispatcher.close();
    await expect(decide(await mint(), client, { agentId: "" })).rejects.toMatchObject({
      code: "AT_ERR_BROKER_BAD_REQUEST",
      retryable: false,
    });
  });

  it("serves /healthz and /metrics with decisions by result, tier and reason", async () => {
    const dispatcher = agentWith(pki.client.cert, pki.client.key);
    const health = await httpRequest(`${broker.url}/healthz`, { dispatcher });
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    const metrics = await (await httpRequest(`${broker.url}/metrics`, { dispatcher })).body.text();
    expect(metrics).toMatch(/atb_broker_decisions_total\{result="allow",risk_tier="LOW",reason="allowed"\} [1-9]/);
    expect(metrics).toMatch(/atb_broker_decisions_total\{result="deny",risk_tier="LOW",reason="jti_replayed"\} [1-9]/);
    expect(metrics).toMatch(/atb_broker_policy_evaluation_duration_seconds_count\{result="allow"\} [1-9]/);
    await dispatcher.close();
  });

  it("stops its OPA child process when it stops", async () => {
    const extra = await startTestBroker(pki, keys, logs);
    const pid = extra.opaPid!;
    expect(() => process.kill(pid, 0)).not.toThrow();
    await extra.stop();
    expect(() => process.kill(pid, 0)).toThrow();
  });
});

describe("secrets", () => {
  it("never writes a token (or a segment of one) to any client, broker or audit line", () => {
    const audit = logs.lines
      .filter(l => l.includes('"type":"audit"'))
      .map(l => JSON.parse(l) as Record<string, unknown>);
    expect(audit.length).toBeGreaterThan(15);
    for (const a of audit)
      expect(Object.keys(a)).toEqual(
        expect.arrayContaining([
          "ts",
          "request_id",
          "poa_jti",
          "agent_identity",
          "action",
          "target",
          "decision",
          "reason",
          "risk_tier",
        ]),
      );
    const text = logs.text();
    for (const token of tokens) for (const piece of secretPieces(token)) expect(text).not.toContain(piece);
  });
});
