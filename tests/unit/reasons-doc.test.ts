// docs/reasons.md is the reference of every condition and Event reason. GIVEN the reasons the
// code can write (the pipeline's Reason table, the error catalog, and the literal reasons of the
// actions' verify results) WHEN compared with the tables' first column THEN they are the same set.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCodes } from "../../capabilities/lib/errors";
import { Reason } from "../../capabilities/lib/pipeline";

const root = join(__dirname, "..", "..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Reasons written as literals in the capabilities (verify results such as ProgressDeadlineExceeded). */
function literalReasons(): string[] {
  const out: string[] = [];
  for (const f of sources(join(root, "capabilities"))) {
    for (const m of readFileSync(f, "utf8").matchAll(/reason: "([A-Z][A-Za-z]+)"/g)) out.push(m[1]);
  }
  return out;
}

function documented(): string[] {
  const text = readFileSync(join(root, "docs", "reasons.md"), "utf8");
  return [...text.matchAll(/^\| `([A-Za-z]+)` \|/gm)].map(m => m[1]);
}

describe("docs/reasons.md", () => {
  test("lists exactly the reasons the code can write", () => {
    const code = new Set([
      ...Object.values(Reason),
      ...Object.values(ErrorCodes).map(e => e.reason),
      ...literalReasons(),
    ]);
    const doc = documented();
    expect(new Set(doc).size).toBe(doc.length);
    expect([...new Set(doc)].sort()).toEqual([...code].sort());
  });

  test("finds the action reasons by scanning (the scan itself works)", () => {
    expect(literalReasons()).toEqual(expect.arrayContaining(["ProgressDeadlineExceeded", "DeploymentPaused"]));
  });
});
