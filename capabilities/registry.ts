// The action registry: every action the operator supports, one line each. Everything else about
// an action lives in its folder (capabilities/<action>/, built with defineAction): its kinds,
// payload schema, default risk tier and README line. The CRD's action parts, the RBAC rules for
// target kinds, the policy's default tiers and the README's table are generated from this list
// by `npm run generate` (tools/generate.ts), and tests/unit/registry.test.ts fails when one of
// them is out of date. The `Action` type is derived from here, so there is no second list to keep
// in step; a key that is not its module's action name is a compile error.
import type { TargetKind } from "../crds/agenttask";
import type { ActionModule, ActionRegistry } from "./lib/action";
import { defineRegistry } from "./lib/action/define";
import { ScaleAction } from "./scale";
import { RestartAction } from "./restart";
import { UpdateConfigAction } from "./update-config";
import { DeployAction } from "./deploy";
import { RollbackAction } from "./rollback";
import { PatchAction } from "./patch";

/** In this order the CRD, the README and the policy list the actions. */
export const ACTION_REGISTRY = defineRegistry({
  scale: ScaleAction,
  restart: RestartAction,
  "update-config": UpdateConfigAction,
  deploy: DeployAction,
  rollback: RollbackAction,
  patch: PatchAction,
});

/** An action the operator supports (the CRD's spec.action enum). */
export type Action = keyof typeof ACTION_REGISTRY;

/** The registry as the pipeline and the admission webhook look actions up. */
export const actions: ActionRegistry = ACTION_REGISTRY;

export const ACTION_MODULES: readonly ActionModule[] = Object.values(ACTION_REGISTRY);

export const ACTIONS = Object.keys(ACTION_REGISTRY) as readonly Action[];

/** Which kinds each action may target. */
export const ACTION_KINDS = Object.fromEntries(ACTION_MODULES.map(m => [m.action, m.kinds])) as Readonly<
  Record<Action, readonly TargetKind[]>
>;
