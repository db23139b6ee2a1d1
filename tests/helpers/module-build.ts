// A private `npm run build` + `npm run manifests` for one e2e file: the output goes to
// .data/build-<name>-<pid> inside the checkout (Pepr loads the built module to generate its
// manifests, which needs the project's node_modules above it), never to dist/, which
// tests/e2e/manifests.test.ts rewrites while other files run.
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = join(__dirname, "..", "..");

function run(cmd: string, args: string[], timeout: number): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8", timeout, maxBuffer: 64 * 1024 * 1024 });
  const out = `${r.stdout ?? ""}\n${r.stderr ?? ""}`;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status ?? r.signal}:\n${out.slice(-4000)}`);
  return out;
}

/** Builds the module and the install manifests into a fresh folder and returns its path. */
export function buildModule(name: string, extra: { shards?: number } = {}): string {
  const dir = join(root, ".data", `build-${name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(root, ".data"), { recursive: true });
  // The build type-checks the module (tsconfig.json): about 30 s on a quiet machine.
  const build = run(
    join(root, "node_modules", ".bin", "tsx"),
    [join(root, "tools", "module-build.ts"), "--out", dir],
    300_000,
  );
  if (/error TS\d+/.test(build)) throw new Error(`pepr build reported type errors:\n${build.slice(-4000)}`);
  const shards = extra.shards ? ["--shards", String(extra.shards)] : [];
  run(
    join(root, "node_modules", ".bin", "tsx"),
    [join(root, "tools", "manifests.ts"), "--dist", dir, ...shards],
    120_000,
  );
  return dir;
}

/** Removes a folder buildModule made (kept with ATB_E2E_KEEP=1). */
export function removeBuild(dir: string): void {
  if (process.env.ATB_E2E_KEEP !== "1") rmSync(dir, { recursive: true, force: true });
}
