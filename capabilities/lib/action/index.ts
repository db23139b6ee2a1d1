// The contract between the shared pipeline and one action capability (scale, restart, ...).
// An action module owns its payload schema, the kinds it supports, what it tells the broker, the
// one write that applies the change (with the at-most-once marker), and when the change counts
// as done. It never writes AgentTask status and never talks to the broker: the pipeline does.
import type { Capability } from "pepr";
import type { Action, AgentTask, AgentTaskSpec, TargetKind } from "../../../crds/agenttask";
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
  /** What will be applied, as the broker judges it (Secret values reduced to keys and sizes). */
  params: Record<string, unknown>;
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

export type VerifyResult =
  | { state: "done"; message: string }
  | { state: "waiting"; message: string }
  | { state: "failed"; reason: string; message: string };

export interface ActionModule {
  readonly action: Action;
  readonly kinds: readonly TargetKind[];
  /** The action's Pepr capability (its admission bindings), listed in pepr.ts. */
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
  plan(ctx: TaskContext, target: KubeObject | undefined): Promise<Plan>;
  /** Whether the applied change is complete (rollout finished, replicas ready, ...). */
  verify(ctx: TaskContext): Promise<VerifyResult>;
}

/** Every action, keyed by the CRD's action value: a missing module is a compile error. */
export type ActionRegistry = Readonly<Record<Action, ActionModule>>;

/** `k8s.<Kind>.<action>`: the broker's action string (the seed's mapping). */
export function brokerAction(spec: Pick<AgentTaskSpec, "action" | "target">): string {
  return `k8s.${spec.target.kind}.${spec.action}`;
}
