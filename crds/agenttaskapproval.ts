// The AgentTaskApproval kind in TypeScript (crds/agenttaskapproval.yaml): an approver's
// attestation for one AgentTask in the same namespace. The operator lists a waiting task's
// approvals and sends their attestations to the broker (capabilities/lib/pipeline/approvals.ts).
import { a, RegisterKind } from "pepr";
import { GROUP, VERSION } from "./agenttask";

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

/** What status.approvals of a task records (while AwaitingApproval and after). */
export interface TaskApprovals {
  /** What the policy requires for the task's tier. */
  required: { count: number; roles?: string[] };
  /** The approver ids the broker counted in its last decision. */
  counted: string[];
  /** What the broker did not count, with why (never the attestation itself). */
  ignored: { id?: string; why: string }[];
  /** `<approval name>@<resourceVersion>` of every approval object the last decision included. */
  seen: string[];
  /** Who must approve what, in one sentence. */
  sentence: string;
}

export const AGENT_TASK_APPROVAL_GVK = { group: GROUP, version: VERSION, kind: APPROVAL_KIND, plural: APPROVAL_PLURAL };

RegisterKind(AgentTaskApproval, AGENT_TASK_APPROVAL_GVK);
