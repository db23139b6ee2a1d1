// `npx pepr build` type-checks the whole module, bundles it and writes the deployment manifests.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadAll } from "js-yaml";

const root = join(__dirname, "..", "..");

test("npx pepr build writes the module manifests into dist/", () => {
  const r = spawnSync(join(root, "node_modules", ".bin", "pepr"), ["build"], {
    cwd: root,
    encoding: "utf8",
    timeout: 240_000,
  });
  expect(r.stderr + r.stdout).not.toMatch(/error TS\d+/);
  expect(r.status).toBe(0);
  const yamlFile = readdirSync(join(root, "dist")).find(f => /^pepr-module-.*\.yaml$/.test(f));
  expect(yamlFile).toBeDefined();
  const docs = loadAll(readFileSync(join(root, "dist", yamlFile!), "utf8")) as { kind: string }[];
  const kinds = new Set(docs.map(d => d.kind));
  for (const k of ["Namespace", "ServiceAccount", "ClusterRole", "Deployment", "Secret"]) expect(kinds).toContain(k);
  expect(
    existsSync(join(root, "dist", `pepr-${JSON.parse(readFileSync(join(root, "package.json"), "utf8")).pepr.uuid}.js`)),
  ).toBe(true);
}, 300_000);
