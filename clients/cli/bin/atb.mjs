#!/usr/bin/env node
// `atb` and `kubectl-atb` (package.json "bin"): runs clients/cli/atb.ts with the project's tsx in
// one child node process, wherever it is started from (kubectl runs plugins from the user's working
// directory, so tsx is resolved from this file, not from there). Symlinks to this file work:
// Node gives the ES module its real path.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
let tsx;
try {
  tsx = import.meta.resolve("tsx");
} catch {
  process.stderr.write("atb: tsx is not installed next to the CLI; run `npm ci` in the repository first\n");
  process.exit(3);
}
const child = spawn(process.execPath, ["--import", tsx, join(here, "..", "atb.ts"), ...process.argv.slice(2)], {
  stdio: "inherit",
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : 143)));
