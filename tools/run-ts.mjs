// Entry point for the npm scripts: installs the project's dependencies on a fresh clone
// (npm ci when node_modules is missing or older than package-lock.json), then runs the given
// TypeScript file with tsx, passing the remaining arguments through.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const marker = join(root, "node_modules", ".package-lock.json");
const lock = join(root, "package-lock.json");
if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  console.error("[setup] installing npm dependencies (npm ci)...");
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const [script, ...args] = process.argv.slice(2);
// One node process with tsx's loader (no wrapper in between), and SIGINT/SIGTERM passed on, so
// the tool's own cleanup (the sandbox stopping the control plane, the broker stopping OPA) runs
// whether the signal comes from a terminal or from a supervisor that signals only this process.
const child = spawn(process.execPath, ["--import", "tsx", join(root, script), ...args], {
  cwd: process.cwd(),
  stdio: "inherit",
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : 143)));
