// The status writer: the only code that patches AgentTask status (invariant 6). One merge patch
// on the status subresource per transition; callers hand it the complete next status.
import { K8s } from "pepr";
import { AgentTask, type AgentTaskStatus } from "../../crds/agenttask";

export interface TaskRef {
  name: string;
  namespace: string;
}

export async function writeStatus(ref: TaskRef, status: AgentTaskStatus): Promise<void> {
  await K8s(AgentTask).PatchStatus({ metadata: { name: ref.name, namespace: ref.namespace }, status });
}
