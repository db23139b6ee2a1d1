// Who the same-run limit is on the API server: a ServiceAccount of its own in its namespace, with
// a Role holding exactly what the limit's requests need, and a token kubeconfig. Like the
// operator, it is not system:masters (so every request is authorized by RBAC, as the operator's
// are), and the API server's audit log names it, so the benchmark counts its requests and
// nobody else's. It writes targets only as the namespace's executor, which it may impersonate.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_EXECUTOR } from "../../capabilities/lib/config";
import { executorUser } from "../../capabilities/lib/pipeline/executor";
import type { Binaries } from "../../tools/controlplane/binaries";
import { kubectl } from "../../tools/controlplane/cluster";
import { OPERATOR_TOKEN_SECONDS, planeOf, tokenKubeconfig } from "../../tools/operator-identity";
import { toYaml } from "../../tools/executor";

export const LIMIT_SERVICE_ACCOUNT = "atb-bench-limit";

export interface LimitIdentity {
  /** system:serviceaccount:<namespace>:atb-bench-limit, as the audit log names it. */
  username: string;
  /** The executor it writes targets as. */
  executor: string;
  kubeconfig: string;
}

/** The Role's rules: the tasks (read, watch, status), the targets (read, watch), impersonating the executor. */
export const LIMIT_RULES = [
  { apiGroups: ["atb.siemens.com"], resources: ["agenttasks"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["atb.siemens.com"], resources: ["agenttasks/status"], verbs: ["patch"] },
  { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["serviceaccounts"], resourceNames: [DEFAULT_EXECUTOR], verbs: ["impersonate"] },
];

/** Creates the limit's ServiceAccount, Role and binding in `namespace` and writes its kubeconfig into `dir`. */
export function createLimitIdentity(
  bin: Binaries,
  adminKubeconfig: string,
  namespace: string,
  dir: string,
): LimitIdentity {
  const name = LIMIT_SERVICE_ACCOUNT;
  const metadata = { name, namespace };
  kubectl(
    bin,
    adminKubeconfig,
    ["apply", "-f", "-"],
    toYaml([
      { apiVersion: "v1", kind: "ServiceAccount", metadata, automountServiceAccountToken: false },
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata, rules: LIMIT_RULES },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata,
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
        subjects: [{ kind: "ServiceAccount", name, namespace }],
      },
    ]),
  );
  const token = kubectl(bin, adminKubeconfig, [
    "-n",
    namespace,
    "create",
    "token",
    name,
    `--duration=${OPERATOR_TOKEN_SECONDS}s`,
  ]).trim();
  const { server, caData } = planeOf(readFileSync(adminKubeconfig, "utf8"));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, tokenKubeconfig(server, caData, token, name), { mode: 0o600 });
  return {
    username: `system:serviceaccount:${namespace}:${name}`,
    executor: executorUser(namespace, { executorServiceAccount: DEFAULT_EXECUTOR }),
    kubeconfig,
  };
}
