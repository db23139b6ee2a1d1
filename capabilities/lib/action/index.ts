// The contract between the shared pipeline and one action (scale, restart, ...), and the table
// entry every action declares about itself. An action module owns its payload schema, the kinds
// it supports, its default risk tier, what it tells the broker, the one write that applies the
// change (with the at-most-once marker), and when the change counts as done. It never writes
// AgentTask status and never talks to the broker: the pipeline does. Modules are built with
// defineAction (./define.ts) and listed in capabilities/registry.ts, from which the CRD, the RBAC
// rules, the policy's default tiers and the README's table are generated (tools/generate.ts).
import type { Capability } from "pepr";
import type { AgentTask, AgentTaskSpec, RiskTier, TargetKind } from "../../../crds/agenttask";
import type { OperatorConfig } from "../config";
import type { KubeApi, KubeRequest } from "../kube";
import type { Logger } from "../logger";

/** A Kubernetes object as read from the API (only the fields the pipeline relies on are typed). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  data?: Record<string, string>;
  [key: string]: unknown;
}

export interface TaskContext {
  task: AgentTask;
  spec: AgentTaskSpec;
  /** The task's UID: the at-most-once marker value. */
  uid: string;
  kube: KubeApi;
  config: Readonly<OperatorConfig>;
  log: Logger;
}

export interface Plan {
  /**
   * The action's canonical change (capabilities/change.ts): what will be applied, as the broker
   * judges it and a PoA's `con.change_sha256` binds it (config values only as their digests).
   */
  params: Record<string, unknown>;
  /**
   * What the operator resolved from the target that the change depends on but the canonical
   * change leaves open (deploy: the container when the payload names none, create vs replace). A
   * re-plan after a conflict writes only when both params and this are unchanged.
   */
  resolved?: Record<string, unknown>;
  /** Observed state the policy may need to judge risk (current replicas, images, revision, ...). */
  context: Record<string, unknown>;
  /**
   * The single write that applies the change AND stamps the marker (markerAnnotations()). The
   * pipeline first sends it with dryRun=All, then for real after an allow. It carries the observed
   * resourceVersion as a precondition.
   */
  write: KubeRequest;
  /**
   * On a 409 Conflict after the decision: true = re-read the target and re-plan the same change
   * (the decision judged the params, not the resourceVersion); false = Failed (patch: the broker
   * judged this exact object).
   */
  retryOnConflict: boolean;
}

/**
 * A plan with nothing to write: the target already is in the wanted state (a rollback to the
 * revision that runs, as `kubectl rollout undo` skips it). The broker still judges the params (a
 * task whose token fails is Denied whatever the target holds); after an allow the task is
 * Completed with reason NoChange and nothing is written.
 */
export interface Unchanged {
  params: Record<string, unknown>;
  context: Record<string, unknown>;
  /** Why nothing is written, for the task's status and Event. */
  noChange: string;
}

/** What an action's plan returns: a change to write, or nothing to write. */
export type Planned = Plan | Unchanged;

export function isUnchanged(p: Planned): p is Unchanged {
  return "noChange" in p;
}

export type VerifyResult =
  | { state: "done"; message: string }
  | { state: "waiting"; message: string }
  | { state: "failed"; reason: string; message: string };

/**
 * One payload field as the CRD's structural schema carries it (an OpenAPI v3 fragment under
 * spec.payload.properties). The generator writes it into crds/agenttask.yaml as given, with the
 * description prefixed by the action's name. Only the keywords the CRD uses are typed; the API
 * server checks these, the action's validate() checks the rest (and says so in its messages).
 */
export interface FieldSchema {
  type?: "string" | "integer" | "number" | "boolean" | "object" | "array";
  description?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  pattern?: string;
  items?: FieldSchema;
  additionalProperties?: FieldSchema;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
}

/**
 * Which payload fields a task must set: all of them, at least one, or exactly one. The API server
 * enforces it with a CEL rule generated into the CRD, except when `apiServer` is false (a field
 * whose type is open, such as patch's array-or-string, is left to the action's own validate()).
 */
export type RequiredFields = ({ all: string[] } | { any: string[] } | { one: string[] }) & { apiServer?: boolean };

export interface PayloadSchema {
  /** Every field the action accepts; any other key is refused at admission. */
  fields: Record<string, FieldSchema>;
  /** Absent: the payload is optional (and may be omitted altogether). */
  required?: RequiredFields;
}

/** What the README's table of supported actions says about an action (Markdown, one line each). */
export interface ActionDocs {
  /** What the action does, as kubectl and the controllers do it, and when it counts as done. */
  summary: string;
  /** The payload column; default: the fields, in backticks, or "none". */
  payload?: string;
  /** When the policy raises the default tier, e.g. "MEDIUM to 0"; shown after the tier. */
  tierNote?: string;
}

/** A permission an action needs beyond GET and PATCH on its target kinds (RBAC is generated). */
export interface ExtraGrant {
  kind: string;
  verbs: string[];
}

/** `P`: what plan() returns; only actions that may find nothing to write declare Planned. */
export interface ActionModule<A extends string = string, P extends Planned = Planned> {
  readonly action: A;
  /** The kinds it may target; the CRD's CEL rule, the webhook and the RBAC rules follow this list. */
  readonly kinds: readonly TargetKind[];
  /** The policy's tier for this action before its own risk rules or a protected namespace raise it. */
  readonly tier: RiskTier;
  readonly payload: PayloadSchema;
  readonly docs: ActionDocs;
  /** Reads beyond the target itself (rollback lists the history the controllers keep). */
  readonly grants: readonly ExtraGrant[];
  /** The action's Pepr capability (its admission binding), registered by pepr.ts. */
  readonly capability: Capability;
  /**
   * Pure payload check used at admission and again by the pipeline (defence in depth). Returns
   * one message per problem, each naming the field and the rule, e.g.
   * "spec.payload.replicas: must be an integer between 0 and 1000". Empty = valid.
   */
  validate(spec: AgentTaskSpec, config: Readonly<OperatorConfig>): string[];
  /**
   * Builds the change from the current target (undefined when it does not exist; only deploy
   * with a manifest may create). Throws AtbError("TASK_INVALID" | "TARGET_NOT_FOUND", message) for
   * a change that cannot be made (paused Deployment, missing revision, ...).
   */
  plan(ctx: TaskContext, target: KubeObject | undefined): Promise<P>;
  /**
   * Whether the applied change is complete (rollout finished, replicas ready, ...), judged on
   * `observed` when the caller has the target already (null: it is gone), else on a fresh GET.
   */
  verify(ctx: TaskContext, observed?: KubeObject | null): Promise<VerifyResult>;
}

/**
 * Every action, keyed by the CRD's action value (capabilities/registry.ts builds it). Keyed by
 * string because the pipeline looks up what the API server stored; the registry's own type keeps
 * each key equal to its module's name.
 */
export type ActionRegistry = Readonly<Record<string, ActionModule>>;

/** `k8s.<Kind>.<action>`: the broker's action string (the seed's mapping). */
export function brokerAction(spec: Pick<AgentTaskSpec, "action" | "target">): string {
  return `k8s.${spec.target.kind}.${spec.action}`;
}
