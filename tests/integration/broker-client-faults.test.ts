// GIVEN the operator's broker client and small stub HTTPS brokers (real mTLS) that misbehave
// WHEN the broker is down, slow, failing, malformed or untrusted
// THEN the client retries only what is worth retrying, within the deadline, and never allows.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { AtbError } from "../../capabilities/lib/errors";
import type { BrokerClient, BrokerClientConfig, DecideRequest } from "../../capabilities/lib/broker/client";
import { mintPoa } from "../../broker/poa";
import {
  AGENT,
  REQUESTER,
  LogCapture,
  makePki,
  makePoaKeys,
  makeTempDir,
  secretPieces,
  testClient,
  type TestPki,
} from "./helpers";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

const logs = new LogCapture();
const keys = makePoaKeys();
const tmp = makeTempDir("atb-faults-");
let pki: TestPki;
let token: string;
const FAST: Partial<BrokerClientConfig> = {
  attemptTimeoutMs: 300,
  maxAttempts: 6,
  baseBackoffMs: 20,
  maxBackoffMs: 80,
};
const OK = JSON.stringify({
  allowed: true,
  risk_tier: "low",
  reason: "allowed",
  request_id: "r",
  metadata: { evaluate_ms: 1.5, decision_id: "d-1", policy_revision: "rev" },
});

interface Stub {
  url: string;
  seen: { requestId: string; body: string }[];
  connections: number;
  close(): Promise<void>;
}

async function stub(handler: Handler, serverCert = () => pki.server): Promise<Stub> {
  const seen: Stub["seen"] = [];
  const server: Server = createServer(
    {
      cert: readFileSync(serverCert().cert),
      key: readFileSync(serverCert().key),
      ca: readFileSync(pki.ca.cert),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        seen.push({ requestId: String(req.headers["x-request-id"]), body });
        handler(req, body, res);
      });
    },
  );
  const s: Stub = {
    url: "",
    seen,
    connections: 0,
    close: () =>
      new Promise(r => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  server.on("secureConnection", () => s.connections++);
  await new Promise<void>(r => server.listen(0, "127.0.0.1", r));
  s.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return s;
}

const reply =
  (status: number, body = "", headers: Record<string, string> = {}): Handler =>
  (_q, _b, res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(body);
  };

function request(): DecideRequest {
  return {
    action: "k8s.Deployment.scale",
    token,
    agentId: AGENT,
    requester: REQUESTER,
    target: { kind: "Deployment", namespace: "shop", name: "web" },
    params: { replicas: 4 },
    context: { task: { uid: "u1" } },
  };
}

async function run(
  s: Stub,
  over: Partial<BrokerClientConfig> = {},
  deadlineMs = 5_000,
): Promise<{ result: unknown; ms: number }> {
  const client: BrokerClient = testClient(s.url, pki, logs, { ...FAST, ...over });
  const started = Date.now();
  const result = await client
    .decide(request(), { deadline: new Date(started + deadlineMs), requestIdBase: "task-u1" })
    .catch((e: unknown) => e);
  await client.close();
  return { result, ms: Date.now() - started };
}

function expectError(result: unknown, code: string): AtbError {
  expect(result).toBeInstanceOf(AtbError);
  expect((result as AtbError).code).toBe(code);
  return result as AtbError;
}

beforeAll(async () => {
  pki = makePki(tmp.dir);
  token = await mintPoa({ key: keys.es256, agent: AGENT, action: "scale", target: "Deployment/shop/web" });
});
afterAll(() => tmp.remove());

describe("answers", () => {
  it("sends the contract's body with X-Request-ID per attempt and parses an allow (tier upper-cased)", async () => {
    const s = await stub(reply(200, OK));
    const { result } = await run(s);
    await s.close();
    expect(result).toEqual({
      allowed: true,
      riskTier: "LOW",
      reason: "allowed",
      requestId: "r",
      evaluateMs: 1.5,
      decisionId: "d-1",
      policyRevision: "rev",
    });
    expect(s.seen[0]!.requestId).toBe("task-u1-a1");
    expect(JSON.parse(s.seen[0]!.body)).toEqual({
      action: "k8s.Deployment.scale",
      token,
      agent_id: AGENT,
      requester: REQUESTER,
      target: request().target,
      params: { replicas: 4 },
      context: { task: { uid: "u1" } },
    });
  });

  it("returns a deny as a value", async () => {
    const s = await stub(
      reply(
        200,
        JSON.stringify({
          allowed: false,
          risk_tier: "HIGH",
          reason: "high_risk_dual_control_required",
          request_id: "r",
        }),
      ),
    );
    const { result } = await run(s);
    await s.close();
    expect(result).toMatchObject({ allowed: false, riskTier: "HIGH", reason: "high_risk_dual_control_required" });
  });

  it.each([
    ["a body that is not JSON", "<html>oops</html>"],
    ["allowed missing", JSON.stringify({ risk_tier: "LOW", reason: "x", request_id: "r" })],
    ["allowed as a string", JSON.stringify({ allowed: "true", risk_tier: "LOW", reason: "x" })],
    ["an unknown tier", JSON.stringify({ allowed: true, risk_tier: "EXTREME", reason: "x" })],
    ["a body over 64 KiB", JSON.stringify({ allowed: true, risk_tier: "LOW", reason: "x".repeat(70_000) })],
  ])("fails closed on %s (BROKER_MALFORMED, not retried)", async (_n, body) => {
    const s = await stub(reply(200, body));
    const { result } = await run(s);
    await s.close();
    expectError(result, "AT_ERR_BROKER_MALFORMED");
    expect(s.seen).toHaveLength(1);
  });

  it.each([
    [400, "AT_ERR_BROKER_BAD_REQUEST"],
    [422, "AT_ERR_BROKER_BAD_REQUEST"],
    [404, "AT_ERR_BROKER_BAD_REQUEST"],
    [401, "AT_ERR_BROKER_UNAUTHORIZED"],
    [403, "AT_ERR_BROKER_UNAUTHORIZED"],
  ])("does not retry HTTP %i (%s)", async (status, code) => {
    const s = await stub(reply(status, JSON.stringify({ error: "nope", message: "no" })));
    const { result } = await run(s);
    await s.close();
    expect(expectError(result, code).retryable).toBe(false);
    expect(s.seen).toHaveLength(1);
  });
});

describe("retries", () => {
  it("retries a 500 and succeeds on the next attempt with a new request id", async () => {
    let n = 0;
    const s = await stub((q, b, res) => (n++ === 0 ? reply(500, "{}") : reply(200, OK))(q, b, res));
    const { result } = await run(s);
    await s.close();
    expect(result).toMatchObject({ allowed: true });
    expect(s.seen.map(x => x.requestId)).toEqual(["task-u1-a1", "task-u1-a2"]);
  });

  it("fails closed with BROKER_DEADLINE when the broker answers 500 until the deadline", async () => {
    const s = await stub(reply(500, "{}"));
    const { result, ms } = await run(s, { maxAttempts: 100 }, 700);
    await s.close();
    const err = expectError(result, "AT_ERR_BROKER_DEADLINE");
    expect(err.message).toContain("AT_ERR_BROKER_UNAVAILABLE");
    expect(s.seen.length).toBeGreaterThan(2);
    expect(ms).toBeLessThan(700 + 300);
  });

  it("honours Retry-After on 429", async () => {
    let n = 0;
    const s = await stub((q, b, res) =>
      (n++ === 0 ? reply(429, "{}", { "retry-after": "1" }) : reply(200, OK))(q, b, res),
    );
    const { result, ms } = await run(s);
    await s.close();
    expect(result).toMatchObject({ allowed: true });
    expect(ms).toBeGreaterThanOrEqual(1000);
  });

  it("stops at once when a 503's Retry-After would pass the deadline", async () => {
    const s = await stub(reply(503, "{}", { "retry-after": "30" }));
    const { result, ms } = await run(s, {}, 3_000);
    await s.close();
    expectError(result, "AT_ERR_BROKER_DEADLINE");
    expect(s.seen).toHaveLength(1);
    expect(ms).toBeLessThan(1_000);
  });

  it("times out a slow broker per attempt, retries, and fails closed at the deadline", async () => {
    const s = await stub(() => undefined);
    const { result, ms } = await run(s, { attemptTimeoutMs: 200 }, 900);
    await s.close();
    const err = expectError(result, "AT_ERR_BROKER_DEADLINE");
    expect(err.message).toContain("AT_ERR_BROKER_TIMEOUT");
    expect(s.seen.length).toBeGreaterThanOrEqual(2);
    expect(ms).toBeLessThan(900 + 200);
  });

  it("retries a broker that is down until the deadline", async () => {
    const s = await stub(reply(200, OK));
    await s.close();
    const { result, ms } = await run(s, { maxAttempts: 100 }, 500);
    const err = expectError(result, "AT_ERR_BROKER_DEADLINE");
    expect(err.message).toContain("ECONNREFUSED");
    expect(ms).toBeLessThan(800);
  });

  it("does not start when the deadline (PoA exp) has already passed", async () => {
    const s = await stub(reply(200, OK));
    const { result } = await run(s, {}, -1);
    await s.close();
    expectError(result, "AT_ERR_BROKER_DEADLINE");
    expect(s.seen).toHaveLength(0);
  });
});

describe("TLS", () => {
  it("reuses keep-alive TLS connections across decisions", async () => {
    const s = await stub(reply(200, OK));
    const client = testClient(s.url, pki, logs, FAST);
    for (let i = 0; i < 10; i++)
      await client.decide(request(), { deadline: new Date(Date.now() + 5_000), requestIdBase: `k${i}` });
    await client.close();
    await s.close();
    // undici's pool may open a second connection while the first is being released; never ten.
    expect(s.connections).toBeLessThanOrEqual(2);
  });

  it("refuses a broker whose certificate is from another CA (not retried)", async () => {
    const s = await stub(reply(200, OK), () => pki.otherServer);
    const { result } = await run(s);
    await s.close();
    expect(expectError(result, "AT_ERR_BROKER_TLS_UNTRUSTED").message).toContain("TLS_CA_FILE");
    expect(s.seen).toHaveLength(0);
  });

  it("with ATB_INSECURE accepts that broker and warns at creation and on every decision", async () => {
    const s = await stub(reply(200, OK), () => pki.otherServer);
    const before = logs.lines.filter(l => l.includes("ATB_INSECURE")).length;
    const client = testClient(s.url, pki, logs, { ...FAST, insecure: true });
    for (let i = 0; i < 2; i++)
      await expect(
        client.decide(request(), { deadline: new Date(Date.now() + 5_000), requestIdBase: `i${i}` }),
      ).resolves.toMatchObject({ allowed: true });
    await client.close();
    await s.close();
    const warnings = logs.lines.slice().filter(l => l.includes("ATB_INSECURE")).length - before;
    expect(warnings).toBe(3);
  });
});

describe("secrets", () => {
  it("never writes the token to any client log line", () => {
    expect(logs.lines.length).toBeGreaterThan(20);
    const text = logs.text();
    for (const piece of secretPieces(token)) expect(text).not.toContain(piece);
  });
});
