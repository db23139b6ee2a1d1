// `atb explain`. GIVEN every reason the code can write (enumerated as tests/unit/reasons-doc.test.ts
// does: the pipeline's Reason table, the error catalog, the actions' literal verify reasons) and
// every code the broker and the policy can answer (enumerated as tests/integration/policies.test.ts
// does) WHEN the CLI's tables are built from the docs THEN each has a meaning and a next step; and
// tasks in each kind of state are turned into the sentence and next step a user needs.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  codeNext,
  codeTable,
  currentReason,
  explainTask,
  markdownTables,
  reasonTable,
} from "../../clients/cli/explain";
import type { TaskView } from "../../clients/cli/task";
import { BROKER_REASONS } from "../../broker/decide";
import { POA_FAILURES } from "../../broker/verify";
import { ErrorCodes } from "../../capabilities/lib/errors";
import { Reason } from "../../capabilities/lib/pipeline";

const root = join(__dirname, "..", "..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

function codeReasons(): string[] {
  const literal = sources(join(root, "capabilities")).flatMap(f =>
    [...readFileSync(f, "utf8").matchAll(/reason: "([A-Z][A-Za-z]+)"/g)].map(m => m[1]!),
  );
  return [...new Set([...Object.values(Reason), ...Object.values(ErrorCodes).map(e => e.reason), ...literal])];
}

function policyCodes(): string[] {
  const dir = join(root, "policies");
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  const rules = readdirSync(dir)
    .filter(f => f.endsWith(".rego") && !f.endsWith("_test.rego"))
    .map(read)
    .join("\n");
  const codes = [...rules.matchAll(/deny contains \[\d+, "([a-z_]+)"\]/g)].map(m => m[1]!);
  const block = read("approvals.rego").split("missing_approval_code := {")[1]!.split("}")[0]!;
  return [...new Set([...codes, ...[...block.matchAll(/: "([a-z_]+)"/g)].map(m => m[1]!)])];
}

const cond = (type: string, status: string, reason: string, message = "") => ({ type, status, reason, message });

function task(status: TaskView["status"]): TaskView {
  return { metadata: { name: "t1", namespace: "prod" }, spec: { action: "deploy" }, status };
}

describe("atb explain: the tables", () => {
  const reasons = reasonTable();
  const codes = codeTable();

  test("every reason the code can write has a meaning and a next step", () => {
    const all = codeReasons();
    expect(all.length).toBeGreaterThan(30);
    const missing = all.filter(r => !reasons.get(r)?.meaning || !reasons.get(r)?.next);
    expect(missing).toEqual([]);
  });

  test("every broker and policy code has a meaning and a next step of its own", () => {
    const all = [...new Set([...policyCodes(), ...POA_FAILURES, ...BROKER_REASONS])];
    expect(all.length).toBeGreaterThan(35);
    expect(all.filter(c => !codes.get(c))).toEqual([]);
    expect(all.filter(c => !codeNext(c))).toEqual([]);
  });

  test("the reasons an approval is ignored have a meaning", () => {
    for (const why of ["approver_unknown", "change_digest_mismatch", "binding_mismatch", "expired", "role_not_granted"])
      expect(codes.get(why)).toBeTruthy();
  });

  test("the next step of a Failed reason is the doc's 'what to do', a progress reason says to wait", () => {
    expect(reasons.get("ExecutorMissing")!.next).toContain("npm run -s executor -- <ns> | kubectl apply -f -");
    expect(reasons.get("Queued")!.next).toMatch(/nothing to do yet/);
    expect(reasons.get("TargetNotFound")!.phase).toBe("Failed");
  });

  test("markdown cells keep escaped bars and links become their text", () => {
    const [t] = markdownTables("## S\n\n| reason | meaning |\n|---|---|\n| `A` | x \\| y, see [the doc](d.md#a) |\n");
    expect(t!.rows).toEqual([["`A`", "x | y, see [the doc](d.md#a)"]]);
    const r = reasonTable(
      "## Failed\n\n| reason | meaning | what to do |\n|---|---|---|\n| `A` | m [l](x) | **do** it |\n",
    );
    expect(r.get("A")).toEqual({ phase: "Failed", meaning: "m l", next: "do it" });
  });
});

describe("atb explain: a task's sentence", () => {
  test("a Denied task names the policy's code, its meaning and how to get approvals", () => {
    const e = explainTask(
      task({
        phase: "Denied",
        atbResult: { reason: "high_risk_dual_control_required", riskTier: "HIGH" },
        conditions: [cond("Authorized", "False", "PolicyDenied", "denied by ATB: high_risk_dual_control_required")],
      }),
    );
    expect(e.sentence).toMatch(/^prod\/t1 is Denied \(PolicyDenied\): the broker denied the change/);
    expect(e.sentence).toContain("high_risk_dual_control_required, HIGH without two distinct approvers.");
    expect(e.next).toContain("atb approve");
    expect(e.details).toContain("Authorized: denied by ATB: high_risk_dual_control_required");
  });

  test("a Failed task gets the doc's next step", () => {
    const e = explainTask(
      task({ phase: "Failed", conditions: [cond("Succeeded", "False", "ExecutorMissing", "no atb-executor")] }),
    );
    expect(e.sentence).toMatch(/is Failed \(ExecutorMissing\): the task's namespace has no executor ServiceAccount/);
    expect(e.next).toContain("npm run -s executor");
  });

  test("a task waiting for approval lists what was counted and what was ignored, with why", () => {
    const e = explainTask(
      task({
        phase: "AwaitingApproval",
        atbResult: { reason: "high_risk_dual_control_required" },
        approvals: {
          sentence: "2 distinct approvers must approve; 1 counted",
          counted: ["alice@example.com"],
          ignored: [{ id: "mallory", why: "approver_unknown" }],
        },
        conditions: [cond("Authorized", "False", "ApprovalRequired", "waiting")],
      }),
    );
    expect(e.details).toEqual(
      expect.arrayContaining([
        "approvals: 2 distinct approvers must approve; 1 counted",
        "counted: alice@example.com",
        expect.stringMatching(
          /^ignored mallory: approver_unknown \(the attestation names an approver the broker has no key for\)$/,
        ),
      ]),
    );
    expect(e.next).toContain("atb approve");
  });

  test("a task without status says no operator has picked it up", () => {
    expect(explainTask(task(undefined)).sentence).toMatch(/has no status yet/);
  });

  test("a completed task needs nothing", () => {
    const e = explainTask(task({ phase: "Completed", conditions: [cond("Succeeded", "True", "Completed")] }));
    expect(e.sentence).toMatch(/is Completed \(Completed\): applied and verified/);
    expect(e.next).toBe("nothing: the task is finished");
    const p = explainTask(task({ phase: "Processing", conditions: [cond("Authorized", "Unknown", "Authorizing")] }));
    expect(p.next).toMatch(/^nothing to do yet: the operator is working on it/);
  });

  test("the current reason is the condition that decided the phase", () => {
    const conditions = [cond("Authorized", "True", "Authorized"), cond("Succeeded", "False", "RolloutTimeout")];
    expect(currentReason(task({ phase: "Failed", conditions }))).toBe("RolloutTimeout");
    expect(currentReason(task({ phase: "Executing", conditions: [cond("Executed", "True", "Applied")] }))).toBe(
      "Applied",
    );
    expect(currentReason(task({ phase: "Denied", conditions: [cond("Authorized", "False", "PolicyDenied")] }))).toBe(
      "PolicyDenied",
    );
  });
});
