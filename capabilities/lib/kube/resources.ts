// API coordinates of the kinds the operator touches and the REST paths built from them. A kind
// missing here cannot be read or written by any code path (the RBAC test reads this table).
import { AtbError } from "../errors";
import { GROUP, PLURAL, VERSION } from "../../../crds/agenttask";

/** API coordinates of the kinds the operator touches. */
export const RESOURCES: Record<string, { group: string; version: string; plural: string }> = {
  Deployment: { group: "apps", version: "v1", plural: "deployments" },
  StatefulSet: { group: "apps", version: "v1", plural: "statefulsets" },
  DaemonSet: { group: "apps", version: "v1", plural: "daemonsets" },
  ReplicaSet: { group: "apps", version: "v1", plural: "replicasets" },
  ControllerRevision: { group: "apps", version: "v1", plural: "controllerrevisions" },
  ConfigMap: { group: "", version: "v1", plural: "configmaps" },
  Secret: { group: "", version: "v1", plural: "secrets" },
  Service: { group: "", version: "v1", plural: "services" },
  Event: { group: "", version: "v1", plural: "events" },
  ServiceAccount: { group: "", version: "v1", plural: "serviceaccounts" },
  AgentTask: { group: GROUP, version: VERSION, plural: PLURAL },
  AgentTaskApproval: { group: GROUP, version: VERSION, plural: "agenttaskapprovals" },
};

/** The REST path of an object (or of a collection when name is omitted). */
export function resourcePath(kind: string, namespace?: string, name?: string, subresource?: string): string {
  const r = RESOURCES[kind];
  if (!r) throw new AtbError("TASK_INVALID", `kind ${kind} is not supported`);
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  const obj = name ? `/${encodeURIComponent(name)}` : "";
  return `${base}${ns}/${r.plural}${obj}${subresource ? `/${subresource}` : ""}`;
}
