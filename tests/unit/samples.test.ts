// The sandbox's samples (samples/), as files: every sample task is named sample-... (the seed's
// examples create scale-frontend in production, and the upstream ATB samples their own names, so
// a reader who runs them against `npm run sandbox` must not meet a 409), has exactly one entry in
// samples/expectations.json, and the ones expected to Complete cover every action the operator
// supports. The rollback sample's target has an earlier release that the sandbox rolls out before
// the tasks (samples/releases/) and no other sample touches it, so the order the operator takes
// the tasks in does not matter. The upstream samples file and the seed's Python example are kept
// as their sources wrote them. tests/e2e/sandbox.test.ts runs all of this for real.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { load, loadAll } from "js-yaml";
import { ACTIONS } from "../../capabilities/registry";

const SAMPLES = join(__dirname, "..", "..", "samples");
const read = (...p: string[]) => readFileSync(join(SAMPLES, ...p), "utf8");
const yamlFiles = (dir: string) =>
  readdirSync(join(SAMPLES, dir))
    .filter(f => f.endsWith(".yaml"))
    .sort();

interface Doc {
  kind: string;
  metadata: { name: string; namespace: string };
  spec: {
    action?: string;
    poaToken?: string;
    target?: { kind: string; name: string; namespace: string };
    template?: unknown;
  };
}

interface Expectation {
  name: string;
  namespace: string;
  phase: string;
  risk: string;
  poa: { approvers?: string[]; attestations?: string[]; change?: boolean };
}

const tasks = yamlFiles("tasks").map(f => ({ file: f, doc: load(read("tasks", f)) as Doc }));
const expectations = JSON.parse(read("expectations.json")) as Expectation[];
const upstreamText = read("upstream", "agenttasks.yaml");
const upstream = loadAll(upstreamText) as Doc[];
const key = (d: { name: string; namespace: string }) => `${d.namespace}/${d.name}`;

test("every sample task is named sample-<file name> and has exactly one expectation", () => {
  for (const { file, doc } of tasks) {
    expect({ file, name: doc.metadata.name }).toEqual({ file, name: file.replace(/\.yaml$/, "") });
    expect(doc.metadata.name).toMatch(/^sample-[a-z0-9-]+$/);
    expect(doc.spec.poaToken).toBe("minted.by.sandbox");
  }
  expect(expectations.map(key).sort()).toEqual(tasks.map(t => key(t.doc.metadata)).sort());
  expect(new Set(expectations.map(key)).size).toBe(expectations.length);
});

test("no sample task takes a name the seed's examples, the upstream samples or my-task.yaml use", () => {
  const theirs = ["scale-frontend", "my-task", ...upstream.map(d => d.metadata.name)];
  expect(tasks.map(t => t.doc.metadata.name).filter(n => theirs.includes(n))).toEqual([]);
});

test("the samples expected to Complete show every action the operator supports", () => {
  const completed = new Set(expectations.filter(e => e.phase === "Completed").map(key));
  const actions = new Set(tasks.filter(t => completed.has(key(t.doc.metadata))).map(t => t.doc.spec.action));
  expect([...actions].sort()).toEqual([...ACTIONS].sort());
});

test("the rollback sample's target gets an earlier release before the tasks, and no other sample touches it", () => {
  const rollbacks = tasks.filter(t => t.doc.spec.action === "rollback");
  expect(rollbacks.map(t => t.doc.metadata.name)).toEqual(["sample-rollback-inventory"]);
  const target = rollbacks[0]!.doc.spec.target!;
  const others = tasks.filter(t => t.doc.spec.action !== "rollback").map(t => t.doc.spec.target!);
  expect(
    others.filter(o => o.kind === target.kind && o.name === target.name && o.namespace === target.namespace),
  ).toEqual([]);
  const find = (docs: Doc[]) =>
    docs.find(
      d => d?.kind === target.kind && d.metadata.name === target.name && d.metadata.namespace === target.namespace,
    );
  const first = find(yamlFiles("workloads").flatMap(f => loadAll(read("workloads", f)) as Doc[]));
  const later = find(yamlFiles("releases").flatMap(f => loadAll(read("releases", f)) as Doc[]));
  expect(first).toBeDefined();
  expect(later).toBeDefined();
  expect(later!.spec.template).not.toEqual(first!.spec.template);
});

test("the upstream samples file: five tasks with placeholder tokens, stored as upstream wrote it", () => {
  expect(upstream.map(d => d.spec.action)).toEqual(["scale", "restart", "update-config", "deploy", "rollback"]);
  for (const d of upstream) expect(d.spec.poaToken).toBe("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9...");
  // The header comment is the only addition: upstream's own text starts at its first comment.
  const header = upstreamText.slice(0, upstreamText.indexOf("# Example AgentTask: Scale a deployment"));
  expect(header).toContain("mauriciomferz/ATB, examples/k8s-operator/samples/agenttasks.yaml");
  expect(header.split("\n").every(l => l === "" || l.startsWith("#"))).toBe(true);
  // sha256 of upstream's file (3152 bytes at commit 657a05de2e0cd0cc6740f85504b1f6910dbb3af9).
  expect(createHash("sha256").update(upstreamText.slice(header.length)).digest("hex")).toBe(
    "8fdd41701defb2c73e1cec26d33192b7b35f753fbd8a3c3b61b25ede7aa3c9e0",
  );
});

test("the seed's Python example is kept with its undefined names and its in-cluster config call", () => {
  const code = read("seed", "python_example.py");
  const body = code.slice(code.indexOf("from kubernetes import client, config"));
  expect(
    code
      .slice(0, code.length - body.length)
      .split("\n")
      .filter(Boolean)
      .every(l => l.startsWith("#")),
  ).toBe(true);
  expect(body).toContain('"metadata": {"name": "scale-frontend"}');
  expect(body).toContain('"agentId": agent_spiffe_id,');
  expect(body).toContain('"poaToken": poa_token,');
  expect(body).toContain("config.load_incluster_config()  # or load_kube_config() for local");
});

test("one sample is approved by attestations alone: a HIGH task whose token carries no approval block", () => {
  const attested = expectations.filter(e => e.poa.attestations?.length);
  expect(attested.map(e => ({ name: e.name, phase: e.phase, risk: e.risk }))).toEqual([
    { name: "sample-deploy-attested", phase: "Completed", risk: "HIGH" },
  ]);
  for (const e of attested) {
    expect(e.poa.approvers ?? []).toEqual([]);
    expect(e.poa.change).toBe(true);
    expect(new Set(e.poa.attestations).size).toBe(2);
  }
});
