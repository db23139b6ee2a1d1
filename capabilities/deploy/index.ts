// The deploy action: roll a Deployment, StatefulSet or DaemonSet to a new image or a new manifest
// and count the task Completed when the rollout finishes (Failed on ProgressDeadlineExceeded).
import { Capability } from "pepr";
import { AgentTask, LABEL_ACTION } from "../../crds/agenttask";
import type { ActionModule, KubeObject, Plan, TaskContext } from "../lib/action";
import { loadConfig } from "../lib/config";
import { verifyRollout } from "../lib/rollout";
import { planImage, planManifest } from "./plan";
import { validateDeploy } from "./validate";

export { validateDeploy } from "./validate";

async function plan(ctx: TaskContext, target: KubeObject | undefined): Promise<Plan> {
  return ctx.spec.payload?.manifest !== undefined ? planManifest(ctx, target) : planImage(ctx, target);
}

const capability = new Capability({
  name: "agenttask-deploy",
  description: "Admission of deploy AgentTasks: an image or a manifest that names exactly the target",
});

capability
  .When(AgentTask)
  .IsCreated()
  .WithLabel(LABEL_ACTION, "deploy")
  .Validate(function validateDeployTask(req) {
    const errors = validateDeploy(req.Raw.spec, loadConfig());
    return errors.length ? req.Deny(errors.join("; "), 422) : req.Approve();
  });

export const DeployAction: ActionModule = {
  action: "deploy",
  kinds: ["Deployment", "StatefulSet", "DaemonSet"],
  capability,
  validate: validateDeploy,
  plan,
  verify: verifyRollout,
};
