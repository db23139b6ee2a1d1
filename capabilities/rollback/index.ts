// The rollback action: restore an earlier pod template from the history the controllers keep
// (ReplicaSets for Deployments, ControllerRevisions for StatefulSets and DaemonSets), as
// `kubectl rollout undo [--to-revision=N]`, and count the task Completed when it runs again.
import type { AgentTaskSpec } from "../../crds/agenttask";
import type { ActionModule, KubeObject, Plan, TaskContext, VerifyResult } from "../lib/action";
import type { OperatorConfig } from "../lib/config";
import { AtbError } from "../lib/errors";
import { planDeploymentRollback, verifyDeploymentRollback } from "./deployment";
import { planRevisionRollback, verifyRevisionRollback } from "./revisions";
import { actionCapability } from "../lib/action/capability";

const ALLOWED = ["revision"];

export function validateRollback(spec: AgentTaskSpec | undefined, _config?: Readonly<OperatorConfig>): string[] {
  const payload: unknown = spec?.payload;
  if (payload === undefined) return [];
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    return ["spec.payload: must be an object (optional field revision)"];
  }
  const errors = Object.keys(payload)
    .filter(k => !ALLOWED.includes(k))
    .map(k => `spec.payload.${k.slice(0, 64)}: not a field of action rollback (allowed: ${ALLOWED.join(", ")})`);
  const r = (payload as Record<string, unknown>).revision;
  if (r !== undefined && (!Number.isSafeInteger(r) || (r as number) < 1)) {
    errors.push("spec.payload.revision: must be a whole number >= 1 (omit it for the previous revision)");
  }
  return errors;
}

async function plan(ctx: TaskContext, target: KubeObject | undefined): Promise<Plan> {
  const { kind, name, namespace } = ctx.spec.target;
  if (!target) throw new AtbError("TARGET_NOT_FOUND", `${kind} ${namespace}/${name} does not exist`);
  if (kind === "Deployment") return planDeploymentRollback(ctx, target);
  if (kind === "StatefulSet" || kind === "DaemonSet") return planRevisionRollback(ctx, target, kind);
  throw new AtbError("TASK_INVALID", `kind ${kind} is not supported by action rollback`);
}

async function verify(ctx: TaskContext): Promise<VerifyResult> {
  const kind = ctx.spec.target.kind;
  if (kind === "Deployment") return verifyDeploymentRollback(ctx);
  if (kind === "StatefulSet" || kind === "DaemonSet") return verifyRevisionRollback(ctx, kind);
  return { state: "failed", reason: "InvalidTask", message: `kind ${kind} is not supported by action rollback` };
}

const capability = actionCapability(
  "rollback",
  "Admission of rollback AgentTasks (kubectl rollout undo semantics)",
  validateRollback,
);

export const RollbackAction: ActionModule = {
  action: "rollback",
  kinds: ["Deployment", "StatefulSet", "DaemonSet"],
  capability,
  validate: validateRollback,
  plan,
  verify,
};
