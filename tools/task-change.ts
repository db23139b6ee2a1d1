// The change digest a development minter binds for a task (docs/authorization.md, "The change
// digest"): canonicalChange of the task's action and payload (capabilities/change.ts), with a
// rollback's revision and template hash looked up in the cluster exactly as the operator resolves
// them (capabilities/rollback/resolve.ts). Used by the stack's mint() (e2e tests, the sandbox, the
// bench) so a token for a MEDIUM or higher task names the change it authorizes.
import type { AgentTaskSpec } from "../crds/agenttask";
import { canonicalChange, type ChangeResolution } from "../capabilities/change";
import type { KubeObject } from "../capabilities/lib/action";
import { changeDigest } from "../capabilities/lib/change-digest";
import { resourcePath, type KubeApi } from "../capabilities/lib/kube";
import { resolveRollback } from "../capabilities/rollback/resolve";
import type { Binaries } from "./controlplane/binaries";
import { kubectl } from "./controlplane/cluster";

export interface TaskChangeTarget {
  kind: string;
  namespace: string;
  name: string;
}

export interface TaskChange {
  /** The CRD action ("rollback") or the broker's action string ("k8s.Deployment.rollback"). */
  action: string;
  target: TaskChangeTarget;
  payload?: Record<string, unknown>;
  /** A rollback's revision and template hash; looked up through `api` when absent. */
  resolved?: ChangeResolution;
}

/** A read-only KubeApi over kubectl's `get --raw` (all a rollback's lookup needs). */
export function kubectlReader(bin: Binaries, kubeconfig: string): Pick<KubeApi, "request"> {
  return {
    request<T>(req: { method: string; path: string; query?: Record<string, string> }): Promise<T> {
      if (req.method !== "GET") return Promise.reject(new Error(`kubectlReader only reads (got ${req.method})`));
      const query = req.query ? `?${new URLSearchParams(req.query).toString()}` : "";
      return Promise.resolve(JSON.parse(kubectl(bin, kubeconfig, ["get", "--raw", `${req.path}${query}`])) as T);
    },
  };
}

/** "k8s.Deployment.rollback" -> "rollback"; a CRD action as it is. */
export function crdAction(action: string): string {
  const m = /^k8s\.[A-Za-z][A-Za-z0-9]*\.([a-z][a-z-]*)$/.exec(action);
  return m ? m[1]! : action;
}

/** The revision and template hash a rollback of the target would restore now, as the operator picks them. */
export async function resolveRollbackChange(
  api: Pick<KubeApi, "request">,
  target: TaskChangeTarget,
  payload: Record<string, unknown> | undefined,
): Promise<ChangeResolution> {
  const obj = await api.request<KubeObject>({
    method: "GET",
    path: resourcePath(target.kind, target.namespace, target.name),
  });
  const spec = { action: "rollback", target, payload } as unknown as AgentTaskSpec;
  const { change } = await resolveRollback({ kube: api as KubeApi, spec }, obj);
  return { revision: change.revision, templateHash: change.template_hash };
}

/** `sha256:<hex>` of the task's canonical change; a rollback without `resolved` needs `api`. */
export async function taskChangeSha256(t: TaskChange, api?: Pick<KubeApi, "request">): Promise<string> {
  const action = crdAction(t.action);
  // The payload as the task reaches the API server, and so the operator: JSON (a Date from a YAML
  // file becomes its string, an undefined member is left out).
  const payload =
    t.payload === undefined ? undefined : (JSON.parse(JSON.stringify(t.payload)) as TaskChange["payload"]);
  t = { ...t, payload };
  let resolved = t.resolved;
  if (action === "rollback" && resolved?.templateHash === undefined) {
    if (!api)
      throw new Error("a rollback's change needs its revision and template hash, or the cluster to look them up");
    const payload = resolved?.revision === undefined ? t.payload : { ...t.payload, revision: resolved.revision };
    resolved = await resolveRollbackChange(api, t.target, payload);
  }
  return changeDigest(canonicalChange({ action, target: t.target, payload: t.payload }, resolved));
}
