// Admission rules common to every action: messages name the field; nothing throws on hostile input.
import fc from "fast-check";
import { agentLabel, commonErrors, immutableErrors } from "../../capabilities/agent-task/admission";
import { parseConfig } from "../../capabilities/lib/config";
import { actions } from "../../capabilities/registry";
import type { AgentTask } from "../../crds/agenttask";

const config = parseConfig({});
const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

function task(spec: Record<string, unknown>, namespace = "prod"): AgentTask {
  return {
    metadata: { name: "t", namespace },
    spec: {
      agentId: "spiffe://atb.example.com/agent/a",
      poaToken: TOKEN,
      action: "scale",
      target: { kind: "Deployment", name: "w", namespace: "prod" },
      payload: { replicas: 1 },
      ...spec,
    },
  } as unknown as AgentTask;
}

test.each([
  [{ action: "delete" }, /^spec\.action: "delete" is not an action/],
  [
    { target: { kind: "Secret", name: "w", namespace: "prod" } },
    /^spec\.target\.kind: Secret is not supported by action scale/,
  ],
  [{ agentId: "agent-a" }, /^spec\.agentId: must be a SPIFFE ID/],
  [{ poaToken: "abc" }, /^spec\.poaToken: must be a compact JWS/],
  [{ attestations: "x" }, /^spec\.attestations: must be a list of at most 16 compact JWS strings$/],
  [{ attestations: Array(17).fill(TOKEN) }, /^spec\.attestations: must be a list of at most 16/],
  [
    { attestations: [TOKEN, "not a jws secret-value"] },
    /^spec\.attestations\[1\]: must be a compact JWS of at most 8192 characters \(three base64url segments\)$/,
  ],
  [{ attestations: [`${TOKEN}${"a".repeat(8192)}`] }, /^spec\.attestations\[0\]: must be a compact JWS/],
  [
    { target: { kind: "Deployment", name: "w", namespace: "other" } },
    /^spec\.target\.namespace: must equal the task's namespace "prod"/,
  ],
])("rejects %p", (spec, message) => {
  const errors = commonErrors(task(spec), actions, config);
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(message);
});

test("spec.mode: a Plan task needs no token (one given is not checked); an Apply task does; other modes are refused", () => {
  expect(commonErrors(task({ mode: "Plan", poaToken: undefined }), actions, config)).toEqual([]);
  expect(commonErrors(task({ mode: "Plan", poaToken: "not-a-jws" }), actions, config)).toEqual([]);
  expect(commonErrors(task({ mode: "Apply" }), actions, config)).toEqual([]);
  for (const mode of ["Apply", undefined])
    expect(commonErrors(task({ mode, poaToken: undefined }), actions, config)).toEqual([
      "spec.poaToken: must be a compact JWS (three base64url segments separated by dots); it is required unless spec.mode is Plan",
    ]);
  expect(commonErrors(task({ mode: "DryRun" }), actions, config)).toEqual([
    'spec.mode: "DryRun" is not a mode (Apply or Plan)',
  ]);
});

test("a valid task passes; cross-namespace is allowed only when configured", () => {
  expect(commonErrors(task({}), actions, config)).toEqual([]);
  expect(commonErrors(task({ attestations: [TOKEN, TOKEN] }), actions, config)).toEqual([]);
  const cross = task({ target: { kind: "Deployment", name: "w", namespace: "other" } });
  expect(commonErrors(cross, actions, parseConfig({ ATB_ALLOW_CROSS_NAMESPACE: "true" }))).toEqual([]);
});

test("a task in a protected namespace is refused with the policy's words, even with WATCH_NAMESPACE empty", () => {
  const t = task({ target: { kind: "Deployment", name: "w", namespace: "kube-system" } }, "kube-system");
  expect(commonErrors(t, actions, config)).toEqual([
    'metadata.namespace: "kube-system" is protected (ATB_PROTECTED_NAMESPACES=kube-system,kube-public,kube-node-lease,pepr-system): the ATB operator never processes AgentTasks in it',
  ]);
  const allowed = parseConfig({ ATB_PROTECTED_NAMESPACES: "pepr-system" });
  expect(commonErrors(t, actions, allowed)).toEqual([]);
});

test("a cross-namespace target in a protected namespace is refused by the operator itself", () => {
  const cross = parseConfig({ ATB_ALLOW_CROSS_NAMESPACE: "true" });
  const t = task({ target: { kind: "Deployment", name: "coredns", namespace: "kube-system" } });
  expect(commonErrors(t, actions, cross)).toEqual([
    'spec.target.namespace: "kube-system" is protected (ATB_PROTECTED_NAMESPACES=kube-system,kube-public,kube-node-lease,pepr-system): the ATB operator never changes objects in it',
  ]);
  const allowed = parseConfig({ ATB_ALLOW_CROSS_NAMESPACE: "true", ATB_PROTECTED_NAMESPACES: "pepr-system" });
  expect(commonErrors(t, actions, allowed)).toEqual([]);
});

test("a task outside WATCH_NAMESPACE is refused with the policy's words", () => {
  const scoped = parseConfig({ WATCH_NAMESPACE: "shop, staging" });
  expect(commonErrors(task({}), actions, scoped)).toEqual([
    'metadata.namespace: "prod" is not served by the ATB operator (WATCH_NAMESPACE=shop,staging): it never processes AgentTasks in it',
  ]);
  expect(commonErrors(task({}), actions, parseConfig({ WATCH_NAMESPACE: "prod" }))).toEqual([]);
});

test("the token is never quoted in a message", () => {
  const errors = commonErrors(task({ poaToken: "secret-not-a-jws" }), actions, config);
  expect(errors.join(" ")).not.toContain("secret-not-a-jws");
});

test("any spec change is refused on update", () => {
  expect(immutableErrors(task({}), task({}))).toEqual([]);
  expect(immutableErrors(task({}), task({ payload: { replicas: 2 } }))).toEqual([
    "spec: is immutable after creation; create a new AgentTask instead",
  ]);
});

test("hostile specs never throw and always yield messages naming a field", () => {
  fc.assert(
    fc.property(fc.anything(), fc.anything(), fc.anything(), (action, target, token) => {
      const errors = commonErrors(task({ action, target, poaToken: token }), actions, config);
      for (const e of errors) expect(e).toMatch(/^spec\.[a-zA-Z.]+: /);
    }),
  );
});

test("a value whose toString throws is still described, not thrown on", () => {
  const nasty = { toString: 1, valueOf: 1 };
  const errors = commonErrors(
    task({ action: nasty, target: { kind: nasty, name: "w", namespace: "prod" } }),
    actions,
    config,
  );
  expect(errors[0]).toMatch(/^spec\.action: ".*" is not an action/);
});

test("agent labels are valid label values", () => {
  expect(agentLabel("spiffe://atb.example.com/agent/planning-agent")).toBe("planning-agent");
  fc.assert(
    fc.property(fc.string(), s => {
      const l = agentLabel(`spiffe://x/${s}`);
      if (l !== undefined) expect(l).toMatch(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/);
    }),
  );
});
