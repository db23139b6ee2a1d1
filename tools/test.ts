// npm test: every test the project has, on a fresh clone. Builds the control plane first when the
// cache is empty (tens of minutes, with progress), then runs all jest projects (unit, integration
// with real TLS and OPA, e2e against the real control plane) and prints one closing line
// "tests: N passed, N failed". Extra arguments go to jest (e.g. a path filter).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureBinaries } from "./controlplane/binaries";

const root = join(__dirname, "..");

interface JestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTotalTests: number;
  numRuntimeErrorTestSuites: number;
  success: boolean;
}

function main(): number {
  const t0 = Date.now();
  ensureBinaries(l => console.log(l));
  const out = join(root, "coverage", "jest-results.json");
  mkdirSync(join(root, "coverage"), { recursive: true });
  rmSync(out, { force: true });
  const jest = join(root, "node_modules", ".bin", "jest");
  const args = ["--ci", "--maxWorkers=2", "--forceExit", "--json", `--outputFile=${out}`, ...process.argv.slice(2)];
  const r = spawnSync(jest, args, { cwd: root, stdio: "inherit", env: { ...process.env, FORCE_COLOR: "0" } });
  if (!existsSync(out)) {
    console.log(`tests: 0 passed, 1 failed (jest produced no results, exit ${r.status ?? r.signal})`);
    return 1;
  }
  const res = JSON.parse(readFileSync(out, "utf8")) as JestJson;
  const failed = res.numFailedTests + res.numRuntimeErrorTestSuites;
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  console.log(
    `\n[test] ${res.numTotalTests} tests in ${secs}s (suites that failed to run: ${res.numRuntimeErrorTestSuites})`,
  );
  console.log(`tests: ${res.numPassedTests} passed, ${failed} failed, ${res.numPendingTests} skipped`);
  if (res.numTotalTests === 0) return 1;
  return r.status === 0 && res.success && failed === 0 && res.numPendingTests === 0 ? 0 : 1;
}

process.exit(main());
