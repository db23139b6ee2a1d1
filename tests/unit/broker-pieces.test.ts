// Pure pieces of the authorization path: the jti cache, request body validation, approval
// normalisation, PoA expiry decoding and the classification of transport errors.
import fc from "fast-check";
import { JtiCache, type JtiTicket, type Reservation } from "../../broker/jti-cache";
import { acceptableRequestId, parseDecideBody } from "../../broker/request";
import { normaliseApprovals } from "../../broker/verify";
import { poaExpiry, safeRequestIdBase } from "../../capabilities/lib/broker/client";
import { classifyTransportError } from "../../capabilities/lib/broker/transport";
import { AtbError } from "../../capabilities/lib/errors";

describe("JtiCache", () => {
  /** The ticket of a reservation that must succeed. */
  const ticket = (r: Reservation): JtiTicket => {
    if (r.result !== "reserved") throw new Error(`expected a reservation, got ${r.result}`);
    return r.ticket;
  };

  it("denies a second reservation, frees a released one, keeps a committed one until expiry", () => {
    const c = new JtiCache(10);
    const first = ticket(c.reserve("a", 100, 0));
    expect(c.reserve("a", 100, 0).result).toBe("replayed");
    c.release(first);
    const second = ticket(c.reserve("a", 100, 0));
    c.commit(second);
    c.release(second);
    expect(c.reserve("a", 100, 50).result).toBe("replayed");
    expect(c.reserve("a", 200, 100).result).toBe("reserved");
  });

  it("lets the owning task reserve again and treats every other caller as a replay", () => {
    const c = new JtiCache(10);
    const t = ticket(c.reserve("a", 100, 0, "task-1"));
    c.commit(t);
    const again = ticket(c.reserve("a", 100, 1, "task-1"));
    expect(c.reserve("a", 100, 1, "task-2").result).toBe("replayed");
    expect(c.reserve("a", 100, 1).result).toBe("replayed");
    c.release(again);
    expect(c.reserve("a", 100, 2, "task-2").result).toBe("replayed");
  });

  it("refuses new tokens when full of live entries and makes room from expired ones", () => {
    const c = new JtiCache(2);
    expect(c.reserve("a", 10, 0).result).toBe("reserved");
    expect(c.reserve("b", 20, 0).result).toBe("reserved");
    expect(c.reserve("c", 30, 5).result).toBe("full");
    expect(c.reserve("c", 30, 10).result).toBe("reserved");
    expect(c.size).toBe(2);
  });

  it("never holds more than its capacity", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ maxLength: 3 }), fc.integer({ min: 0, max: 100 }))), ops => {
        const c = new JtiCache(5);
        ops.forEach(([jti, t]) => c.reserve(jti, t + 10, t));
        return c.size <= 5;
      }),
    );
  });

  describe("races between attempts", () => {
    it("a deny of an earlier attempt released after a later attempt's allow does not forget the used token", () => {
      // GIVEN two attempts of task-1 in flight (the operator retried a decide whose answer was lost)
      const c = new JtiCache(10);
      const early = ticket(c.reserve("a", 100, 0, "task-1"));
      const late = ticket(c.reserve("a", 100, 0, "task-1"));
      // WHEN the later one is allowed first and the earlier one's deny is released afterwards
      c.commit(late);
      c.release(early);
      // THEN the token stays used for every other task
      expect(c.reserve("a", 100, 1, "task-2").result).toBe("replayed");
      expect(c.reserve("a", 100, 1).result).toBe("replayed");
    });

    it("a deny released before the other attempt's allow commits does not reopen the token in between", () => {
      const c = new JtiCache(10);
      const early = ticket(c.reserve("a", 100, 0, "task-1"));
      const late = ticket(c.reserve("a", 100, 0, "task-1"));
      c.release(early);
      // The later attempt is still being judged: nobody else may take the jti meanwhile.
      expect(c.reserve("a", 100, 1, "task-2").result).toBe("replayed");
      c.commit(late);
      expect(c.reserve("a", 100, 2, "task-2").result).toBe("replayed");
    });

    it("only the attempt that reserved the current entry can release it", () => {
      // GIVEN a reservation whose entry was purged (expired) and reserved anew by another task
      const c = new JtiCache(1);
      const stale = ticket(c.reserve("a", 10, 0, "task-1"));
      const fresh = ticket(c.reserve("a", 100, 10, "task-2"));
      // WHEN the stale attempt releases
      c.release(stale);
      // THEN the other task's reservation stands, and only its own ticket frees it
      expect(c.reserve("a", 100, 11, "task-3").result).toBe("replayed");
      c.release(fresh);
      expect(c.reserve("a", 100, 12, "task-3").result).toBe("reserved");
    });

    it("a ticket released twice frees nothing the second time", () => {
      const c = new JtiCache(10);
      const first = ticket(c.reserve("a", 100, 0, "task-1"));
      const second = ticket(c.reserve("a", 100, 0, "task-1"));
      c.release(first);
      c.release(first);
      expect(c.reserve("a", 100, 1, "task-2").result).toBe("replayed");
      c.release(second);
      expect(c.reserve("a", 100, 1, "task-2").result).toBe("reserved");
    });

    it("commit re-inserts an entry that was purged while its decision was being made", () => {
      // GIVEN a full cache whose only entry is purged to make room while its allow is pending
      const c = new JtiCache(1);
      const pending = ticket(c.reserve("a", 10, 0, "task-1"));
      const other = ticket(c.reserve("b", 100, 10));
      c.release(other);
      expect(c.size).toBe(0);
      // WHEN the allow is committed
      c.commit(pending);
      // THEN the used token is remembered until it expires
      expect(c.reserve("a", 10, 5, "task-2").result).toBe("replayed");
      expect(c.reserve("a", 10, 5).result).toBe("replayed");
    });

    it("never lets two tasks hold or use one jti, whatever the interleaving", () => {
      type Op = { kind: "reserve"; task: number } | { kind: "end"; which: number; allow: boolean };
      const op = fc.oneof(
        fc.record({ kind: fc.constant("reserve" as const), task: fc.integer({ min: 0, max: 2 }) }),
        fc.record({ kind: fc.constant("end" as const), which: fc.nat(20), allow: fc.boolean() }),
      );
      fc.assert(
        fc.property(fc.array(op as fc.Arbitrary<Op>, { maxLength: 40 }), ops => {
          const c = new JtiCache(4);
          const open: { task: number; t: JtiTicket }[] = [];
          const used = new Set<number>();
          for (const o of ops) {
            if (o.kind === "reserve") {
              const r = c.reserve("a", 1000, 0, `task-${o.task}`);
              if (r.result === "reserved") open.push({ task: o.task, t: r.ticket });
            } else if (open.length > 0) {
              const [done] = open.splice(o.which % open.length, 1);
              if (o.allow) used.add(done!.task);
              (o.allow ? c.commit : c.release).call(c, done!.t);
            }
            const tasks = new Set([...open.map(x => x.task), ...used]);
            if (tasks.size > 1) return false;
          }
          return true;
        }),
      );
    });
  });
});

describe("parseDecideBody", () => {
  const good = {
    action: "k8s.Deployment.scale",
    token: "t",
    agent_id: "a",
    target: { kind: "Deployment", name: "web", namespace: "shop" },
  };

  it("accepts the contract's body and defaults params and context", () => {
    expect(parseDecideBody(JSON.stringify(good))).toEqual({ ok: true, body: { ...good, params: {}, context: {} } });
  });

  it.each([
    ["not JSON", "{", /not valid JSON/],
    ["an array", "[]", /JSON object/],
    ["no action", JSON.stringify({ ...good, action: "" }), /`action`/],
    ["no token", JSON.stringify({ ...good, token: undefined }), /`token`/],
    ["numeric agent_id", JSON.stringify({ ...good, agent_id: 7 }), /`agent_id`/],
    [
      "target without namespace",
      JSON.stringify({ ...good, target: { kind: "Deployment", name: "web" } }),
      /target.namespace/,
    ],
    ["params as a list", JSON.stringify({ ...good, params: [1] }), /`params`/],
    ["context as a string", JSON.stringify({ ...good, context: "x" }), /`context`/],
  ])("rejects %s with a message naming the problem", (_n, raw, message) => {
    const r = parseDecideBody(raw);
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.message).toMatch(message);
  });

  it("never throws on arbitrary input", () => {
    fc.assert(fc.property(fc.string(), s => typeof parseDecideBody(s).ok === "boolean"));
    fc.assert(fc.property(fc.jsonValue(), v => typeof parseDecideBody(JSON.stringify(v)).ok === "boolean"));
  });

  it("accepts only header-safe request ids", () => {
    expect(acceptableRequestId("task-1-a2")).toBe("task-1-a2");
    expect(acceptableRequestId("bad id\n")).toBeUndefined();
    expect(acceptableRequestId("x".repeat(129))).toBeUndefined();
    expect(safeRequestIdBase("ns/name uid")).toBe("ns_name_uid");
  });
});

describe("normaliseApprovals", () => {
  it("flattens approval, dual control and executive control, dropping invalid entries", () => {
    const leg = {
      approval: { approver_id: "alice", exp: 5 },
      dual_control: { required: true, approvers: [{ id: "bob" }, { id: "" }, { name: "x" }, "carol"] },
      executive_control: { approvers: [{ id: "cto" }] },
    };
    expect(normaliseApprovals(leg)).toEqual([
      { id: "alice", source: "approval", exp: 5 },
      { id: "bob", source: "dual_control" },
      { id: "cto", source: "executive_control" },
    ]);
    expect(normaliseApprovals(undefined)).toEqual([]);
    expect(normaliseApprovals({ approval: { approver_id: ["x"] } })).toEqual([]);
  });
});

describe("poaExpiry", () => {
  const jwt = (payload: object) =>
    `eyJhbGciOiJFUzI1NiJ9.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;

  it("decodes exp without verifying", () => {
    expect(poaExpiry(jwt({ exp: 1_800_000_000 })).toISOString()).toBe("2027-01-15T08:00:00.000Z");
  });

  it.each([
    ["no exp", jwt({ sub: "a" })],
    ["string exp", jwt({ exp: "soon" })],
    ["two segments", "a.b"],
    ["garbage", "x.!!!.y"],
  ])("rejects a token with %s without quoting it", (_n, token) => {
    const run = () => poaExpiry(token);
    expect(run).toThrow(expect.objectContaining({ code: "AT_ERR_TASK_INVALID" }));
    expect(() => run()).not.toThrow(token);
  });
});

describe("classifyTransportError", () => {
  const wrapped = (code: string) =>
    Object.assign(new Error("outer"), {
      code: "UND_ERR_SOCKET_WRAP",
      cause: Object.assign(new Error("inner"), { code }),
    });

  it.each([
    [wrapped("ECONNREFUSED"), false, "AT_ERR_BROKER_UNAVAILABLE", true],
    [wrapped("UND_ERR_SOCKET"), false, "AT_ERR_BROKER_UNAVAILABLE", true],
    [wrapped("UND_ERR_CONNECT_TIMEOUT"), false, "AT_ERR_BROKER_TIMEOUT", true],
    [new Error("aborted"), true, "AT_ERR_BROKER_TIMEOUT", true],
    [wrapped("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), false, "AT_ERR_BROKER_TLS_UNTRUSTED", false],
    [wrapped("ERR_TLS_CERT_ALTNAME_INVALID"), false, "AT_ERR_BROKER_TLS_UNTRUSTED", false],
    [wrapped("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED"), false, "AT_ERR_BROKER_UNAUTHORIZED", false],
    [wrapped("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"), false, "AT_ERR_BROKER_UNAUTHORIZED", false],
  ])("maps %p (timed out: %p) to %s", (err, timedOut, code, retryable) => {
    const e = classifyTransportError(err, timedOut, 100);
    expect(e).toBeInstanceOf(AtbError);
    expect({ code: e.code, retryable: e.retryable }).toEqual({ code, retryable });
  });
});
