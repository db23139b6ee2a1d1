// The diff a Plan task shows (capabilities/lib/pipeline/plan-diff.ts) and the broker client's plan
// answer parsing (capabilities/lib/broker/plan.ts): the line diff is an edit script of the two
// texts (property test), hunks are unified-diff shaped, the bound holds, Secret values never
// appear; a plan answer that allows, or is not marked as a plan, is refused (fail closed).
import fc from "fast-check";
import { parsePlanBody, planBody } from "../../capabilities/lib/broker/plan";
import { AtbError } from "../../capabilities/lib/errors";
import type { KubeObject } from "../../capabilities/lib/action";
import {
  lineDiff,
  MAX_DIFF_BYTES,
  planDiff,
  REDACTED_CHANGED,
  unifiedHunks,
} from "../../capabilities/lib/pipeline/plan-diff";

const cm = (data: Record<string, string>, extra: Partial<KubeObject> = {}): KubeObject =>
  ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "flags", namespace: "shop", resourceVersion: "7", uid: "u", managedFields: [{}] },
    data,
    ...extra,
  }) as unknown as KubeObject;

describe("lineDiff", () => {
  test("is an edit script: the kept and removed lines give the first text, the kept and added the second", () => {
    const lines = fc.array(fc.constantFrom("a", "b", "c", "d", "e"), { maxLength: 30 });
    fc.assert(
      fc.property(lines, lines, (a, b) => {
        const ops = lineDiff(a, b);
        expect(ops.filter(o => o.tag !== "+").map(o => o.line)).toEqual(a);
        expect(ops.filter(o => o.tag !== "-").map(o => o.line)).toEqual(b);
      }),
    );
  });

  test("hunks carry 3 lines of context and unified line ranges; no change gives no hunk", () => {
    const a = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];
    const b = [...a];
    b[4] = "five";
    expect(unifiedHunks(lineDiff(a, b))).toEqual([
      "@@ -2,7 +2,7 @@",
      " 2",
      " 3",
      " 4",
      "-5",
      "+five",
      " 6",
      " 7",
      " 8",
    ]);
    expect(unifiedHunks(lineDiff(a, a))).toEqual([]);
    expect(unifiedHunks(lineDiff([], ["x"]))).toEqual(["@@ -0,0 +1 @@", "+x"]);
  });
});

describe("planDiff", () => {
  test("a ConfigMap change shows its values, not resourceVersion, managedFields or kubectl's last-applied copy", () => {
    const before = cm({ a: "1" }, {
      metadata: {
        name: "flags",
        namespace: "shop",
        annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{secret-ish}" },
      },
    } as Partial<KubeObject>);
    const after = cm({ a: "2" });
    const { diff, truncated } = planDiff(before, after, "ConfigMap");
    expect(truncated).toBe(false);
    expect(diff).toContain("-  a: '1'\n+  a: '2'\n");
    for (const hidden of ["resourceVersion", "managedFields", "uid", "secret-ish"]) expect(diff).not.toContain(hidden);
    expect(planDiff(after, after, "ConfigMap")).toEqual({ diff: "", truncated: false });
  });

  test("a Secret's values never appear; a changed value is marked, an unchanged one is not", () => {
    const b64 = (v: string): string => Buffer.from(v).toString("base64");
    const secret = (data: Record<string, string>): KubeObject =>
      ({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "s", namespace: "shop" },
        type: "Opaque",
        data,
      }) as unknown as KubeObject;
    const { diff } = planDiff(
      secret({ pw: b64("old-pw"), user: b64("alice"), gone: b64("x1") }),
      secret({ pw: b64("new-pw"), user: b64("alice"), added: b64("y2") }),
      "Secret",
    );
    expect(diff).toContain(`+  pw: '${REDACTED_CHANGED}'`);
    expect(diff).toContain("+  added: '[REDACTED]'");
    expect(diff).toContain("-  gone: '[REDACTED]'");
    expect(diff).toContain("   user: '[REDACTED]'");
    for (const v of ["old-pw", "new-pw", "alice", "x1", "y2"]) {
      expect(diff).not.toContain(v);
      expect(diff).not.toContain(b64(v));
    }
  });

  test("a diff beyond 16 KiB is cut at a line and marked truncated", () => {
    const big = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`key${i}`, `value-${i}-${"é".repeat(10)}`]));
    const { diff, truncated } = planDiff(cm({}), cm(big), "ConfigMap");
    expect(truncated).toBe(true);
    expect(Buffer.byteLength(diff, "utf8")).toBeLessThanOrEqual(MAX_DIFF_BYTES);
    expect(diff.endsWith("\n")).toBe(true);
    expect(
      diff
        .split("\n")
        .slice(0, -1)
        .every(l => /^(---|\+\+\+|@@| |-|\+)/.test(l)),
    ).toBe(true);
  });

  test("a target that does not exist yet is all additions", () => {
    const { diff } = planDiff(undefined, cm({ a: "1" }), "ConfigMap");
    expect(diff).toMatch(/^--- ConfigMap\/shop\/flags \(current\)\n/);
    expect(diff.split("\n").filter(l => l.startsWith("-") && !l.startsWith("---"))).toEqual([]);
  });
});

describe("the broker client's plan answer", () => {
  const ok = {
    allowed: false,
    plan: true,
    risk_tier: "high",
    approvals_required: { count: 2 },
    change_sha256: `sha256:${"a".repeat(64)}`,
    reason: "plan_only",
    request_id: "r-1",
  };

  test("a well-formed answer is read (tier upper-cased, roles kept)", () => {
    expect(parsePlanBody(JSON.stringify(ok), "fallback")).toEqual({
      riskTier: "HIGH",
      approvalsRequired: { count: 2 },
      changeSha256: ok.change_sha256,
      reason: "plan_only",
      requestId: "r-1",
    });
    const roles = { ...ok, approvals_required: { count: 2, roles: ["executive"] } };
    expect(parsePlanBody(JSON.stringify(roles), "f")).toMatchObject({
      approvalsRequired: { count: 2, roles: ["executive"] },
    });
  });

  test.each([
    [{ ...ok, allowed: true }, "`allowed` must be false"],
    [{ ...ok, plan: undefined }, "`plan` is not true"],
    [{ ...ok, risk_tier: "SEVERE" }, "`risk_tier`"],
    [{ ...ok, approvals_required: { count: -1 } }, "`approvals_required`"],
    [{ ...ok, approvals_required: { count: 1.5 } }, "`approvals_required`"],
    [{ ...ok, approvals_required: { count: 1, roles: [3] } }, "`approvals_required`"],
    [{ ...ok, approvals_required: undefined }, "`approvals_required`"],
  ])("refuses %p (fail closed)", (body, why) => {
    const r = parsePlanBody(JSON.stringify(body), "f");
    expect(r).toBeInstanceOf(AtbError);
    expect((r as AtbError).kind).toBe("BROKER_MALFORMED");
    expect((r as AtbError).message).toContain(why);
  });

  test("the body of a plan call carries no token and no attestations", () => {
    const body = JSON.parse(
      planBody({
        action: "k8s.Deployment.scale",
        agentId: "spiffe://atb.example.com/agent/a",
        requester: { username: "u", groups: [] },
        target: { kind: "Deployment", name: "w", namespace: "n" },
        params: { replicas: 2 },
        context: {},
      }),
    ) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(["action", "agent_id", "context", "params", "requester", "target"]);
  });
});
