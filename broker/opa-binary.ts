// Finds the opa binary the reference broker runs: ATB_OPA_BIN when set, else the one the control
// plane manager builds into its versioned cache (tools/controlplane/build.sh --print). Never
// downloads anything; the error says how to get the binary.
import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { join } from "node:path";

// __dirname, not import.meta: jest runs these files as CommonJS.
export const REPO_ROOT = join(__dirname, "..");
const BUILD_SCRIPT = join(REPO_ROOT, "tools", "controlplane", "build.sh");

const HOW_TO_GET =
  "build it with `tools/controlplane/build.sh` (pinned OPA from the Go module proxy, cached outside the repo) " +
  "or point ATB_OPA_BIN (or --opa-bin) at an opa v1 binary";

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The path build.sh would put opa at (whether or not it is built yet), or undefined. */
export function controlPlaneOpaPath(script = BUILD_SCRIPT): string | undefined {
  if (!existsSync(script)) return undefined;
  try {
    const out = execFileSync(script, ["--print"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const line = out.split("\n").find(l => l.startsWith("opa="));
    return line?.slice("opa=".length).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Resolves the opa binary or throws an Error that names how to get one. */
export function resolveOpaBinary(explicit?: string, env: Readonly<Record<string, string | undefined>> = {}): string {
  const wanted = explicit || env.ATB_OPA_BIN;
  if (wanted) {
    if (executable(wanted)) return wanted;
    throw new Error(`opa binary ${wanted} (from --opa-bin/ATB_OPA_BIN) is missing or not executable; ${HOW_TO_GET}`);
  }
  const built = controlPlaneOpaPath();
  if (built && executable(built)) return built;
  throw new Error(`opa binary not found${built ? ` at ${built}` : ""}; ${HOW_TO_GET}`);
}
