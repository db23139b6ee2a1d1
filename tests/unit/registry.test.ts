// The action registry is the one source of the action table. GIVEN the registry, THEN every file
// generated from it (CRD parts, RBAC rules, README table, policy tiers) is current and says what
// the modules say; GIVEN a seventh action added as one folder plus one registry line, THEN it
// validates and plans with only its own code and the generator changes exactly the lines it
// should; GIVEN a table edited without regenerating, THEN the drift check names the file.
import { load } from "js-yaml";
import { commonErrors } from "../../capabilities/agent-task/admission";
import type { ActionModule } from "../../capabilities/lib/action";
import { defineRegistry } from "../../capabilities/lib/action/define";
import { RESOURCES } from "../../capabilities/lib/kube";
import { ACTION_KINDS, ACTION_MODULES, ACTION_REGISTRY, ACTIONS, actions } from "../../capabilities/registry";
import { RestartAction } from "../../capabilities/restart";
import type { AgentTask } from "../../crds/agenttask";
import { CRD, DEPLOYMENT, drift, generate, PACKAGE, POLICY, README, readRepo, type Reader } from "../../tools/generate";
import { executorRules } from "../../tools/executor";
import { AnnotateAction } from "../fixtures/annotate-action";
import { config, ctx, FakeKube, spec, UID, workload } from "./actions/fake";

interface Rule {
  rule: string;
  message?: string;
  messageExpression?: string;
}
interface Schema {
  enum?: string[];
  properties?: Record<string, Schema>;
  "x-kubernetes-validations"?: Rule[];
}
interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

function crdSpec(text: string): Schema {
  const crd = load(text) as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  return crd.spec.versions[0].schema.openAPIV3Schema.properties!.spec;
}

const rbac = (text: string): PolicyRule[] => (JSON.parse(text) as { pepr: { rbac: PolicyRule[] } }).pepr.rbac;

/** Lines of `after` not in `before`, and lines of `before` not in `after`. */
function lineChanges(before: string, after: string): { added: string[]; removed: string[] } {
  const a = before.split("\n");
  const b = after.split("\n");
  return {
    added: b.filter(l => !a.includes(l)).map(l => l.trim()),
    removed: a.filter(l => !b.includes(l)).map(l => l.trim()),
  };
}

const withAnnotate = defineRegistry({ ...ACTION_REGISTRY, annotate: AnnotateAction });

describe("the registry", () => {
  test("lists every action once, keyed by its name, with its kinds", () => {
    expect(ACTIONS).toEqual(["scale", "restart", "update-config", "deploy", "rollback", "patch"]);
    expect(ACTION_MODULES.map(m => m.action)).toEqual(ACTIONS);
    for (const m of ACTION_MODULES) expect(ACTION_KINDS[m.action as keyof typeof ACTION_KINDS]).toBe(m.kinds);
    expect(actions.scale).toBe(ACTION_REGISTRY.scale);
  });

  test("refuses a key that names another action's module", () => {
    // @ts-expect-error the key must be the module's action name (a compile error, and at run time)
    expect(() => defineRegistry({ scale: RestartAction })).toThrow(
      "registry key scale holds the module of action restart",
    );
  });
});

describe("generated files", () => {
  test("are current (else: run npm run generate)", () => {
    expect(drift(ACTION_MODULES)).toEqual([]);
  });

  test("the CRD says what the modules say", () => {
    const s = crdSpec(readRepo(CRD));
    expect(s.properties!.action.enum).toEqual([...ACTIONS]);
    const kindRule = s["x-kubernetes-validations"]!.find(v => v.rule.includes("self.target.kind in"))!;
    for (const m of ACTION_MODULES) {
      const kinds = m.kinds.map(k => `'${k}'`).join(", ");
      expect(kindRule.rule).toContain(`(self.action == '${m.action}' && self.target.kind in [${kinds}])`);
    }
    const usedKinds = new Set(ACTION_MODULES.flatMap(m => m.kinds));
    expect(new Set(s.properties!.target.properties!.kind.enum)).toEqual(usedKinds);
    const fields = ACTION_MODULES.flatMap(m => Object.keys(m.payload.fields));
    expect(Object.keys(s.properties!.payload.properties!).sort()).toEqual([...new Set(fields)].sort());
    const messages = s["x-kubernetes-validations"]!.map(v => v.message);
    expect(messages).toContain("payload.replicas is required for action scale");
    expect(messages).toContain("payload.data or payload.remove is required for action update-config");
    expect(messages).toContain("exactly one of payload.image or payload.manifest is required for action deploy");
    // patch's field is an array or a string: its admission rule requires it, not CEL.
    expect(messages.filter(m => m?.includes("for action patch"))).toEqual([]);
  });

  test("the executor's all-actions Role grants GET and PATCH on every target kind, plus the actions' own grants", () => {
    const rules = executorRules(ACTION_MODULES, "all-actions");
    const verbsOf = (kind: string): string[] =>
      rules.find(r => r.resources[0] === RESOURCES[kind].plural && r.apiGroups[0] === RESOURCES[kind].group)?.verbs ??
      [];
    for (const m of ACTION_MODULES) {
      for (const kind of m.kinds) expect(verbsOf(kind)).toEqual(expect.arrayContaining(["get", "patch"]));
      for (const g of m.grants) expect(verbsOf(g.kind)).toEqual(expect.arrayContaining(g.verbs));
    }
    // The operator's own ClusterRole keeps its hand-written rules and reaches no target kind.
    const own = rbac(readRepo(PACKAGE)).map(r => r.resources[0]);
    expect(own).toEqual(expect.arrayContaining(["agenttasks", "agenttasks/status", "events", "peprstores"]));
    for (const r of rules) expect(own).not.toContain(r.resources[0]);
  });

  test("the policy's default tiers and the README's rows are the modules'", () => {
    const policy = readRepo(POLICY);
    for (const m of ACTION_MODULES) expect(policy).toContain(`\t"${m.action}": "${m.tier}",`);
    const readme = readRepo(README);
    for (const m of ACTION_MODULES)
      expect(readme).toContain(`| \`${m.action}\` | ${m.docs.summary} | ${m.kinds.join(", ")} |`);
  });
});

describe("a seventh action: one folder plus one registry line", () => {
  const cfg = config();
  const annotate = (payload?: Record<string, unknown>, kind: "Deployment" | "ConfigMap" = "Deployment") =>
    spec("annotate", kind, payload);

  test("validates with its own rules and the shared ones", () => {
    expect(AnnotateAction.validate(annotate({ key: "team", value: "checkout" }), cfg)).toEqual([]);
    expect(AnnotateAction.validate(annotate(), cfg)).toEqual([
      "spec.payload: must be an object with fields key and value",
    ]);
    expect(AnnotateAction.validate(annotate({ key: "team", value: "x", extra: 1 }), cfg)).toEqual([
      "spec.payload.extra: not a field of action annotate (allowed: key, value, reason)",
    ]);
    expect(AnnotateAction.validate(annotate({ key: "atb.siemens.com/applied-tasks", value: "x" }), cfg)).toEqual([
      `spec.payload.key: "atb.siemens.com/applied-tasks" is the operator's own (atb.siemens.com/...)`,
    ]);
  });

  test("plans one merge patch with the marker, fails on a missing target, verifies on a re-read", async () => {
    const kube = new FakeKube();
    const c = ctx(annotate({ key: "team", value: "checkout" }), kube, cfg);
    const target = workload("Deployment");
    const plan = await AnnotateAction.plan(c, target);
    expect(plan.params).toEqual({ key: "team", value: "checkout" });
    expect(plan.write).toMatchObject({ method: "PATCH", patchType: "merge" });
    expect(plan.write.body).toEqual({
      metadata: {
        resourceVersion: "42",
        annotations: { "atb.siemens.com/applied-by-task": UID, "atb.siemens.com/applied-tasks": UID, team: "checkout" },
      },
    });
    await expect(AnnotateAction.plan(c, undefined)).rejects.toMatchObject({ kind: "TARGET_NOT_FOUND" });
    expect(await AnnotateAction.verify(c)).toMatchObject({ state: "failed", reason: "TargetNotFound" });
    kube.put("Deployment", { ...target, metadata: { ...target.metadata, annotations: { team: "checkout" } } });
    expect(await AnnotateAction.verify(c)).toMatchObject({ state: "done" });
    expect(kube.requests).toEqual([]);
  });

  test("gets its admission capability and its kinds enforced by the shared webhook rules", () => {
    expect(AnnotateAction.capability.name).toBe("agenttask-annotate");
    const task = (kind: string) =>
      ({
        metadata: { name: "t", namespace: "shop" },
        spec: {
          ...annotate({ key: "a", value: "b" }),
          agentId: "spiffe://x/a/b",
          poaToken: "a.b.c",
          target: { kind, name: "w", namespace: "shop" },
        },
      }) as unknown as AgentTask;
    expect(commonErrors(task("ConfigMap"), withAnnotate, cfg)).toEqual([]);
    expect(commonErrors(task("Secret"), withAnnotate, cfg)).toEqual([
      "spec.target.kind: Secret is not supported by action annotate (supported: Deployment, ConfigMap)",
    ]);
  });

  test("changes the generated files exactly where expected, and the drift check names them", () => {
    const modules = Object.values(withAnnotate);
    const out = generate(modules);
    const crd = lineChanges(readRepo(CRD), out.get(CRD)!);
    expect(crd.removed).toEqual([
      "(self.action == 'patch' && self.target.kind in ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ConfigMap', 'Service'])",
      "'patch: Deployment, StatefulSet, DaemonSet, ReplicaSet, ConfigMap, Service)'",
      "enum: [scale, restart, update-config, deploy, rollback, patch]",
    ]);
    expect(crd.added).toEqual([
      "(self.action == 'patch' && self.target.kind in ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ConfigMap', 'Service']) ||",
      "(self.action == 'annotate' && self.target.kind in ['Deployment', 'ConfigMap'])",
      "'patch: Deployment, StatefulSet, DaemonSet, ReplicaSet, ConfigMap, Service; ' +",
      "'annotate: Deployment, ConfigMap)'",
      "self.action != 'annotate' ||",
      "(has(self.payload) && has(self.payload.key) && has(self.payload.value))",
      "message: payload.key and payload.value are required for action annotate",
      "enum: [scale, restart, update-config, deploy, rollback, patch, annotate]",
      "key:",
      "minLength: 1",
      'description: "annotate: annotation key ([prefix/]name)"',
      'value: { type: string, maxLength: 4096, description: "annotate: annotation value" }',
    ]);
    expect(crdSpec(out.get(CRD)!).properties!.payload.properties!.key).toEqual({
      type: "string",
      minLength: 1,
      maxLength: 253,
      description: "annotate: annotation key ([prefix/]name)",
    });
    // Deployment and ConfigMap already have GET and PATCH: no RBAC changes, neither the
    // operator's (package.json) nor the executor's Roles (docs/deployment.md).
    expect(out.get(PACKAGE)).toBe(readRepo(PACKAGE));
    expect(out.get(DEPLOYMENT)).toBe(readRepo(DEPLOYMENT));
    expect(lineChanges(readRepo(README), out.get(README)!)).toEqual({
      added: [
        "| `annotate` | sets one annotation on the target; done when the target carries it | Deployment, ConfigMap | `key`, `value` | LOW |",
      ],
      removed: [],
    });
    expect(lineChanges(readRepo(POLICY), out.get(POLICY)!)).toEqual({ added: ['"annotate": "LOW",'], removed: [] });

    const stale = drift(modules);
    expect(stale.map(m => m.split(" ")[0])).toEqual([CRD, README, POLICY]);
    for (const m of stale) expect(m).toContain("is out of date with the action registry: run npm run generate");
    // Once generated (here: read from the generator's output), nothing is stale.
    const regenerated: Reader = path => out.get(path) ?? readRepo(path);
    expect(drift(modules, regenerated)).toEqual([]);
  });
});

describe("a table edited without regenerating", () => {
  test("removing a kind from an action fails the drift check, naming each file to regenerate", () => {
    const patch = ACTION_REGISTRY.patch;
    const edited: ActionModule[] = ACTION_MODULES.map(m =>
      m === patch ? { ...m, kinds: patch.kinds.filter(k => k !== "Service") } : m,
    );
    const stale = drift(edited);
    expect(stale.map(m => m.split(" ")[0])).toEqual([CRD, DEPLOYMENT, README]);
    expect(stale[0]).toMatch(
      /^crds\/agenttask\.yaml is out of date with the action registry: run npm run generate \(line \d+: /,
    );
    expect(stale[1]).toMatch(/^docs\/deployment\.md is out of date .*: run npm run generate/);
    // Only patch targets Services: the kind leaves the CRD's enum and the RBAC rules.
    const out = generate(edited);
    expect(crdSpec(out.get(CRD)!).properties!.target.properties!.kind.enum).not.toContain("Service");
    expect(out.get(DEPLOYMENT)).not.toContain("[services]");
    expect(readRepo(DEPLOYMENT)).toContain("[services]");
  });

  test("inconsistent payload schemas cannot be generated", () => {
    const clash = { ...AnnotateAction, payload: { fields: { replicas: { type: "string" as const } } } };
    expect(() => generate([...ACTION_MODULES, clash])).toThrow(
      "payload field replicas: actions scale and annotate declare different schemas",
    );
    const undeclared = { ...AnnotateAction, payload: { fields: {}, required: { all: ["key"] } } };
    expect(() => generate([...ACTION_MODULES, undeclared])).toThrow(
      "action annotate requires payload field key, which it does not declare",
    );
  });
});
