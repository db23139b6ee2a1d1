// atb-mcp without a cluster: the tools' input schemas are the CRD's (action enum, target kinds and
// patterns, each action's kinds and payload fields), bad arguments get messages that name the
// field and never quote a value, task views and tool errors never carry a token, the explanations
// come from the docs, and the command line is checked. The tools against a real API server,
// operator and broker: tests/e2e/mcp.test.ts.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { load } from "js-yaml";
import { PHASES, TERMINAL_PHASES as CRD_TERMINAL } from "../../crds/agenttask";
import { ACTION_MODULES } from "../../capabilities/registry";
import { changeSchema, readCrd, validate } from "../../clients/mcp/schema";
import { parseArgs } from "../../clients/mcp/server";
import { AtbTools, explainView, mainReason, taskView, TERMINAL_PHASES } from "../../clients/mcp/tools";

const ROOT = join(__dirname, "..", "..");

/** A JSON Schema as the tests read it. */
interface Schema {
  enum?: string[];
  pattern?: string;
  maxLength?: number;
  properties?: Record<string, Schema>;
  required?: string[];
}
const crdSpec = (
  load(readFileSync(join(ROOT, "crds", "agenttask.yaml"), "utf8")) as {
    spec: {
      versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, Schema> } } } } }[];
    };
  }
).spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties;

const AGENT = "spiffe://atb.example.com/agent/me";
const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";
const scale = {
  agentId: AGENT,
  poaToken: TOKEN,
  action: "scale",
  target: { kind: "Deployment", name: "web", namespace: "prod" },
  payload: { replicas: 3 },
};

/** A kubeconfig for an API server that is not there: every call fails at connect. */
function offlineKube(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: "https://127.0.0.1:1", skipTLSVerify: true }],
    users: [{ name: "u", token: "kube-bearer-token" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}

describe("the schemas are the CRD's", () => {
  const crd = readCrd();

  test("each action's kinds and payload fields are the registry's (from which the CRD is generated)", () => {
    expect(Object.keys(crd.actions)).toEqual(crdSpec.action!.enum);
    for (const m of ACTION_MODULES) {
      expect({ action: m.action, kinds: crd.actions[m.action]!.kinds }).toEqual({
        action: m.action,
        kinds: [...m.kinds],
      });
      expect({ action: m.action, fields: [...crd.actions[m.action]!.fields].sort() }).toEqual({
        action: m.action,
        fields: Object.keys(m.payload.fields).sort(),
      });
      const { apiServer, ...required } = (m.payload.required ?? {}) as Record<string, unknown>;
      // A requirement the API server does not check (apiServer: false) is not in the CRD: the webhook has it.
      if (apiServer !== false) expect(crd.actions[m.action]!.required ?? {}).toEqual(required);
    }
  });

  test("submit_change's schema: agentId, action, target and the token from the CRD; plan_change has no token", () => {
    const submit = changeSchema(crd, true) as { properties: Record<string, Schema>; required: string[] };
    const p = submit.properties;
    expect(p.agentId!.pattern).toBe(crdSpec.agentId!.pattern);
    expect(p.action!.enum).toEqual(crdSpec.action!.enum);
    expect(p.target!.properties!.kind!.enum).toEqual(crdSpec.target!.properties!.kind!.enum);
    expect(p.target!.properties!.name!.pattern).toBe(crdSpec.target!.properties!.name!.pattern);
    expect(p.poaToken!.maxLength).toBe(crdSpec.poaToken!.maxLength);
    expect(submit.required).toEqual(["agentId", "action", "target", "poaToken"]);
    expect(JSON.stringify(submit)).not.toContain("x-kubernetes");
    const plan = changeSchema(crd, false) as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(plan.properties)).not.toContain("poaToken");
    expect(plan.required).toEqual(["agentId", "action", "target"]);
  });

  test("the terminal phases are crds/agenttask.ts's (the module is not loaded at run time)", () => {
    expect(TERMINAL_PHASES.filter(p => (PHASES as readonly string[]).includes(p))).toEqual(CRD_TERMINAL);
    expect(crd.phases).toEqual(PHASES);
  });
});

describe("validate: each message names the field and the rule, never the value", () => {
  const submit = changeSchema(readCrd(), true);

  test("a good scale passes", () => expect(validate(submit, scale)).toEqual([]));

  test.each([
    [
      "target.kind: must be one of Deployment, StatefulSet, ReplicaSet for action scale",
      { ...scale, target: { ...scale.target, kind: "Secret" } },
    ],
    ["payload.replicas: is required for action scale", { ...scale, payload: {} }],
    ["payload.replicas: must be an integer", { ...scale, payload: { replicas: 1.5 } }],
    [
      "payload.image: not a known field (known: replicas, reason) for action scale",
      { ...scale, payload: { replicas: 3, image: "nginx" } },
    ],
    [
      "payload: needs exactly one of image, manifest for action deploy",
      { ...scale, action: "deploy", payload: { image: "a", manifest: {} } },
    ],
    [
      "payload: needs at least one of data, remove for action update-config",
      { ...scale, action: "update-config", target: { ...scale.target, kind: "ConfigMap" }, payload: {} },
    ],
    ["action: must be one of scale, restart, update-config, deploy, rollback, patch", { ...scale, action: "nuke" }],
    ["agentId: must match", { ...scale, agentId: "me" }],
    ["poaToken: is required", { ...scale, poaToken: undefined }],
    ["waitSeconds: must be at most 600", { ...scale, waitSeconds: 601 }],
    ["target.name: must match", { ...scale, target: { ...scale.target, name: "Web_1" } }],
  ])("%s", (message, args) => {
    const errors = validate(submit, args);
    expect(errors.some(e => e.startsWith(message))).toBe(true);
    expect(errors.join("\n")).not.toContain(TOKEN);
  });

  test("an unknown field is named, shortened and escaped", () => {
    const errors = validate(submit, { ...scale, ["x\n".repeat(100)]: 1 });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^x\\nx\\n.*: not a known field/);
    expect(errors[0]!.length).toBeLessThan(400);
  });
});

describe("the tools without a cluster", () => {
  const tools = new AtbTools(offlineKube());

  test("bad arguments are a tool error (isError) that names the field, and nothing is sent", async () => {
    const r = await tools.call("submit_change", { ...scale, payload: { replicas: -1 } });
    expect(r.isError).toBe(true);
    expect(r.content[0]!.text).toBe("invalid arguments for submit_change: payload.replicas: must be at least 0");
  });

  test("an API error is a tool error without the token or the attestations", async () => {
    const attestation = "eyJ0eXAiOiJhdGIifQ.eyJhcHByb3ZlciI6ImEifQ.YXR0ZXN0YXRpb24tc2lnbmF0dXJl";
    const r = await tools.call("submit_change", { ...scale, attestations: [attestation], name: "t1", waitSeconds: 0 });
    expect(r.isError).toBe(true);
    expect(r.content[0]!.text).toContain("the API server rejected AgentTask prod/t1:");
    expect(r.content[0]!.text).not.toContain(TOKEN);
    expect(r.content[0]!.text).not.toContain(attestation);
    expect(r.content[0]!.text).not.toContain("kube-bearer-token");
  });

  test("an unknown tool is a tool error", async () => {
    const r = await tools.call("delete_everything", {});
    expect(r).toMatchObject({ isError: true });
    expect(r.content[0]!.text).toContain("unknown tool");
  });

  test("the five tools, each with an object schema", () => {
    expect(tools.defs.map(d => d.name)).toEqual([
      "plan_change",
      "submit_change",
      "get_task",
      "list_tasks",
      "explain_task",
    ]);
    for (const d of tools.defs) expect(d.inputSchema.type).toBe("object");
  });
});

test("a task view has no token, no attestations and no payload values", () => {
  const view = taskView({
    metadata: { name: "t", namespace: "prod", creationTimestamp: "2026-01-01T00:00:00Z" },
    spec: { ...scale, attestations: ["att.est.ation"], payload: { data: { password: "hunter2" } } } as never,
    status: {
      phase: "Denied",
      atbResult: { allowed: false, reason: "change_mismatch", riskTier: "MEDIUM", requestId: "r-1" },
      conditions: [
        {
          type: "Authorized",
          status: "False",
          reason: "PolicyDenied",
          message: "denied",
          lastTransitionTime: "2026-01-01T00:00:01Z",
        },
      ],
    },
  });
  const text = JSON.stringify(view);
  expect(text).not.toContain(TOKEN);
  expect(text).not.toContain("att.est.ation");
  expect(text).not.toContain("hunter2");
  expect(view).toMatchObject({
    phase: "Denied",
    reason: "PolicyDenied",
    policyReason: "change_mismatch",
    payloadFields: ["data"],
  });
});

test("mainReason: a False condition's, else Succeeded's, else the latest", () => {
  const c = (type: string, status: string, reason: string, t: string) =>
    ({ type, status, reason, message: "", lastTransitionTime: t }) as never;
  expect(
    mainReason({
      conditions: [c("Authorized", "True", "Authorized", "1"), c("Executed", "False", "DryRunRejected", "2")],
    }),
  ).toBe("DryRunRejected");
  expect(
    mainReason({ conditions: [c("Authorized", "True", "Authorized", "1"), c("Succeeded", "True", "Completed", "2")] }),
  ).toBe("Completed");
  expect(
    mainReason({ conditions: [c("Authorized", "True", "Authorized", "2"), c("Executed", "Unknown", "Queued", "1")] }),
  ).toBe("Authorized");
  expect(mainReason({})).toBeUndefined();
});

test("explain_task: the atb CLI's sentence and next step, and each reason's and the policy code's meaning", () => {
  const c = (type: string, status: string, reason: string) =>
    ({ type, status, reason, message: "the operator's message", lastTransitionTime: "2026-01-01T00:00:00Z" }) as never;
  const view = explainView({
    metadata: { name: "t", namespace: "prod" },
    spec: { ...scale } as never,
    status: {
      phase: "Denied",
      atbResult: { allowed: false, reason: "change_mismatch", riskTier: "MEDIUM" },
      conditions: [c("Authorized", "False", "PolicyDenied")],
    },
  });
  expect(view).toMatchObject({
    name: "t",
    namespace: "prod",
    phase: "Denied",
    details: ["Authorized: the operator's message"],
    reasons: [
      {
        condition: "Authorized=False",
        reason: "PolicyDenied",
        meaning: expect.stringMatching(/^the broker denied the change/),
      },
    ],
    policyReason: { code: "change_mismatch", meaning: expect.stringMatching(/is not the digest of the change/) },
  });
  expect(view.sentence).toMatch(
    /^prod\/t is Denied \(PolicyDenied\): the broker denied the change.* The broker's answer: change_mismatch, /,
  );
  expect(view.next).toMatch(/^get a token bound to this change's digest/);
  expect(JSON.stringify(view)).not.toContain(TOKEN);
  const unknown = explainView({
    metadata: { name: "u", namespace: "prod" },
    status: { phase: "Failed", conditions: [c("Succeeded", "False", "NoSuchReason")] },
  });
  expect(unknown.reasons).toEqual([
    { condition: "Succeeded=False", reason: "NoSuchReason", meaning: "(not in docs/reasons.md)" },
  ]);
});

test("the command line", () => {
  expect(parseArgs([])).toEqual({ host: "127.0.0.1" });
  expect(parseArgs(["--http", "8080", "--kubeconfig", "/k"])).toEqual({
    host: "127.0.0.1",
    http: 8080,
    kubeconfig: "/k",
  });
  expect(parseArgs(["--http", "0", "--host", "0.0.0.0"])).toEqual({ host: "0.0.0.0", http: 0 });
  expect(() => parseArgs(["--http", "80a"])).toThrow("--http: must be a port number");
  expect(() => parseArgs(["--http"])).toThrow("--http needs a value");
  expect(() => parseArgs(["--token", "x"])).toThrow('unknown argument "--token"');
});
