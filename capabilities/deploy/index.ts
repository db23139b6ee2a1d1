// The deploy action: roll a Deployment, StatefulSet or DaemonSet to a new image or a new manifest
// and count the task Completed when the rollout finishes (Failed on ProgressDeadlineExceeded).
import type { ActionModule, KubeObject, Plan, TaskContext } from "../lib/action";
import { verifyRollout } from "../lib/action/target";
import { planImage, planManifest } from "./plan";
import { validateDeploy } from "./validate";
import { actionCapability } from "../lib/action/capability";

export { validateDeploy } from "./validate";

async function plan(ctx: TaskContext, target: KubeObject | undefined): Promise<Plan> {
  return ctx.spec.payload?.manifest !== undefined ? planManifest(ctx, target) : planImage(ctx, target);
}

const capability = actionCapability(
  "deploy",
  "Admission of deploy AgentTasks: an image or a manifest that names exactly the target",
  validateDeploy,
);

export const DeployAction: ActionModule = {
  action: "deploy",
  kinds: ["Deployment", "StatefulSet", "DaemonSet"],
  capability,
  validate: validateDeploy,
  plan,
  verify: verifyRollout,
};
