// The AgentTask kind in TypeScript, and the API constants that belong next to the CRD (group,
// labels, annotations, enums). The actions themselves are not listed here: each action declares
// its name, kinds, payload schema and tier (capabilities/<action>/), capabilities/registry.ts
// lists them, and tools/generate.ts writes the CRD's action parts from that list (this module
// must not import the registry: the actions import this module). tests/unit/crd.test.ts checks
// that crds/agenttask.yaml and these constants agree; tests/unit/registry.test.ts that the
// generated parts are current.
import { a, RegisterKind } from "pepr";

export const GROUP = "atb.siemens.com";
export const VERSION = "v1alpha1";
export const KIND = "AgentTask";
export const PLURAL = "agenttasks";

/**
 * The kinds an action may target (the operator knows their API coordinates). The CRD's enum for
 * spec.target.kind lists the ones some action declares, in this order.
 */
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

export const PHASES = [
  "Pending",
  "Processing",
  "Executing",
  "AwaitingApproval",
  "Completed",
  "Denied",
  "Failed",
  "Planned",
] as const;
export type Phase = (typeof PHASES)[number];
/** Planned ends a Plan task (spec.mode Plan); AwaitingApproval is not terminal. */
export const TERMINAL_PHASES: readonly Phase[] = ["Completed", "Denied", "Failed", "Planned"];

/** spec.mode: Apply (default) makes the change; Plan only shows it (status.plan) and writes nothing. */
export const MODES = ["Apply", "Plan"] as const;
export type Mode = (typeof MODES)[number];

export const RISK_TIERS = ["LOW", "MEDIUM", "HIGH", "CRITICAL"] as const;
export type RiskTier = (typeof RISK_TIERS)[number];

export const CONDITION_TYPES = ["Authorized", "Executed", "Succeeded"] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/** Labels the mutating webhook stamps on every task (routing and selection). */
export const LABEL_ACTION = `${GROUP}/action`;
export const LABEL_AGENT = `${GROUP}/agent`;
/**
 * The selectable field that tells open tasks from finished ones: the status writer sets
 * status.finishedAt with the terminal phase, so `status.finishedAt=` (absent selects as "")
 * selects the open tasks on the API server (the watch, the sweep; crds/agenttask.yaml).
 */
export const OPEN_FIELD = "status.finishedAt";
/** The field selector of the open tasks. */
export const OPEN_SELECTOR = `${OPEN_FIELD}=`;
/**
 * The watcher shard that owns the task: a stable hash of the task's target modulo ATB_SHARDS,
 * stamped at creation and never changed (capabilities/lib/shard.ts).
 */
export const LABEL_SHARD = `${GROUP}/shard`;
/** Annotation on a changed target naming the task that changed it (at-most-once marker). */
export const ANNOTATION_APPLIED_BY = `${GROUP}/applied-by-task`;
/**
 * Annotation on a task recording the Kubernetes identity that created it (compact JSON, see
 * capabilities/lib/requester.ts): set by the mutating webhook at creation, never by a user, never changed.
 */
export const ANNOTATION_REQUESTER = `${GROUP}/requester`;
/** Field manager for every write the operator makes. */
export const FIELD_MANAGER = "atb-operator";

export interface AgentTaskTarget {
  kind: TargetKind;
  name: string;
  namespace: string;
}

export interface AgentTaskSpec {
  agentId: string;
  /** Apply when absent (the CRD's default). */
  mode?: Mode;
  /** Required unless mode is Plan (a Plan task's token is ignored, never sent anywhere). */
  poaToken: string;
  /** Approver attestations (compact JWS) the broker verifies next to the token; never shown. */
  attestations?: string[];
  /**
   * Seconds after the task finished when the operator deletes it; 0 keeps it; unset: the
   * operator's ATB_TTL_SECONDS_AFTER_FINISHED (capabilities/lib/runtime/ttl.ts).
   */
  ttlSecondsAfterFinished?: number;
  /** One of the registry's actions (capabilities/registry.ts); the API server enforces the list. */
  action: string;
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

/** status.plan of a Plan task: what a PoA for this change must carry and what it would change. */
export interface TaskPlan {
  /** `sha256:<hex>`: the canonical change's digest (capabilities/change.ts taskChangeDigest). */
  changeSha256: string;
  riskTier: RiskTier;
  approvalsRequired: { count: number; roles?: string[]; sentence: string };
  /** Unified diff of the target before/after as YAML; Secret data redacted; at most 16 KiB. */
  diff: string;
  diffTruncated: boolean;
}

/** status.approvals: what a task waiting for approval needs and has (while AwaitingApproval and after). */
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
  /** What a task waiting for approval needs and has (from AwaitingApproval on; TaskApprovals). */
  approvals?: TaskApprovals;
  finishedAt?: string;
  observedGeneration?: number;
  attempts?: number;
  nextAttemptAt?: string;
  lastError?: string;
  atbResult?: AtbResult;
  /** The Kubernetes identity that wrote the change: system:serviceaccount:<ns>:<executor>. */
  executedAs?: string;
  /** Plan tasks (spec.mode Plan) in phase Planned. */
  plan?: TaskPlan;
  conditions?: Condition[];
}

export class AgentTask extends a.GenericKind {
  declare spec?: AgentTaskSpec;
  declare status?: AgentTaskStatus;
}

export const AGENT_TASK_GVK = { group: GROUP, version: VERSION, kind: KIND, plural: PLURAL };

RegisterKind(AgentTask, AGENT_TASK_GVK);
