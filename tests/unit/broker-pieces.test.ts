// Pure pieces of the authorization path: the jti cache, request body validation, approval
// counting (vouched leg blocks, approver ids), PoA expiry decoding and the classification of
// transport errors.
import fc from "fast-check";
import { JtiCache, type JtiTicket, type Reservation } from "../../broker/jti-cache";
import { acceptableRequestId, parseDecideBody } from "../../broker/request";
import { legApprovals } from "../../broker/approvals";
import { approverKey } from "../../broker/approver-id";
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

  it("takes attestations sent next to the token, bounded", () => {
    const ok = parseDecideBody(JSON.stringify({ ...good, attestations: ["a.b.c"] }));
    expect(ok).toMatchObject({ ok: true, body: { attestations: ["a.b.c"] } });
    for (const bad of [["x".repeat(9000)], Array(17).fill("a.b.c"), "a.b.c", [7], [""]]) {
      expect(parseDecideBody(JSON.stringify({ ...good, attestations: bad }))).toMatchObject({
        ok: false,
        message: expect.stringContaining("`attestations`"),
      });
    }
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

describe("legApprovals", () => {
  const leg = {
    approval: { approver_id: "Alice", exp: 5 },
    dual_control: { required: true, approvers: [{ id: "bob/" }, { id: "" }, { name: "x" }, "carol"] },
    executive_control: { approvers: [{ id: "spiffe://corp.example/user/CTO" }] },
  };

  it("counts the blocks the issuer vouches for, with normalized ids, and lists every other entry", () => {
    expect(legApprovals(leg, ["approval", "dual_control", "executive_control"], "dev")).toEqual({
      approvals: [
        { id: "alice", raw_id: "Alice", source: "approval", roles: [], exp: 5, vouched_by: "issuer:dev" },
        { id: "bob", raw_id: "bob/", source: "dual_control", roles: [], vouched_by: "issuer:dev" },
        {
          id: "cto",
          raw_id: "spiffe://corp.example/user/CTO",
          source: "executive_control",
          roles: ["executive"],
          vouched_by: "issuer:dev",
        },
      ],
      ignored: [
        { source: "dual_control", id: "", why: "approver_id_invalid" },
        { source: "dual_control", id: null, why: "approver_id_invalid" },
        { source: "dual_control", id: "carol", why: "approver_id_invalid" },
      ],
    });
  });

  it("under an issuer that vouches for dual_control only, counts nothing the agent could have written", () => {
    const agentWritten = {
      approval: { approver_id: "alice" },
      dual_control: { required: false, approvers: [{ id: "alice" }, { id: "bob" }] },
      executive_control: { required: true, approvers: [{ id: "cto" }, { id: "ciso" }] },
    };
    const r = legApprovals(agentWritten, ["dual_control"], "agentauth");
    expect(r.approvals).toEqual([]);
    expect(r.ignored.map(i => `${i.source}:${i.id}:${i.why}`)).toEqual([
      "approval:alice:not_vouched_by_issuer",
      "dual_control:alice:dual_control_not_required",
      "dual_control:bob:dual_control_not_required",
      "executive_control:cto:not_vouched_by_issuer",
      "executive_control:ciso:not_vouched_by_issuer",
    ]);
    const enforced = {
      dual_control: { required: true, approvers: [{ id: "alice", approved_at: "2026-01-01T00:00:00Z" }] },
    };
    expect(legApprovals(enforced, ["dual_control"], "agentauth").approvals).toHaveLength(1);
  });

  it("counts nothing under the default profile, and tolerates anything as leg", () => {
    expect(legApprovals(leg, [], "default").approvals).toEqual([]);
    expect(legApprovals(undefined, ["approval"], "x")).toEqual({ approvals: [], ignored: [] });
    expect(legApprovals({ approval: "alice" }, ["approval"], "x").ignored).toEqual([
      { source: "approval", id: null, why: "block_malformed" },
    ]);
    fc.assert(
      fc.property(fc.jsonValue(), v => Array.isArray(legApprovals(v, ["approval", "dual_control"], "x").approvals)),
    );
  });
});

describe("approverKey", () => {
  it.each([
    ["alice", "alice"],
    [" Alice ", "alice"],
    ["alice/", "alice"],
    ["ALICE//", "alice"],
    ["spiffe://corp.example/user/alice", "alice"],
    ["SPIFFE://Other.Example/user/Alice/", "alice"],
    ["spiffe://corp.example/ns/shop/sa/deployer", "spiffe://corp.example/ns/shop/sa/deployer"],
    ["spiffe://corp.example/agent/planner/", "spiffe://corp.example/agent/planner"],
    ["alice@example.com", "alice@example.com"],
  ])("reads %p as %p", (raw, key) => {
    expect(approverKey(raw)).toBe(key);
  });

  it.each([[""], ["/"], ["al ice"], ["alicé"], ["x".repeat(257)], [7], [null]])("refuses %p", raw => {
    expect(approverKey(raw)).toBeNull();
  });

  it("is idempotent and never makes two keys out of case variants", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..."aAbB/:.x-_ ".split("")), maxLength: 20 }), s => {
        const k = approverKey(s);
        if (k === null) return true;
        return approverKey(k) === k && approverKey(s.toUpperCase()) === k;
      }),
    );
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
