// The CLI's only way to the cluster: the user's own kubeconfig (--kubeconfig, else KUBECONFIG or
// ~/.kube/config), so Kubernetes authentication and RBAC decide what the user may read and create.
// Reads go through the project's kube adapter (capabilities/lib/kube/client.ts: TLS, auth and the
// API server's own error message); creates through @kubernetes/client-node with the field manager
// atb-cli and strict field validation (an unknown field is an error, not silently dropped).
import { ApiException, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { KubeClient, KubeError, type KubeApi } from "../../capabilities/lib/kube";
import { GROUP, VERSION } from "./task";

export const FIELD_MANAGER = "atb-cli";

/** What the commands need from the cluster (tests give them a fake). */
export interface CliKube {
  /** GET through the user's credentials; KubeError on any non-2xx answer. */
  request: KubeApi["request"];
  /** POST of a namespaced custom object of atb.siemens.com/v1alpha1; KubeError on refusal. */
  create<T>(namespace: string, plural: string, body: unknown): Promise<T>;
  /** The namespace of the kubeconfig's current context, if it names one. */
  defaultNamespace?: string;
  close(): Promise<void>;
}

function errorOf(err: unknown): Error {
  if (!(err instanceof ApiException)) return err instanceof Error ? err : new Error(String(err));
  const e = err as ApiException<unknown>;
  let body: { message?: string; reason?: string } = {};
  try {
    body = (typeof e.body === "string" ? JSON.parse(e.body) : e.body) as typeof body;
  } catch {
    body = { message: typeof e.body === "string" ? e.body.slice(0, 500) : undefined };
  }
  return new KubeError(e.code, body?.reason ?? "", body?.message || `HTTP ${e.code}`);
}

export async function connect(kubeconfig?: string): Promise<CliKube> {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster())
    throw new Error("no cluster in the kubeconfig: give --kubeconfig <file> or set KUBECONFIG");
  const client = await KubeClient.fromEnvironment({ qps: 20, timeoutMs: 30_000, kubeconfig: kc });
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ns = kc.getContextObject(kc.getCurrentContext())?.namespace;
  return {
    request: (req, dryRun) => client.request(req, dryRun),
    async create<T>(namespace: string, plural: string, body: unknown): Promise<T> {
      try {
        return (await custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural,
          body: body as object,
          fieldManager: FIELD_MANAGER,
          fieldValidation: "Strict",
        })) as T;
      } catch (err) {
        throw errorOf(err);
      }
    },
    ...(ns ? { defaultNamespace: ns } : {}),
    close: () => client.close(),
  };
}

/** A Kubernetes error as a sentence for the user: who refused what, with the API server's words. */
export function kubeMessage(err: unknown, what: string): string {
  if (!(err instanceof KubeError)) return `${what}: ${err instanceof Error ? err.message : String(err)}`;
  if (err.status === 0) return `${what}: the API server cannot be reached (${err.message})`;
  if (err.status === 401) return `${what}: the API server did not accept your credentials (check your kubeconfig)`;
  if (err.status === 403) return `${what}: Kubernetes RBAC refused it: ${err.message}`;
  return `${what}: ${err.message}`;
}
