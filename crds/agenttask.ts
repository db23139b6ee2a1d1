// The AgentTask kind in TypeScript, and the API constants that belong next to the CRD (group,
// labels, annotations, enums). crds/agenttask.yaml is the source of truth; the unit test
// tests/unit/crd.test.ts fails when these lists and that YAML disagree.
import { a, RegisterKind } from "pepr";

export const GROUP = "atb.siemens.com";
export const VERSION = "v1alpha1";
export const KIND = "AgentTask";
export const PLURAL = "agenttasks";
export const CRD_NAME = `${PLURAL}.${GROUP}`;

export const ACTIONS = ["scale", "restart", "update-config", "deploy", "rollback", "patch"] as const;
export type Action = (typeof ACTIONS)[number];

export const TARGET_KINDS = [
  "Deployment",
  "StatefulSet",
  "DaemonSet",
  "ReplicaSet",
  "ConfigMap",
  "Secret",
  "Service",
] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

/** Which kinds each action may target (also enforced by CEL in the CRD). */
export const ACTION_KINDS: Readonly<Record<Action, readonly TargetKind[]>> = {
  scale: ["Deployment", "StatefulSet", "ReplicaSet"],
  restart: ["Deployment", "StatefulSet", "DaemonSet"],
  "update-config": ["ConfigMap", "Secret"],
  deploy: ["Deployment", "StatefulSet", "DaemonSet"],
  rollback: ["Deployment", "StatefulSet", "DaemonSet"],
  patch: ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ConfigMap", "Service"],
};

export const PHASES = ["Pending", "Processing", "Executing", "Completed", "Denied", "Failed"] as const;
export type Phase = (typeof PHASES)[number];
export const TERMINAL_PHASES: readonly Phase[] = ["Completed", "Denied", "Failed"];

export const RISK_TIERS = ["LOW", "MEDIUM", "HIGH", "CRITICAL"] as const;
export type RiskTier = (typeof RISK_TIERS)[number];

export const CONDITION_TYPES = ["Authorized", "Executed", "Succeeded"] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/** Labels the mutating webhook stamps on every task (routing and selection). */
export const LABEL_ACTION = `${GROUP}/action`;
export const LABEL_AGENT = `${GROUP}/agent`;
/** Annotation on a changed target naming the task that changed it (at-most-once marker). */
export const ANNOTATION_APPLIED_BY = `${GROUP}/applied-by-task`;
/** Field manager for every write the operator makes. */
export const FIELD_MANAGER = "atb-operator";

export interface AgentTaskTarget {
  kind: TargetKind;
  name: string;
  namespace: string;
}

export interface AgentTaskSpec {
  agentId: string;
  poaToken: string;
  action: Action;
  target: AgentTaskTarget;
  payload?: Record<string, unknown>;
}

export interface AtbResult {
  allowed?: boolean;
  riskTier?: RiskTier;
  reason?: string;
  requestId?: string;
  evaluateMs?: number;
  decisionId?: string;
  policyRevision?: string;
}

export interface Condition {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface AgentTaskStatus {
  phase?: Phase;
  message?: string;
  startedAt?: string;
  finishedAt?: string;
  observedGeneration?: number;
  attempts?: number;
  nextAttemptAt?: string;
  lastError?: string;
  atbResult?: AtbResult;
  conditions?: Condition[];
}

export class AgentTask extends a.GenericKind {
  declare spec?: AgentTaskSpec;
  declare status?: AgentTaskStatus;
}

export const AGENT_TASK_GVK = { group: GROUP, version: VERSION, kind: KIND, plural: PLURAL };

RegisterKind(AgentTask, AGENT_TASK_GVK);
