// The per-namespace executor: the operator reads, dry-runs and writes targets only as a
// ServiceAccount in the task's namespace (ATB_EXECUTOR_SERVICE_ACCOUNT, default atb-executor),
// which it impersonates. The platform team grants that ServiceAccount, with an ordinary Role, what
// agents may ever do in the namespace; the broker decides each change inside that bound. The
// operator's own ClusterRole holds no access to workloads, ConfigMaps, Secrets or Services.
//
// Two refusals are the platform team's to fix, so they fail the task at once with a reason that
// says what to do: no executor ServiceAccount in the namespace (ExecutorMissing), and RBAC that
// does not let the executor (or the operator impersonating it) make a request (ExecutorForbidden).
import type { OperatorConfig } from "../config";
import { AtbError } from "../errors";
import { KubeError, resourcePath, type KubeApi, type KubeRequest, type OperatorKube } from "../kube";

/** How long an executor ServiceAccount that was found counts as present without asking again. */
export const EXECUTOR_SEEN_MS = 30_000;

/**
 * A refusal (403) is asked again once after this long before it counts. Right after an API server
 * restart its RBAC caches are empty for a moment (measured: about 100 ms) and it refuses
 * everything that is not system:masters; a 403 means the request was not carried out, so asking
 * again never applies a change twice.
 */
export const FORBIDDEN_RECHECK_MS = 1_000;

const isForbidden = (err: unknown): err is KubeError => err instanceof KubeError && err.status === 403;

/** `call`, asked a second time after FORBIDDEN_RECHECK_MS when the first answer is 403. */
export async function onceMoreIfForbidden<T>(
  call: () => Promise<T>,
  sleep: (ms: number) => Promise<void> = ms => new Promise(r => setTimeout(r, ms)),
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!isForbidden(err)) throw err;
    await sleep(FORBIDDEN_RECHECK_MS);
    return call();
  }
}

/** The Kubernetes user name of the executor in `namespace`. */
export function executorUser(namespace: string, config: Pick<OperatorConfig, "executorServiceAccount">): string {
  return `system:serviceaccount:${namespace}:${config.executorServiceAccount}`;
}

/** The command that creates an executor with every grant the actions need (docs/deployment.md). */
export function executorHint(namespace: string, name: string): string {
  return (
    `create it with a Role for what agents may do there: npm run -s executor -- ${namespace} | kubectl apply -f - ` +
    `(or kubectl -n ${namespace} create serviceaccount ${name} and bind a Role to it; docs/deployment.md, "The executor")`
  );
}

const VERBS: Record<KubeRequest["method"], string> = {
  GET: "get",
  POST: "create",
  PATCH: "patch",
  PUT: "update",
  DELETE: "delete",
};

/** `verb resource.group` of a request, as RBAC names it (a GET of a collection is a list). */
export function rbacRequest(req: KubeRequest): { verb: string; resource: string; namespace?: string } {
  const parts = req.path.split("/").filter(Boolean);
  // /api/v1/namespaces/ns/plural[/name[/sub]] or /apis/group/version/namespaces/ns/plural[/name[/sub]]
  const core = parts[0] === "api";
  const group = core ? "" : parts[1];
  const rest = parts.slice(core ? 2 : 3);
  const namespace = rest[0] === "namespaces" && rest.length > 2 ? rest[1] : undefined;
  const [plural, name, sub] = namespace ? rest.slice(2) : rest;
  const resource = `${plural ?? "?"}${sub ? `/${sub}` : ""}${group ? `.${group}` : ""}`;
  const verb = req.method === "GET" && !name ? "list" : VERBS[req.method];
  return { verb, resource, namespace };
}

/**
 * The executor's view of the API: every request impersonates it, and a 403 becomes
 * ExecutorForbidden naming the verb, the resource and the namespace.
 */
export function executorApi(kube: OperatorKube, username: string, sleep?: (ms: number) => Promise<void>): KubeApi {
  const as = kube.as(username);
  const api: KubeApi = {
    async request<T>(req: KubeRequest, dryRun = false): Promise<T> {
      try {
        return await onceMoreIfForbidden(() => as.request<T>(req, dryRun), sleep);
      } catch (err) {
        throw forbidden(err, req, username) ?? err;
      }
    },
    async get<T>(path: string, query?: Record<string, string>): Promise<T | undefined> {
      try {
        return await onceMoreIfForbidden(() => as.get<T>(path, query), sleep);
      } catch (err) {
        throw forbidden(err, { method: "GET", path, query }, username) ?? err;
      }
    },
  };
  return api;
}

function forbidden(err: unknown, req: KubeRequest, username: string): AtbError | undefined {
  if (!isForbidden(err)) return undefined;
  const r = rbacRequest(req);
  const where = r.namespace ? ` in namespace ${r.namespace}` : " cluster-wide";
  // The operator itself may be the one refused: its ClusterRole must let it impersonate the executor.
  if (/cannot impersonate/.test(err.message)) {
    return new AtbError(
      "EXECUTOR_FORBIDDEN",
      `the operator may not act as the executor ${username}: its ClusterRole must grant impersonate on serviceaccounts ` +
        `with that name (ATB_EXECUTOR_SERVICE_ACCOUNT and the RBAC must agree); API server: ${err.message}`,
      { cause: err },
    );
  }
  return new AtbError(
    "EXECUTOR_FORBIDDEN",
    `the executor ${username} may not ${r.verb} ${r.resource}${where}: grant it in the executor's Role if agents ` +
      `may do this there (docs/deployment.md, "The executor"); nothing was written by this request; API server: ${err.message}`,
    { cause: err },
  );
}

/**
 * Whether the executor ServiceAccount exists, asked with the operator's own identity (get on
 * serviceaccounts, restricted to the executor's name). Impersonation itself does not need the
 * ServiceAccount to exist: this check is what makes deleting it switch a namespace off. A found
 * ServiceAccount is remembered for EXECUTOR_SEEN_MS; a missing one is asked again every time.
 */
export class ExecutorCheck {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly kube: KubeApi,
    private readonly config: Pick<OperatorConfig, "executorServiceAccount">,
    private readonly now: () => number = Date.now,
    private readonly sleep?: (ms: number) => Promise<void>,
  ) {}

  /** Throws EXECUTOR_MISSING when the namespace has no executor; KubeErrors pass through. */
  async require(namespace: string): Promise<void> {
    const at = this.seen.get(namespace);
    if (at !== undefined && this.now() - at < EXECUTOR_SEEN_MS) return;
    const name = this.config.executorServiceAccount;
    let sa: unknown;
    try {
      sa = await onceMoreIfForbidden(() => this.kube.get(resourcePath("ServiceAccount", namespace, name)), this.sleep);
    } catch (err) {
      if (isForbidden(err))
        throw new AtbError(
          "EXECUTOR_FORBIDDEN",
          `the operator may not read the executor ServiceAccount ${namespace}/${name}: its ClusterRole must grant get on ` +
            `serviceaccounts with that name; API server: ${err.message}`,
          { cause: err },
        );
      throw err;
    }
    if (!sa) {
      this.seen.delete(namespace);
      throw new AtbError(
        "EXECUTOR_MISSING",
        `namespace ${namespace} has no executor ServiceAccount ${name}: the operator changes targets only as that ` +
          `ServiceAccount, so nothing was read or written; ${executorHint(namespace, name)}`,
      );
    }
    if (this.seen.size > 10_000) this.seen.clear();
    this.seen.set(namespace, this.now());
  }
}
