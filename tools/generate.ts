// `npm run generate`: writes everything that follows from the action registry
// (capabilities/registry.ts) so that no copy of the action table is kept by hand:
//   crds/agenttask.yaml  the action enum, the target kind enum, the CEL rules (kinds per action,
//                        required payload fields) and the payload field schemas (marked regions)
//   package.json         pepr.rbac: no rules for target kinds (the operator's ClusterRole)
//   docs/deployment.md   the executor Roles: GET + PATCH per target kind and the actions' extra
//                        grants, in three bounds (tools/executor.ts); and, not from the registry,
//                        the Helm chart's values file and its differences from the generated
//                        manifests (tools/helm-chart.ts, which tests/e2e/helm-chart.test.ts asserts)
//   README.md            the table of supported actions (marked region)
//   policies/actions.rego the default risk tier per action
// `npm run generate -- --check` writes nothing and exits 1 when a file is out of date;
// tests/unit/registry.test.ts runs the same check (drift()).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ActionModule } from "../capabilities/lib/action";
import { actionEnum, kindEnum, payloadFields, rules } from "./generate/crd";
import { packageJson, policyTiers, readmeTable } from "./generate/others";
import { replaceRegion } from "./generate/regions";
import { executorRolesDoc } from "./executor";
import { helmDifferencesDoc, helmValuesDoc } from "./helm-chart";

export const ROOT = join(__dirname, "..");
export const CRD = "crds/agenttask.yaml";
export const PACKAGE = "package.json";
export const README = "README.md";
export const POLICY = "policies/actions.rego";
export const DEPLOYMENT = "docs/deployment.md";

/** Reads a committed file by its path relative to the repository root. */
export type Reader = (path: string) => string;

export const readRepo: Reader = path => readFileSync(join(ROOT, path), "utf8");

/** The committed text, or undefined when the file does not exist yet. */
function committed(read: Reader, path: string): string | undefined {
  try {
    return read(path);
  } catch {
    return undefined;
  }
}

function crd(text: string, modules: readonly ActionModule[]): string {
  let out = replaceRegion(text, CRD, "action-rules", indent => rules(modules, indent));
  out = replaceRegion(out, CRD, "action-enum", indent => actionEnum(modules, indent));
  out = replaceRegion(out, CRD, "target-kind-enum", indent => kindEnum(modules, indent));
  return replaceRegion(out, CRD, "payload-fields", indent => payloadFields(modules, indent));
}

function deployment(text: string, modules: readonly ActionModule[]): string {
  let out = replaceRegion(text, DEPLOYMENT, "executor-roles", () => executorRolesDoc(modules));
  out = replaceRegion(out, DEPLOYMENT, "helm-values", () => helmValuesDoc());
  return replaceRegion(out, DEPLOYMENT, "helm-differences", () => helmDifferencesDoc());
}

/** Every generated file as the registry `modules` makes it (path → content). */
export function generate(modules: readonly ActionModule[], read: Reader = readRepo): Map<string, string> {
  return new Map([
    [CRD, crd(read(CRD), modules)],
    [PACKAGE, packageJson(read(PACKAGE))],
    [DEPLOYMENT, deployment(read(DEPLOYMENT), modules)],
    [README, replaceRegion(read(README), README, "actions-table", () => readmeTable(modules))],
    [POLICY, policyTiers(modules)],
  ]);
}

/** The first line where two texts differ, for a message that shows what is stale. */
function firstDifference(old: string | undefined, generated: string): string {
  if (old === undefined) return "the file does not exist";
  const a = old.split("\n");
  const b = generated.split("\n");
  const i = a.findIndex((line, n) => line !== b[n]);
  const line = i < 0 ? a.length : i;
  return `line ${line + 1}: committed ${JSON.stringify(a[line] ?? "")}, generated ${JSON.stringify(b[line] ?? "")}`;
}

/** One message per generated file that differs from what is committed (empty: all current). */
export function drift(modules: readonly ActionModule[], read: Reader = readRepo): string[] {
  return [...generate(modules, read)]
    .filter(([path, text]) => committed(read, path) !== text)
    .map(
      ([path, text]) =>
        `${path} is out of date with the action registry: run npm run generate (${firstDifference(committed(read, path), text)})`,
    );
}

async function main(args: string[]): Promise<number> {
  // Loaded only when run as a script: the tests import this file with registries of their own.
  const { ACTION_MODULES } = await import("../capabilities/registry");
  if (args.includes("--check")) {
    const stale = drift(ACTION_MODULES);
    for (const m of stale) console.error(m);
    return stale.length ? 1 : 0;
  }
  for (const [path, text] of generate(ACTION_MODULES)) {
    if (committed(readRepo, path) === text) continue;
    writeFileSync(join(ROOT, path), text);
    console.log(`wrote ${path}`);
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    code => process.exit(code),
    (err: unknown) => {
      console.error(`generate: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
