// The scope rule in its three places: capabilities/lib/scope.ts (the operator's webhook and
// pipeline), the ValidatingAdmissionPolicy in crds/agenttask-scope.yaml (its messages are the
// same texts as CEL concatenations; its default parameters are the operator's defaults; the
// binding fails closed without them), and the install (tools/manifests.ts writes the parameters
// from the watcher's env). tests/e2e/scope.test.ts checks the policy on the real API server.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadAll } from "js-yaml";
import { parseConfig } from "../../capabilities/lib/config";
import {
  POLICY_NAME,
  POLICY_PARAMS,
  SCOPE_MESSAGES,
  policyParamsConfigMap,
  scopeRefusal,
  scopeRule,
} from "../../capabilities/lib/scope";
import { scopeObjects, type K8sObject } from "../../tools/manifests";
import { LABEL_MESSAGES, REQUESTER_MESSAGES } from "../../capabilities/agent-task/admission";
import { REQUESTER_LIMITS } from "../../capabilities/lib/requester";
import { ANNOTATION_REQUESTER, LABEL_SHARD } from "../../crds/agenttask";

const FILE = join(__dirname, "..", "..", "crds", "agenttask-scope.yaml");
const docs = (loadAll(readFileSync(FILE, "utf8")) as K8sObject[]).filter(Boolean);
const byKind = (kind: string) => docs.find(d => d.kind === kind) as K8sObject & { spec: Record<string, never> };

interface Policy {
  failurePolicy: string;
  paramKind: { apiVersion: string; kind: string };
  matchConstraints: { resourceRules: { apiGroups: string[]; operations: string[]; resources: string[] }[] };
  variables: { name: string; expression: string }[];
  validations: { expression: string; messageExpression: string; reason: string }[];
}
const policy = byKind("ValidatingAdmissionPolicy").spec as unknown as Policy;

/**
 * A messageExpression back to its template: the CEL terms for the namespace and the list become
 * the placeholders, then the string literals are joined. Anything else in it fails the test.
 */
function template(expr: string, list: string): string {
  const quoted = expr
    .replace(/request\.namespace/g, "'{namespace}'")
    .replace(`variables.${list}.join(',')`, "'{list}'");
  const literals = [...quoted.matchAll(/'([^']*)'/g)];
  const between = quoted.replace(/'[^']*'/g, "").replace(/[\s+]/g, "");
  expect(between).toBe("");
  return literals.map(m => m[1]).join("");
}

describe("scopeRefusal", () => {
  const all = parseConfig({});
  const scoped = parseConfig({ WATCH_NAMESPACE: "shop,staging" });

  test.each([
    ["shop", all, undefined],
    ["kube-system", all, "protected"],
    ["pepr-system", scoped, "protected"],
    ["shop", scoped, undefined],
    ["elsewhere", scoped, "unwatched"],
  ] as const)("%s: %s", (ns, config, rule) => {
    expect(scopeRule(ns, config)).toBe(rule);
    expect(scopeRefusal(ns, config) === undefined).toBe(rule === undefined);
  });

  test("the messages name the namespace, the rule and its setting", () => {
    expect(scopeRefusal("kube-public", all)).toBe(
      'metadata.namespace: "kube-public" is protected (ATB_PROTECTED_NAMESPACES=kube-system,kube-public,kube-node-lease,pepr-system): the ATB operator never processes AgentTasks in it',
    );
    expect(scopeRefusal("elsewhere", scoped)).toBe(
      'metadata.namespace: "elsewhere" is not served by the ATB operator (WATCH_NAMESPACE=shop,staging): it never processes AgentTasks in it',
    );
  });
});

describe("crds/agenttask-scope.yaml", () => {
  test("holds its namespace and the parameter ConfigMap first, then the policy and its binding", () => {
    expect(docs.map(d => `${d.kind}/${d.metadata.name}`)).toEqual([
      `Namespace/${POLICY_PARAMS.namespace}`,
      `ConfigMap/${POLICY_PARAMS.name}`,
      `ValidatingAdmissionPolicy/${POLICY_NAME}`,
      `ValidatingAdmissionPolicyBinding/${POLICY_NAME}`,
    ]);
  });

  test("the default parameters are the operator's defaults: the protected namespaces refused, every namespace served", () => {
    expect(byKind("ConfigMap")).toEqual(policyParamsConfigMap(parseConfig({})));
  });

  test("the policy judges creations and updates of AgentTasks (not their status), fails closed, and takes a ConfigMap as parameters", () => {
    expect(policy.failurePolicy).toBe("Fail");
    expect(policy.paramKind).toEqual({ apiVersion: "v1", kind: "ConfigMap" });
    expect(policy.matchConstraints.resourceRules).toEqual([
      {
        apiGroups: ["atb.siemens.com"],
        apiVersions: ["*"],
        operations: ["CREATE", "UPDATE"],
        resources: ["agenttasks"],
      },
    ]);
  });

  test("the scope rules apply at creation only; the requester rules at creation and on update; the shard rule on update", () => {
    const [prot, unwatched, userSet, changed, shard] = policy.validations;
    for (const v of [prot, unwatched, userSet]) expect(v.expression).toMatch(/^request\.operation != 'CREATE' \|\| /);
    for (const v of [changed, shard]) expect(v.expression).toMatch(/^request\.operation != 'UPDATE' \|\| /);
  });

  test("its shard rule says the webhook's words: the label of the stored task, unchanged (not added, changed or removed)", () => {
    const shard = policy.validations[4] as unknown as { expression: string; message: string };
    expect(shard.message).toBe(LABEL_MESSAGES.shardChanged);
    expect(shard.expression).toBe("request.operation != 'UPDATE' || variables.shard == variables.oldShard");
    const vars = Object.fromEntries(policy.variables.map(v => [v.name, v.expression]));
    expect(vars.shard).toContain(`object.metadata.labels['${LABEL_SHARD}'] : ''`);
    expect(vars.oldShard).toContain(`oldObject.metadata.labels['${LABEL_SHARD}'] : ''`);
  });

  test("its requester rules say the webhook's words and read the webhook's annotation within its bounds", () => {
    const [, , userSet, changed] = policy.validations as unknown as { message: string; reason: string }[];
    expect(userSet.message).toBe(REQUESTER_MESSAGES.userSet);
    expect(changed.message).toBe(REQUESTER_MESSAGES.changed);
    const vars = Object.fromEntries(policy.variables.map(v => [v.name, v.expression]));
    expect(vars.requester).toContain(`'${ANNOTATION_REQUESTER}' in object.metadata.annotations`);
    expect(vars.oldRequester).toContain(`oldObject.metadata.annotations['${ANNOTATION_REQUESTER}']`);
    const L = REQUESTER_LIMITS;
    for (const bound of [
      `size(variables.username) <= ${L.usernameChars}`,
      `size(variables.uid) <= ${L.uidChars}`,
      `size(variables.groups) <= ${L.groups}`,
      `size(g) <= ${L.groupChars}`,
    ])
      expect(vars.plainIdentity).toContain(bound);
  });

  test("its messages are the operator's messages, word for word", () => {
    const [prot, unwatched] = policy.validations;
    expect(template(prot.messageExpression, "protected")).toBe(SCOPE_MESSAGES.protected);
    expect(template(unwatched.messageExpression, "watched")).toBe(SCOPE_MESSAGES.unwatched);
    expect(policy.validations.map(v => v.reason)).toEqual(Array(5).fill("Forbidden"));
  });

  test("its fallback when the ConfigMap lacks the key is the default protected list", () => {
    const protectedVar = policy.variables.find(v => v.name === "protected")!.expression;
    expect(protectedVar).toContain(`'${parseConfig({}).protectedNamespaces.join(",")}'`);
  });

  test("the binding denies, and fails closed when its parameters are missing", () => {
    expect(byKind("ValidatingAdmissionPolicyBinding").spec).toEqual({
      policyName: POLICY_NAME,
      validationActions: ["Deny"],
      paramRef: { ...POLICY_PARAMS, parameterNotFoundAction: "Deny" },
    });
  });
});

describe("the install's parameters (tools/manifests.ts scopeObjects)", () => {
  test("are written from the watcher's env, before the policy and the binding", () => {
    const objs = scopeObjects({ WATCH_NAMESPACE: "shop, staging", ATB_PROTECTED_NAMESPACES: "kube-system" }, docs);
    expect(objs.map(d => d.kind)).toEqual([
      "ConfigMap",
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]);
    expect(objs[0]).toMatchObject({
      metadata: POLICY_PARAMS,
      data: { protectedNamespaces: "kube-system", watchNamespaces: "shop,staging" },
    });
  });

  test("an invalid setting fails the install, naming the variable", () => {
    expect(() => scopeObjects({ ATB_PROTECTED_NAMESPACES: "Kube_System" }, docs)).toThrow(
      /^watcher env: ATB_PROTECTED_NAMESPACES: must be a comma-separated list/,
    );
    expect(() => scopeObjects({}, docs.slice(0, 2))).toThrow(/must hold a ValidatingAdmissionPolicy and a/);
  });
});
