// GIVEN `npm run build` and `npm run manifests` (a private build), WHEN the deploy-path check
// (npm run deploy-check, tools/deploy-path.ts) installs dist/atb-operator.yaml as the README says
// on a control plane of its own, in a network namespace of its own, and runs the pods the
// generated Deployments create as local processes the way the kubelet would (tools/pods/), THEN
// both Deployments roll out, the API server reaches the admission pods through the generated
// Service-referenced webhooks, the sandbox's sample tasks reach their expected phases through the
// generated pods, /healthz and the metrics port answer, each container's process runs with its
// Deployment's uid/gid/fsGroup, no-new-privileges, no capabilities, read-only mounts and memory
// limit, and the API server's audit log shows the watcher's writes made as the generated
// ServiceAccount (with the token bound to the watcher pod) and the targets' writes as the executor
// it impersonates.
//
// AND WHEN the watcher's broker certificate mount is taken out of the manifests, THEN the check
// fails, naming the watcher's rollout and with the watcher's own log saying what is missing.
//
// The other e2e files share globalSetup's control plane; this one does not use it (the generated
// webhooks would intercept every file's tasks): the check makes its own.
/* eslint-disable @typescript-eslint/no-explicit-any -- pods and manifests as arbitrary JSON */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dump, loadAll } from "js-yaml";
import type { DeployReport } from "../../tools/deploy-path";
import { buildModule, removeBuild } from "../helpers/module-build";

const root = join(__dirname, "..", "..");
let dist = "";

function deployCheck(distDir: string, report: string, extra: string[] = []): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(root, "tools", "run-ts.mjs"), "tools/deploy-path.ts", "--dist", distDir, "--report", report, ...extra],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill("SIGTERM"), 600_000);
    child.on("error", reject);
    child.on("exit", code => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, out });
    });
  });
}

const readReport = (file: string) => JSON.parse(readFileSync(file, "utf8")) as DeployReport;
const failed = (r: DeployReport) =>
  r.checks
    .filter(c => !c.ok)
    .map(c => `${c.name}: ${c.detail}`)
    .join("\n");

beforeAll(() => {
  dist = buildModule("deploy-path");
}, 400_000);

afterAll(() => removeBuild(dist));

test("the generated manifests, run as a cluster runs them, serve the samples", async () => {
  const report = join(dist, "report.json");
  const { code, out } = await deployCheck(dist, report);
  const r = readReport(report);
  if (!r.ok) throw new Error(`deploy check failed:\n${failed(r)}\n\n${out.slice(-6000)}`);
  expect(code).toBe(0);
  const names = r.checks.map(c => c.name);
  // Every part of the path was checked, not skipped.
  for (const part of [
    /^rollout: deployment\/pepr-atb-operator-watcher/,
    /^rollout: deployment\/pepr-atb-operator /,
    /^webhooks: the admission Service has ready endpoints/,
    /^samples: every sample task reached its expected phase/,
    /^webhooks: the mutating webhook recorded the requester/,
    /^webhooks: the validating webhook refuses/,
    /^probe: pepr-atb-operator-watcher-.* \/healthz/,
    /^metrics: /,
    /^process: pepr-atb-operator-watcher-.*\/watcher runs as its Deployment says/,
    /^process: pepr-atb-operator-[a-z0-9]+-[a-z0-9]+\/server runs as its Deployment says/,
    /^audit: task status written by the generated ServiceAccount only/,
    /^audit: with the token the runner requested for the watcher pod/,
    /^audit: targets written as the namespace's executor/,
  ])
    expect(names.some(n => part.test(n))).toBe(true);
  // Two admission replicas and one watcher, each at an address of its own.
  const pods = r.pods.filter(p => p.namespace === "pepr-system");
  expect(pods).toHaveLength(3);
  expect(new Set(pods.map(p => p.ip)).size).toBe(3);
  expect(pods.every(p => !p.refused && p.ready)).toBe(true);
}, 700_000);

test("without the watcher's broker certificate mount, the check fails and says why", async () => {
  // The same build, with one generated mount taken out (as a wrong manifest would have it).
  const broken = join(dist, "broken");
  mkdirSync(broken, { recursive: true });
  const docs = (loadAll(readFileSync(join(dist, "atb-operator.yaml"), "utf8")) as Record<string, any>[]).filter(
    Boolean,
  );
  const watcher = docs.find(d => d.kind === "Deployment" && d.metadata.name === "pepr-atb-operator-watcher")!;
  const c = watcher.spec.template.spec.containers[0];
  const before = c.volumeMounts.length;
  c.volumeMounts = c.volumeMounts.filter((m: { mountPath: string }) => m.mountPath !== "/etc/atb/tls");
  expect(c.volumeMounts.length).toBe(before - 1);
  writeFileSync(join(broken, "atb-operator.yaml"), docs.map(d => dump(d, { lineWidth: -1 })).join("---\n"));
  const report = join(broken, "report.json");
  const { code } = await deployCheck(broken, report, ["--rollout-timeout", "45"]);
  const r = readReport(report);
  expect(code).not.toBe(0);
  expect(r.ok).toBe(false);
  const rollout = r.checks.find(x => x.name.startsWith("rollout: deployment/pepr-atb-operator-watcher"));
  expect(rollout).toMatchObject({ ok: false });
  expect(rollout!.detail).toMatch(/timed out|exceeded/);
  // The watcher's own words: the operator refuses to start without the file its env names.
  const log = Object.entries(r.podLogs).find(([pod]) => pod.startsWith("pepr-atb-operator-watcher"))?.[1] ?? "";
  expect(log).toMatch(/\/etc\/atb\/tls\/tls\.(crt|key)|\/etc\/atb\/tls\/ca\.crt/);
}, 700_000);
