// The one image the pod runner knows how to reproduce without a container engine: Pepr's
// controller image (ghcr.io/defenseunicorns/pepr/controller:v<version>), which is Node.js with
// Pepr and its production dependencies in /app/node_modules, run as the distroless "nonroot" user
// (65532) with `node` as its entrypoint. Its /app/node_modules is rebuilt from this project's
// package-lock.json: exactly the packages Pepr's own `dependencies` reach (no dev or peer
// dependencies, none of this project's), copied (not linked: a link would let Node resolve a
// package the image does not have) into a cache folder keyed by the lock entries. The Node.js
// binary is the host's: the image ships its own Node major, which the runner cannot reproduce (a
// documented difference, docs/deployment.md).
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, sep } from "node:path";

export const PEPR_IMAGE = /^ghcr\.io\/defenseunicorns\/pepr\/controller:v(\d+\.\d+\.\d+)$/;

export interface ImageFs {
  image: string;
  /** ENTRYPOINT (Kubernetes `command` replaces it). */
  entrypoint: string[];
  /** CMD (Kubernetes `args` replace it). */
  cmd: string[];
  workingDir: string;
  /** The image's USER: uid and gid. */
  user: { uid: number; gid: number };
  env: Record<string, string>;
  /** Host folders that are the image's content, by their path in the container (read-only). */
  content: Record<string, string>;
}

interface LockPackage {
  version?: string;
  /** Installed only on some platforms (npm leaves it out elsewhere). */
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** The lock entries (paths like node_modules/a/node_modules/b) that `from` needs at run time. */
export function productionClosure(packages: Record<string, LockPackage>, from: string): string[] {
  const resolve = (dependent: string, name: string): string | undefined => {
    for (let base = dependent; ; ) {
      const candidate = `${base ? `${base}/` : ""}node_modules/${name}`;
      if (packages[candidate]) return candidate;
      if (!base) return undefined;
      const i = base.lastIndexOf("/node_modules/");
      base = i >= 0 ? base.slice(0, i) : "";
    }
  };
  const seen = new Set<string>();
  const todo = [from];
  while (todo.length) {
    const p = todo.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    const entry = packages[p];
    const deps = { ...entry.dependencies, ...entry.optionalDependencies };
    for (const name of Object.keys(deps)) {
      const r = resolve(p, name);
      // A missing optional dependency is one npm did not install for this platform.
      if (r) todo.push(r);
      else if (!entry.optionalDependencies?.[name]) throw new Error(`${p} needs ${name}, which the lock does not hold`);
    }
  }
  return [...seen].sort();
}

function cacheRoot(): string {
  return (
    process.env.ATB_IMAGE_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "atb-operator", "images")
  );
}

/** Copies the closure's packages (each without its nested node_modules) into a new cache entry. */
function buildEntry(root: string, packages: Record<string, LockPackage>, closure: string[], dir: string): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const p of closure) {
    const src = join(root, p);
    if (!existsSync(src) && packages[p].optional) continue; // not for this platform (e.g. fsevents)
    if (!existsSync(src)) throw new Error(`${src} is missing: run npm ci`);
    const nested = `${src}${sep}node_modules`;
    cpSync(src, join(tmp, p), {
      recursive: true,
      dereference: false,
      filter: s => s !== nested && !s.startsWith(`${nested}${sep}`),
    });
  }
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, ".complete"), `${closure.length} packages\n`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  renameSync(tmp, dir);
}

/**
 * The filesystem of `image`, building the cache entry on first use. Throws, naming the image,
 * for any image but Pepr's controller at the version this project installs.
 */
export function imageFs(image: string, root: string): ImageFs {
  const m = PEPR_IMAGE.exec(image);
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as {
    packages: Record<string, LockPackage>;
  };
  const pepr = lock.packages["node_modules/pepr"]?.version;
  if (!m) {
    throw new Error(
      `image "${image}": the pod runner can only reproduce Pepr's controller image (ghcr.io/defenseunicorns/pepr/controller:v${pepr}); it has no container engine to pull anything else`,
    );
  }
  if (m[1] !== pepr) {
    throw new Error(
      `image "${image}": this project installs pepr ${pepr}, so only controller:v${pepr} can be reproduced`,
    );
  }
  const closure = productionClosure(lock.packages, "node_modules/pepr");
  const key = createHash("sha256")
    .update(closure.map(p => `${p}@${lock.packages[p].version ?? ""}`).join("\n"))
    .digest("hex")
    .slice(0, 12);
  const dir = join(cacheRoot(), `pepr-controller-${pepr}-${key}`);
  if (!existsSync(join(dir, ".complete"))) buildEntry(root, lock.packages, closure, dir);
  return {
    image,
    entrypoint: ["node"],
    cmd: [],
    workingDir: "/app",
    user: { uid: 65532, gid: 65532 },
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
    content: { "/app/node_modules": join(dir, "node_modules") },
  };
}
