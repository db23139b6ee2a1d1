// The per-namespace executor a platform team creates in each namespace where agents may work: a
// ServiceAccount (atb-executor unless ATB_EXECUTOR_SERVICE_ACCOUNT says otherwise), a Role with
// what agents may ever do there, and the RoleBinding. The operator impersonates it for every
// read, dry run and write of a target; the ATB policy decides each change inside that bound.
//
// The Roles come from the action registry (what each action reads and writes), in three bounds:
//   all-actions  everything the six actions need (GET + PATCH of every target kind, history lists)
//   no-secrets   the same without Secrets (update-config then works on ConfigMaps only)
//   scale-only   what the scale action needs: its target kinds. Kubernetes RBAC cannot tell a
//                replicas change from any other change of the same object, so this bounds which
//                objects agents reach; which changes is the policy's (docs/deployment.md).
//
// Usage: npm run -s executor -- <namespace> [--bound all-actions|no-secrets|scale-only] [--name atb-executor]
//        prints the three objects as YAML for `kubectl apply -f -`.
// The tests, the sandbox and the benchmark create executors with executorObjects().
import { dump } from "js-yaml";
import type { ActionModule } from "../capabilities/lib/action";
import { DEFAULT_EXECUTOR } from "../capabilities/lib/config";
import { kubectl } from "./controlplane/cluster";
import type { Binaries } from "./controlplane/binaries";
import { actionRules, type PolicyRule } from "./generate/others";

export const BOUNDS = ["all-actions", "no-secrets", "scale-only"] as const;
export type Bound = (typeof BOUNDS)[number];

export const BOUND_DOCS: Record<Bound, string> = {
  "all-actions": "everything the six actions need",
  "no-secrets": "workloads, ConfigMaps and Services, but no Secrets",
  "scale-only": "only the objects the scale action changes (Deployments, StatefulSets, ReplicaSets)",
};

/** The executor Role's rules for a bound, from the actions' target kinds and declared grants. */
export function executorRules(modules: readonly ActionModule[], bound: Bound): PolicyRule[] {
  switch (bound) {
    case "all-actions":
      return actionRules(modules);
    case "no-secrets":
      return actionRules(modules).filter(r => !(r.apiGroups[0] === "" && r.resources[0] === "secrets"));
    case "scale-only":
      return actionRules(modules.filter(m => m.action === "scale"));
  }
}

export interface ExecutorObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  [k: string]: unknown;
}

/** The ServiceAccount, Role and RoleBinding of one namespace's executor. */
export function executorObjects(
  namespace: string,
  rules: PolicyRule[],
  name: string = DEFAULT_EXECUTOR,
): ExecutorObject[] {
  const metadata = {
    name,
    namespace,
    labels: { "app.kubernetes.io/name": "atb-executor", "app.kubernetes.io/part-of": "atb" },
  };
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata, automountServiceAccountToken: false },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata, rules },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace }],
    },
  ];
}

/** Multi-document YAML for kubectl. */
export function toYaml(objects: object[]): string {
  return objects.map(o => dump(o, { lineWidth: -1, noRefs: true })).join("---\n");
}

/**
 * Creates (or changes) the executor of `namespace` with the Role of `bound`, through the admin
 * kubeconfig of a local control plane; "none" removes it (its tasks then fail ExecutorMissing).
 */
export async function installExecutor(
  bin: Binaries,
  kubeconfig: string,
  e: { namespace: string; bound: Bound | "none"; name?: string },
): Promise<void> {
  const { namespace, bound, name = DEFAULT_EXECUTOR } = e;
  if (bound === "none") {
    for (const kind of ["rolebinding", "role", "serviceaccount"])
      kubectl(bin, kubeconfig, ["-n", namespace, "delete", kind, name, "--ignore-not-found"]);
    return;
  }
  const { ACTION_MODULES } = await import("../capabilities/registry");
  const objects = executorObjects(namespace, executorRules(ACTION_MODULES, bound), name);
  kubectl(bin, kubeconfig, ["apply", "--server-side", "--force-conflicts", "-f", "-"], toYaml(objects));
}

/** docs/deployment.md's generated region: each bound's Role rules. */
export function executorRolesDoc(modules: readonly ActionModule[]): string[] {
  const out: string[] = [];
  for (const bound of BOUNDS) {
    out.push(`**${bound}**: ${BOUND_DOCS[bound]}.`, "", "```yaml");
    out.push(
      ...dump({ rules: executorRules(modules, bound) }, { lineWidth: -1, flowLevel: 3 })
        .trimEnd()
        .split("\n"),
    );
    out.push("```", "");
  }
  return out.slice(0, -1);
}

function usage(): never {
  console.error(
    "usage: npm run -s executor -- <namespace> [--bound all-actions|no-secrets|scale-only] [--name atb-executor]",
  );
  process.exit(2);
}

async function main(args: string[]): Promise<void> {
  let bound: Bound = "all-actions";
  let name = DEFAULT_EXECUTOR;
  let namespace: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--bound") {
      const b = args[++i] as Bound;
      if (!BOUNDS.includes(b)) usage();
      bound = b;
    } else if (a === "--name") name = args[++i] ?? usage();
    else if (!a.startsWith("-") && !namespace) namespace = a;
    else usage();
  }
  if (!namespace) usage();
  const { ACTION_MODULES } = await import("../capabilities/registry");
  process.stdout.write(toYaml(executorObjects(namespace, executorRules(ACTION_MODULES, bound), name)));
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`executor: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
