// GIVEN the Rego policies and their tests in policies/
// WHEN `opa test policies/ -v` runs with the real opa binary
// THEN every test passes, every deny reason code is exercised by a policy test, and every code
// (policy and broker) is documented in docs/authorization.md.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { resolveOpaBinary } from "../../broker/opa-binary";
import { BROKER_REASONS } from "../../broker/decide";
import { POA_FAILURES } from "../../broker/verify";
import { ErrorCodes } from "../../capabilities/lib/errors";

const root = join(__dirname, "..", "..");
const policies = join(root, "policies");
const read = (f: string) => readFileSync(join(policies, f), "utf8");
const testFiles = readdirSync(policies).filter(f => f.endsWith("_test.rego"));

/** The policy's deny codes: `deny contains [N, "code"]` in any policy file plus the per-tier
 * missing-approval codes. */
function policyCodes(): string[] {
  const rules = readdirSync(policies)
    .filter(f => f.endsWith(".rego") && !f.endsWith("_test.rego"))
    .map(read)
    .join("\n");
  const codes = [...rules.matchAll(/deny contains \[\d+, "([a-z_]+)"\]/g)].map(m => m[1]!);
  const block = read("approvals.rego").split("missing_approval_code := {")[1]!.split("}")[0]!;
  return [...new Set([...codes, ...[...block.matchAll(/: "([a-z_]+)"/g)].map(m => m[1]!)])];
}

describe("policies", () => {
  it("pass `opa test policies/ -v` with the real opa binary", async () => {
    const opa = resolveOpaBinary(undefined, process.env);
    const result = await promisify(execFile)(opa, ["test", policies, "-v"], { cwd: root }).catch(
      (e: { stdout?: string; stderr?: string }) => e,
    );
    const out = `${result.stdout ?? ""}${result.stderr ?? ""}`;
    expect(out).toMatch(/PASS: \d+\/\d+/);
    expect(out).not.toMatch(/FAIL|ERROR/);
    expect(Number(out.match(/PASS: (\d+)\/(\d+)/)![1])).toBeGreaterThanOrEqual(60);
  });

  it("exercise every deny reason code in a policy test", () => {
    const codes = policyCodes();
    expect(codes.length).toBeGreaterThanOrEqual(18);
    const tests = testFiles.map(read).join("\n");
    expect(codes.filter(code => !tests.includes(`"${code}"`))).toEqual([]);
  });

  it("document every reason code and client error code in docs/authorization.md", () => {
    const doc = readFileSync(join(root, "docs", "authorization.md"), "utf8");
    const brokerErrors = Object.values(ErrorCodes)
      .map(e => e.code)
      .filter(c => c.startsWith("AT_ERR_BROKER_"));
    const all = [...policyCodes(), ...POA_FAILURES, ...BROKER_REASONS, ...brokerErrors];
    expect(all.filter(code => !doc.includes(`\`${code}\``))).toEqual([]);
  });
});
