// `npm run build`: the module as it ships, with Pepr, kubernetes-fluent-client and
// @kubernetes/client-node inside it.
//
// Why not plain `npx pepr build`: Pepr's build bundles pepr.ts but leaves out Pepr itself, every
// package Pepr depends on and @kubernetes/client-node; the module then loads them from
// node_modules (in a cluster, the controller image's). Loading @kubernetes/client-node's index
// reads all of its generated API classes and models: +65 MiB RSS and 29 MiB of heap in a bare Node
// process, where the module uses a KubeConfig, a few model classes and kubernetes-fluent-client's
// helpers. Bundled and tree-shaken it is 0.5 MB of code; the operator's peak RSS in a burst of 1000
// `scale` tasks fell from 175-181 to 153-155 MiB, same V8 settings (docs/benchmarks.md, "Memory:
// the module bundled with its framework").
//
// How: esbuild bundles pepr.ts into one CommonJS file at the project's root (Pepr's build needs
// its entry point beside package.json and tsconfig.json), with Pepr and kubernetes-fluent-client
// inside and Pepr's other dependencies (express, pino, prom-client, ramda, ...) left to
// node_modules, as Pepr's build leaves them: inlining those too takes the gzipped module over the
// 1 MB a Kubernetes Secret may hold, which Pepr's build refuses. Then `pepr build -e <that file>`
// makes everything else from it as usual (type check, minified bundle, module Secret, its sha256
// in the Deployments and the Helm chart), so no Pepr output is edited afterwards. The intermediate
// file is removed; its source map is chained, so the shipped map still points at the TypeScript.
//
// Usage: npm run build                                 (dist/, after removing it)
//        node tools/run-ts.mjs tools/module-build.ts [--out DIR] [-- <more pepr build options>]
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";
import { build } from "esbuild";

const ROOT = join(__dirname, "..");

/** The packages Pepr's controller image provides to the module: Pepr's own dependencies. */
export function imageProvided(root = ROOT): string[] {
  const pkg = JSON.parse(readFileSync(join(root, "node_modules", "pepr", "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  return Object.keys(pkg.dependencies);
}

/** What the module must carry itself: the framework whose loading costs the memory. */
export const INLINED = ["pepr", "kubernetes-fluent-client", "@kubernetes/client-node"] as const;

/**
 * Optional native add-ons some bundled packages try to load inside try/catch (ws: bufferutil,
 * utf-8-validate; node-fetch: encoding) and work without.
 */
export const OPTIONAL = ["bufferutil", "utf-8-validate", "encoding"] as const;

/** The package names a CommonJS bundle requires, builtins excluded (`node:x` or a Node builtin). */
export function requiredPackages(code: string): string[] {
  const builtins = new Set(builtinModules);
  const names = new Set<string>();
  for (const m of code.matchAll(/\brequire\(\s*["']([^"'./][^"']*)["']\s*\)/g)) {
    const spec = m[1]!;
    if (spec.startsWith("node:")) continue;
    const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
    if (builtins.has(name) || builtins.has(spec)) continue;
    names.add(name);
  }
  return [...names].sort();
}

/**
 * Why a built module would not run as `npm run build` means it to, or [] when it is fine: it
 * requires one of the inlined packages (it was built by plain `pepr build`), or a package the
 * controller image does not have.
 */
export function checkModule(code: string, provided: readonly string[]): string[] {
  const problems: string[] = [];
  const required = requiredPackages(code);
  const notInlined = required.filter(p => (INLINED as readonly string[]).includes(p));
  if (notInlined.length) {
    problems.push(
      `the module loads ${notInlined.join(", ")} from node_modules: it was built by plain \`pepr build\`; ` +
        "build it with `npm run build`",
    );
  }
  const unknown = required.filter(
    p =>
      !(INLINED as readonly string[]).includes(p) &&
      !provided.includes(p) &&
      !(OPTIONAL as readonly string[]).includes(p),
  );
  if (unknown.length) {
    problems.push(`the module requires ${unknown.join(", ")}, which the Pepr controller image does not provide`);
  }
  return problems;
}

export interface BuildResult {
  /** The module bundle (pepr-<uuid>.js) in the output folder. */
  bundle: string;
  /** What `pepr build` printed (its type check included). */
  output: string;
}

/** Builds the module into `out` (created by Pepr; not emptied first). Throws with the build's output. */
export async function buildModule(out: string, peprArgs: string[] = [], root = ROOT): Promise<BuildResult> {
  const uuid = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { pepr: { uuid: string } }).pepr.uuid;
  // Unique per build: e2e files build into folders of their own, side by side.
  const entry = join(root, `.module-entry-${process.pid}-${Date.now()}.js`);
  try {
    const result = await build({
      entryPoints: [join(root, "pepr.ts")],
      outfile: entry,
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      keepNames: true,
      sourcemap: "linked",
      legalComments: "inline",
      external: imageProvided(root).filter(p => !(INLINED as readonly string[]).includes(p)),
      logLevel: "silent",
    });
    if (result.errors.length) throw new Error(result.errors.map(e => e.text).join("\n"));
    const r = spawnSync(
      join(root, "node_modules", ".bin", "pepr"),
      ["build", "-e", relative(root, entry), "-o", out, ...peprArgs],
      { cwd: root, encoding: "utf8", maxBuffer: 256 * 1024 * 1024, timeout: 600_000 },
    );
    const output = `${r.stdout ?? ""}\n${r.stderr ?? ""}`;
    const bundle = join(out, `pepr-${uuid}.js`);
    if (r.status !== 0 || /error TS\d+/.test(output) || !existsSync(bundle)) {
      throw new Error(`pepr build exited ${r.status ?? r.signal}:\n${output.slice(-4000)}`);
    }
    const problems = checkModule(readFileSync(bundle, "utf8"), imageProvided(root));
    if (problems.length) throw new Error(`${bundle}: ${problems.join("; ")}`);
    return { bundle, output };
  } finally {
    rmSync(entry, { force: true });
    rmSync(`${entry}.map`, { force: true });
  }
}

async function main(argv: string[]): Promise<void> {
  const sep = argv.indexOf("--");
  const own = sep < 0 ? argv : argv.slice(0, sep);
  const rest = sep < 0 ? [] : argv.slice(sep + 1);
  let out = join(ROOT, "dist");
  for (let i = 0; i < own.length; i++) {
    if (own[i] === "--out" && own[i + 1]) out = own[++i]!;
    else throw new Error(`unknown argument ${own[i]} (usage: module-build [--out DIR] [-- <pepr build options>])`);
  }
  const { bundle, output } = await buildModule(out, rest);
  process.stdout.write(
    output
      .split("\n")
      .filter(l => !/^\s*$/.test(l))
      .slice(-15)
      .join("\n") + "\n",
  );
  process.stdout.write(
    `module: ${relative(process.cwd(), bundle)} (Pepr, kubernetes-fluent-client and client-node inside)\n`,
  );
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
