#!/usr/bin/env node
// atb-mcp: runs clients/mcp/server.ts with tsx (package.json "bin"), arguments passed through,
// stdio inherited (the MCP stdio transport is this process's stdin and stdout), signals passed on.
// Unlike tools/run-ts.mjs it never installs anything: an agent client starts it many times.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
const child = spawn(process.execPath, ["--import", tsx, join(here, "server.ts"), ...process.argv.slice(2)], {
  stdio: "inherit",
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : 143)));
