// defineAction: an action's table entry plus the code particular to it, turned into the
// ActionModule the pipeline runs. What every action shares happens here once: the payload's shape
// and unknown-key checks (from its schema), TARGET_NOT_FOUND when there is nothing to change, the
// re-read of the target before verify, and the Pepr admission capability. The helpers an action
// needs in its own code are re-exported, so a module imports from one place.
import type { AgentTaskSpec, RiskTier, TargetKind } from "../../../crds/agenttask";
import type {
  ActionDocs,
  ActionModule,
  ExtraGrant,
  KubeObject,
  FieldSchema,
  PayloadSchema,
  Plan,
  Planned,
  TaskContext,
  VerifyResult,
} from ".";
import type { OperatorConfig } from "../config";
import { actionCapability } from "./capability";
import { checkPayload } from "./payload";
import { getTarget, requireTarget, targetGone } from "./target";

export { isRecord, shown } from "./payload";
export { markerAnnotations, markerMetadata, markerPatchOps, isApplied } from "./marker";
export { getTarget, refusePaused, requireTarget, rolloutDone, targetGone } from "./target";

export interface ActionDefinition<A extends string, P extends Planned = Plan> {
  /** The CRD's action value; also the folder's name and the registry key. */
  action: A;
  kinds: readonly TargetKind[];
  /** Default risk tier, written into the policy's data (policies/actions.rego). */
  tier: RiskTier;
  payload: PayloadSchema;
  docs: ActionDocs;
  /** The Pepr capability's description: what admission checks, e.g. "replicas within the bound". */
  admission: string;
  grants?: readonly ExtraGrant[];
  /** The action's own payload rules; runs only on an object payload, after the shared checks. */
  validate?(payload: Record<string, unknown>, spec: AgentTaskSpec, config: Readonly<OperatorConfig>): string[];
  /** The change against the existing target (see ActionModule.plan). */
  plan(ctx: TaskContext, target: KubeObject): P | Promise<P>;
  /** The change when the target does not exist; without it, a missing target is TARGET_NOT_FOUND. */
  planMissing?(ctx: TaskContext): P | Promise<P>;
  /** Whether the change is complete, judged on the target as just re-read (a vanished target fails). */
  verify(ctx: TaskContext, target: KubeObject): VerifyResult | Promise<VerifyResult>;
}

/**
 * Payload fields every action accepts besides its own. `reason` is the agent's free-text why (the
 * upstream ATB samples set it): shown in the Queued log line (and stored Pending status), `kubectl get -o wide`
 * and the broker's context (`context.task.reason`); never used for a decision.
 */
export const COMMON_PAYLOAD_FIELDS: Readonly<Record<string, FieldSchema>> = {
  reason: {
    type: "string",
    maxLength: 1024,
    description: "free-text reason for the task (shown, never used for a decision)",
  },
};

/** The reason check: a string of 1 to 1024 characters without control characters (one log line). */
export function reasonErrors(payload: Record<string, unknown>): string[] {
  const r = payload.reason;
  if (r === undefined) return [];
  if (typeof r === "string" && r.length > 0 && r.length <= 1024 && !/[\u0000-\u001f\u007f]/.test(r)) return [];
  return ["spec.payload.reason: must be free text of 1 to 1024 characters without control characters (no newlines)"];
}

function validator<A extends string, P extends Planned>(
  def: ActionDefinition<A, P>,
  schema: PayloadSchema,
): ActionModule["validate"] {
  return (spec, config) => {
    const checked = checkPayload(def.action, schema, (spec as AgentTaskSpec | null | undefined)?.payload);
    if (!checked) return [];
    if (!("payload" in checked)) return checked.errors;
    const errors = checked.errors.concat(reasonErrors(checked.payload));
    return def.validate ? errors.concat(def.validate(checked.payload, spec, config)) : errors;
  };
}

export function defineAction<const A extends string, P extends Planned = Plan>(
  def: ActionDefinition<A, P>,
): ActionModule<A, P> {
  const payload: PayloadSchema = { ...def.payload, fields: { ...def.payload.fields, ...COMMON_PAYLOAD_FIELDS } };
  const validate = validator(def, payload);
  return {
    action: def.action,
    kinds: def.kinds,
    tier: def.tier,
    payload,
    docs: def.docs,
    grants: def.grants ?? [],
    capability: actionCapability(def.action, `Admission of ${def.action} AgentTasks: ${def.admission}`, validate),
    validate,
    async plan(ctx, target) {
      if (!target && def.planMissing) return def.planMissing(ctx);
      return def.plan(ctx, requireTarget(ctx, target));
    },
    async verify(ctx, observed) {
      const target = observed === undefined ? await getTarget(ctx) : observed;
      return target ? def.verify(ctx, target) : targetGone(ctx);
    },
  };
}

/** A registry whose every key is its module's action name: a mismatch is a compile error. */
export type Registry<R> = { readonly [K in keyof R]: ActionModule<K & string> };

/** The action registry from `{ name: module }` lines; also refuses a key that names another module. */
export function defineRegistry<const R extends Registry<R>>(modules: R): R {
  for (const [key, module] of Object.entries(modules as Record<string, ActionModule>)) {
    if (module.action !== key) throw new Error(`registry key ${key} holds the module of action ${module.action}`);
  }
  return Object.freeze(modules);
}
