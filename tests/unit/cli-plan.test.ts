// `atb plan -f task.yaml` against an in-memory API server. GIVEN an AgentTask file WHEN planned THEN
// the task created is a Plan task with a name of its own and without the token, the command waits
// for the operator's Planned (or failure) and prints the diff, digest, tier and approvals; bad files
// are refused with a message that names the file and the rule.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { plan, planTask, readTaskFile } from "../../clients/cli/plan";
import type { CliKube } from "../../clients/cli/kube";
import { taskPath, type TaskView } from "../../clients/cli/task";
import { FakeKube } from "../helpers/fake-kube";

const dir = mkdtempSync(join(tmpdir(), "atb-cli-plan-"));
const TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJqIn0.c2lnbmF0dXJlLXBsYW4";

function file(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

const TASK_YAML = `apiVersion: atb.siemens.com/v1alpha1
kind: AgentTask
metadata:
  name: deploy-web
  namespace: production
spec:
  agentId: spiffe://atb.example.com/agent/deployer
  poaToken: ${TOKEN}
  action: deploy
  target: { kind: Deployment, name: web, namespace: production }
  payload: { image: "registry.example.com/web:2.0" }
`;

const PLAN = {
  changeSha256: `sha256:${"c".repeat(64)}`,
  riskTier: "HIGH",
  approvalsRequired: { count: 2, sentence: "2 distinct approvers (HIGH)" },
  diff: "--- before\n+++ after\n-        image: registry.example.com/web:1.0\n+        image: registry.example.com/web:2.0\n",
  diffTruncated: false,
};

function harness(finish: (t: TaskView) => TaskView["status"]) {
  const fake = new FakeKube();
  const lines: string[] = [];
  let clock = 0;
  let createdName = "";
  const kube: CliKube = {
    request: (req, dryRun) => fake.request(req, dryRun),
    async create<T>(ns: string, plural: string, body: unknown): Promise<T> {
      const path = `/apis/atb.siemens.com/v1alpha1/namespaces/${ns}/${plural}`;
      const created = await fake.request<TaskView>({ method: "POST", path, body });
      createdName = created.metadata!.name!;
      return created as T;
    },
    close: () => Promise.resolve(),
  };
  let polls = 0;
  const ports = {
    kube,
    out: (l: string) => lines.push(l),
    now: () => clock,
    // The operator "works" while the CLI sleeps: after two polls the task gets its final status.
    sleep: (ms: number) => {
      clock += ms;
      if (++polls === 2) {
        fake.mutate(taskPath("production", createdName), o => void ((o as TaskView).status = finish(o as TaskView)));
      }
      return Promise.resolve();
    },
  };
  return { fake, lines, ports };
}

describe("atb plan", () => {
  test("the Plan task: mode Plan, a generated name after the file's, no token or attestations", () => {
    const doc = readTaskFile(file("t.yaml", TASK_YAML));
    const t = planTask({ ...doc, spec: { ...doc.spec!, attestations: ["a.b.c"] } }, "production");
    expect(t.spec!.mode).toBe("Plan");
    expect(t.spec!.poaToken).toBeUndefined();
    expect(t.spec!.attestations).toBeUndefined();
    expect(t.metadata).toEqual({ namespace: "production", generateName: "deploy-web-plan-" });
    expect(t.spec!.payload).toEqual({ image: "registry.example.com/web:2.0" });
  });

  test.each([
    ["empty.yaml", "", /expected one AgentTask, found 0 documents/],
    ["two.yaml", `${TASK_YAML}---\n${TASK_YAML}`, /expected one AgentTask, found 2 documents/],
    [
      "cm.yaml",
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
      /not an AgentTask \(apiVersion atb.siemens.com\/v1alpha1, kind AgentTask\)/,
    ],
    ["bad.yaml", "a: [", /bad.yaml: /],
    [
      "nospec.yaml",
      "apiVersion: atb.siemens.com/v1alpha1\nkind: AgentTask\nspec: {}\n",
      /spec.action and spec.target are required/,
    ],
  ])("refuses %s with a message naming the file and the rule", (name, text, message) => {
    expect(() => readTaskFile(file(name, text))).toThrow(message);
  });

  test("GIVEN the operator plans it THEN diff, digest, tier and approvals are printed, never the token", async () => {
    const h = harness(() => ({ phase: "Planned", plan: PLAN }));
    const r = await plan({ file: file("t.yaml", TASK_YAML), timeoutMs: 10_000, pollMs: 100 }, h.ports);
    expect(r.planned).toBe(true);
    const post = h.fake.audit.find(e => e.method === "POST")!;
    expect(post.path).toBe("/apis/atb.siemens.com/v1alpha1/namespaces/production/agenttasks");
    expect(JSON.stringify(post.body)).not.toContain(TOKEN);
    const text = h.lines.join("\n");
    expect(text).toContain(`Change:     ${PLAN.changeSha256}`);
    expect(text).toContain("Risk tier:  HIGH");
    expect(text).toContain("Needs:      2 distinct approvers (HIGH)");
    expect(text).toContain("+        image: registry.example.com/web:2.0");
    expect(text).toContain("Leaving out spec.poaToken");
    expect(text).not.toContain(TOKEN);
  });

  test("GIVEN the operator fails it THEN the explanation is printed and it is not planned", async () => {
    const h = harness(() => ({
      phase: "Failed",
      conditions: [
        { type: "Succeeded", status: "False", reason: "TargetNotFound", message: "deployments web not found" },
      ],
    }));
    const r = await plan({ file: file("t.yaml", TASK_YAML), timeoutMs: 10_000, pollMs: 100 }, h.ports);
    expect(r.planned).toBe(false);
    expect(h.lines.join("\n")).toMatch(/is Failed \(TargetNotFound\): the target does not exist/);
  });

  test("GIVEN no operator answers THEN it gives up at the timeout and says where to look", async () => {
    const h = harness(t => t.status);
    await expect(plan({ file: file("t.yaml", TASK_YAML), timeoutMs: 1_000, pollMs: 100 }, h.ports)).rejects.toThrow(
      /was not planned within 1 s \(phase none\); see `npx atb explain production\/deploy-web-plan-/,
    );
  });
});
