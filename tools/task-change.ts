// The change digest a development minter binds for a task (docs/authorization.md, "The change
// digest"): canonicalChange of the task's action and payload (capabilities/change.ts), with a
// rollback's revision and template hash looked up in the cluster exactly as the operator resolves
// them (capabilities/rollback/resolve.ts), and an update-config's Secret values given by reference
// read from their source Secrets as the operator reads them (capabilities/update-config/resolve.ts).
// Used by the stack's mint() (e2e tests, the sandbox, the bench) so a token for a MEDIUM or higher
// task names the change it authorizes.
import type { AgentTaskSpec } from "../crds/agenttask";
import { canonicalChange, type ChangeResolution } from "../capabilities/change";
import type { KubeObject } from "../capabilities/lib/action";
import { bytesDigest, changeDigest } from "../capabilities/lib/change-digest";
import { resourcePath, type KubeApi } from "../capabilities/lib/kube";
import { resolveRollback } from "../capabilities/rollback/resolve";
import { referencedKeys } from "../capabilities/update-config/ref";
import { readReferences } from "../capabilities/update-config/resolve";
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

/**
 * The digests of the Secret values an update-config's payload names by reference, read from the
 * source Secrets in the target's namespace (the reader's identity must be allowed to get them).
 */
export async function referencedValueDigests(
  api: Pick<KubeApi, "request">,
  target: TaskChangeTarget,
  payload: Record<string, unknown> | undefined,
): Promise<Record<string, string>> {
  const data = (payload?.data ?? {}) as Record<string, unknown>;
  const get = (path: string) => api.request<KubeObject>({ method: "GET", path });
  const values = await readReferences(get, target.namespace, data);
  return Object.fromEntries([...values].map(([k, v]) => [k, bytesDigest(v)]));
}

/**
 * `sha256:<hex>` of the task's canonical change; a rollback without `resolved`, and an
 * update-config with references but without `resolved.valueDigests`, need `api`.
 */
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
  if (action === "update-config") resolved = await withValueDigests(t, resolved, api);
  return changeDigest(canonicalChange({ action, target: t.target, payload: t.payload }, resolved));
}

/** An update-config's resolution with the digests of its referenced values (read through `api` unless given). */
async function withValueDigests(
  t: TaskChange,
  resolved: ChangeResolution | undefined,
  api: Pick<KubeApi, "request"> | undefined,
): Promise<ChangeResolution | undefined> {
  if (!referencedKeys(t.payload?.data).length || resolved?.valueDigests) return resolved;
  if (!api)
    throw new Error(
      "an update-config's Secret values given by reference need their digests, or the cluster to read them",
    );
  return { ...resolved, valueDigests: await referencedValueDigests(api, t.target, t.payload) };
}
