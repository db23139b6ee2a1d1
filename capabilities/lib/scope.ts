// Which namespaces the operator serves, and the one wording for a task it never processes. The
// same rule is enforced in three places that must agree: the ValidatingAdmissionPolicy shipped
// with the CRD (crds/agenttask-scope.yaml, native admission, so it also covers the namespaces
// Pepr's webhooks skip), the operator's own admission webhook (agent-task/admission.ts), and the
// pipeline, which marks a task that got past both Failed with reason OutOfScope. The policy reads
// its parameters from a ConfigMap the install writes from the operator's settings (policyParams).
// Pure: no I/O, no environment.

/** Namespaces no task may live in unless ATB_PROTECTED_NAMESPACES says otherwise. */
export const DEFAULT_PROTECTED_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease", "pepr-system"] as const;

/** The parts of the operator's configuration that decide where it acts (OperatorConfig has them). */
export interface NamespaceScope {
  /** Empty: every namespace. */
  watchNamespaces: readonly string[];
  protectedNamespaces: readonly string[];
}

/**
 * The refusal messages, with `{namespace}` and `{list}` to fill in. The policy's
 * messageExpressions are these texts written as CEL concatenations (tests/unit/scope.test.ts
 * holds them to it; tests/e2e/scope.test.ts compares what the API server answers).
 */
export const SCOPE_MESSAGES = {
  protected:
    'metadata.namespace: "{namespace}" is protected (ATB_PROTECTED_NAMESPACES={list}): the ATB operator never processes AgentTasks in it',
  unwatched:
    'metadata.namespace: "{namespace}" is not served by the ATB operator (WATCH_NAMESPACE={list}): it never processes AgentTasks in it',
} as const;

export type ScopeRule = keyof typeof SCOPE_MESSAGES;

/** Whether the operator's watch scope covers the namespace (it may still be protected). */
export function watches(namespace: string, scope: NamespaceScope): boolean {
  return scope.watchNamespaces.length === 0 || scope.watchNamespaces.includes(namespace);
}

/** The rule that keeps the operator out of this namespace, if any (protected first). */
export function scopeRule(namespace: string, scope: NamespaceScope): ScopeRule | undefined {
  if (scope.protectedNamespaces.includes(namespace)) return "protected";
  return watches(namespace, scope) ? undefined : "unwatched";
}

/** Why the operator never processes a task in this namespace, or undefined when it does. */
export function scopeRefusal(namespace: string, scope: NamespaceScope): string | undefined {
  const rule = scopeRule(namespace, scope);
  if (!rule) return undefined;
  const list = rule === "protected" ? scope.protectedNamespaces : scope.watchNamespaces;
  return SCOPE_MESSAGES[rule].replace("{namespace}", namespace).replace("{list}", list.join(","));
}

/**
 * Why the operator never changes an object in this namespace (the task's target), or undefined.
 * Only a cross-namespace target (ATB_ALLOW_CROSS_NAMESPACE) can differ from the task's own
 * namespace; the policy's data may list more protected namespaces, which it rates CRITICAL.
 */
export function targetRefusal(namespace: string, scope: NamespaceScope): string | undefined {
  if (!scope.protectedNamespaces.includes(namespace)) return undefined;
  return `spec.target.namespace: "${namespace}" is protected (ATB_PROTECTED_NAMESPACES=${scope.protectedNamespaces.join(",")}): the ATB operator never changes objects in it`;
}

/** The ConfigMap the policy's binding takes its parameters from (paramRef). */
export const POLICY_PARAMS = { name: "atb-operator-scope", namespace: "pepr-system" } as const;
export const POLICY_NAME = "agenttask-scope.atb.siemens.com";

/** The policy's parameters for an operator with this scope: the ConfigMap's data. */
export function policyParams(scope: NamespaceScope): { protectedNamespaces: string; watchNamespaces: string } {
  return {
    protectedNamespaces: scope.protectedNamespaces.join(","),
    watchNamespaces: scope.watchNamespaces.join(","),
  };
}

/** The parameter ConfigMap itself, as the install applies it. */
export function policyParamsConfigMap(scope: NamespaceScope) {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: POLICY_PARAMS.name,
      namespace: POLICY_PARAMS.namespace,
      labels: { "app.kubernetes.io/name": "atb-operator", "app.kubernetes.io/part-of": "atb" },
    },
    data: policyParams(scope),
  };
}
