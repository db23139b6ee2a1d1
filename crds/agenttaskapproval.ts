// The AgentTaskApproval kind in TypeScript (crds/agenttaskapproval.yaml): an approver's
// attestation for one AgentTask in the same namespace. The operator lists a waiting task's
// approvals and sends their attestations to the broker (capabilities/lib/pipeline/approvals.ts).
import { a, RegisterKind } from "pepr";
import { GROUP, VERSION } from "./agenttask";

export type { TaskApprovals } from "./agenttask";

export const APPROVAL_KIND = "AgentTaskApproval";
export const APPROVAL_PLURAL = "agenttaskapprovals";

export interface AgentTaskApprovalSpec {
  taskRef: { name: string };
  /** Compact JWS (typ atb-attestation+jwt); the broker verifies it. Never logged or shown. */
  attestation: string;
}

export class AgentTaskApproval extends a.GenericKind {
  declare spec?: AgentTaskApprovalSpec;
}

export const AGENT_TASK_APPROVAL_GVK = { group: GROUP, version: VERSION, kind: APPROVAL_KIND, plural: APPROVAL_PLURAL };

RegisterKind(AgentTaskApproval, AGENT_TASK_APPROVAL_GVK);
