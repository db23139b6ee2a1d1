// GIVEN the Helm chart `npm run build` (Pepr's build) generates (atb-operator-chart) and the values file
// docs/deployment.md gives (values-atb.yaml, tools/helm-chart.ts), WHEN helm (built from the Go
// module proxy into the control plane's cache, tools/controlplane/build.sh) lints and renders it,
// THEN lint reports no error or warning, the rendered objects are the generated manifests' objects
// (dist/atb-operator.yaml, from the same build) but for the documented list of missing objects
// and field differences (tools/helm-chart.ts, quoted in docs/deployment.md), and they apply
// server-side to the real API server (a dry-run; the namespace pepr-system for real).
//
// The module is built privately (tests/helpers/module-build.ts): dist/ is rewritten by
// tests/e2e/manifests.test.ts while other files run. The AgentTask CRD the webhooks name is
// installed by the e2e globalSetup.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dump, loadAll } from "js-yaml";
import { ensureBinaries } from "../../tools/controlplane/binaries";
import {
  CHART_DIFFERENCES,
  CHART_DIR,
  CHART_LACKS,
  CHART_LINT_NOTES,
  CHART_PSS_WARNINGS,
  compareChart,
  describeDiffs,
  HELM_VALUES,
  objectKey,
  RELEASE,
  VALUES_FILE,
} from "../../tools/helm-chart";
import { NAMESPACE, OUTPUT, TLS_MOUNT, TLS_SECRET, TLS_VOLUME, type K8sObject } from "../../tools/manifests";
import { e2eCluster } from "../helpers/cluster-env";
import { Kube } from "../helpers/kube";
import { buildModule, removeBuild } from "../helpers/module-build";

const bin = ensureBinaries();
const kube = new Kube(bin, e2eCluster().kubeconfig);
const PSS_WARNING = /^Warning: would violate PodSecurity "restricted:latest": (.*)$/;
let dir = "";
let values = "";
let kubeVersion = "";
let manifests: K8sObject[] = [];

/** helm with its config, cache and data folders inside the build folder (nothing in $HOME). */
function helm(args: string[]): { ok: boolean; out: string } {
  const home = join(dir, ".helm");
  const r = spawnSync(bin.helm, args, {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
    env: {
      ...process.env,
      HELM_CONFIG_HOME: join(home, "config"),
      HELM_CACHE_HOME: join(home, "cache"),
      HELM_DATA_HOME: join(home, "data"),
    },
  });
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

function render(valueFiles: string[]): K8sObject[] {
  const args = ["template", RELEASE, join(dir, CHART_DIR), "--kube-version", kubeVersion];
  const r = helm([...args, ...valueFiles.flatMap(f => ["-f", f])]);
  if (!r.ok) throw new Error(`helm ${args.join(" ")} failed:\n${r.out}`);
  return (loadAll(r.out) as K8sObject[]).filter(Boolean);
}

const yaml = (objs: object[]): string => objs.map(o => dump(o, { lineWidth: -1 })).join("---\n");

beforeAll(() => {
  dir = buildModule("helm");
  mkdirSync(join(dir, ".helm"), { recursive: true });
  values = join(dir, VALUES_FILE);
  writeFileSync(values, dump(HELM_VALUES));
  manifests = (loadAll(readFileSync(join(dir, OUTPUT), "utf8")) as K8sObject[]).filter(Boolean);
  // Render for the API server the objects are applied to.
  kubeVersion = (JSON.parse(kube.run(["version", "-o", "json"])) as { serverVersion: { gitVersion: string } })
    .serverVersion.gitVersion;
}, 600_000);

afterAll(() => {
  if (dir) removeBuild(dir);
});

describe(`the generated Helm chart (${CHART_DIR})`, () => {
  test("helm is the pinned version (tools/controlplane/versions.env)", () => {
    const pinned = /^HELM_VERSION=(\S+)$/m.exec(
      readFileSync(join(__dirname, "..", "..", "tools", "controlplane", "versions.env"), "utf8"),
    )?.[1];
    expect(pinned).toMatch(/^v3\./);
    expect(helm(["version", "--short"]).out.trim()).toBe(pinned);
  });

  test(`helm lint --strict with ${VALUES_FILE} passes; its only notes are the documented ones`, () => {
    const r = helm(["lint", "--strict", join(dir, CHART_DIR), "-f", values, "--kube-version", kubeVersion]);
    expect(r.out).toContain("1 chart(s) linted, 0 chart(s) failed");
    expect(r.ok).toBe(true);
    const notes = r.out.split("\n").filter(l => /^\[(INFO|WARNING|ERROR)\]/.test(l));
    expect(notes).toEqual(CHART_LINT_NOTES);
  });

  test(`helm template with ${VALUES_FILE}: every object is the manifests' object, but for the documented differences`, () => {
    const c = compareChart(render([values]), manifests);
    // Each line names the object and the field path, with both values.
    expect(describeDiffs(c.undocumented)).toEqual([]);
    expect(c.extra).toEqual([]);
    // The documented list is exact: a difference that went away must leave the list (and the docs).
    expect(c.unused).toEqual([]);
    expect(c.lacks).toEqual(CHART_LACKS.map(l => l.object));
  });

  test(`without ${VALUES_FILE} the comparison names the missing broker certificate (the check can fail)`, () => {
    const c = compareChart(render([]), manifests);
    const watcher = `Deployment/${NAMESPACE}/pepr-atb-operator-watcher spec.template.spec`;
    expect(describeDiffs(c.undocumented)).toEqual([
      `${watcher}.containers[name=watcher].volumeMounts[name=${TLS_VOLUME}]: chart (absent), manifests ` +
        JSON.stringify({ name: TLS_VOLUME, mountPath: TLS_MOUNT, readOnly: true }),
      `${watcher}.volumes[name=${TLS_VOLUME}]: chart (absent), manifests ` +
        JSON.stringify({ name: TLS_VOLUME, secret: { secretName: TLS_SECRET, defaultMode: 0o440, optional: false } }),
    ]);
    // A value changed on the chart's side is named by its path too.
    const rendered = render([values]);
    const deployment = rendered.find(o => objectKey(o) === `Deployment/${NAMESPACE}/pepr-atb-operator-watcher`)!;
    (deployment as unknown as { spec: { replicas: number } }).spec.replicas = 3;
    expect(describeDiffs(compareChart(rendered, manifests).undocumented)).toEqual([
      `Deployment/${NAMESPACE}/pepr-atb-operator-watcher spec.replicas: chart 3, manifests 1`,
    ]);
    // A documented difference that no longer occurs is reported, by object and path.
    const extra = { objects: [objectKey(deployment)], path: "spec.paused", chart: "", manifests: "" };
    expect(compareChart(render([values]), manifests, [...CHART_DIFFERENCES, extra]).unused).toEqual([
      `${objectKey(deployment)} spec.paused`,
    ]);
  });

  test("the rendered objects apply server-side (namespace for real, the rest --dry-run=server); Pod Security warns of the documented fields only", () => {
    const rendered = render([values]);
    // pepr-system as the manifests create it (tests/e2e/manifests.test.ts applies the same object),
    // with the Pod Security "restricted" labels, so admission judges the chart's pods by them.
    const ns = manifests.filter(o => o.kind === "Namespace");
    expect(ns.map(objectKey)).toEqual([`Namespace/-/${NAMESPACE}`]);
    kube.run(["apply", "--server-side", "--force-conflicts", "-f", "-"], yaml(ns));
    const r = kube.try(["apply", "--server-side", "--dry-run=server", "-f", "-"], yaml(rendered));
    expect(r.stderr.split("\n").filter(l => l && !PSS_WARNING.test(l))).toEqual([]);
    expect(r.ok).toBe(true);
    const applied = r.stdout
      .trim()
      .split("\n")
      .filter(l => l.endsWith("(server dry run)"));
    expect(applied).toHaveLength(rendered.length);
    for (const o of rendered) {
      const kind = o.kind.toLowerCase();
      expect(
        applied.some(l => new RegExp(`^${kind}(\\.[\\w.]+)?/${o.metadata.name.replace(/\./g, "\\.")} `).test(l)),
      ).toBe(true);
    }
    const warnings = r.stderr
      .split("\n")
      .map(l => PSS_WARNING.exec(l)?.[1])
      .filter((w): w is string => w !== undefined);
    expect(warnings).toEqual(CHART_PSS_WARNINGS);
    // The namespace Pepr's template puts on the ClusterRole (a documented difference) is dropped.
    const role = rendered.filter(o => o.kind === "ClusterRole");
    expect(role.map(o => o.metadata.namespace)).toEqual([NAMESPACE]);
    const stored = JSON.parse(
      kube.run(["apply", "--server-side", "--dry-run=server", "-o", "json", "-f", "-"], yaml(role)),
    ) as K8sObject;
    expect(stored.metadata.namespace).toBeUndefined();
  });
});
