// The Pepr capability every action module owns: one admission binding that runs the action's
// payload validation on new tasks of that action (the core capability's Mutate stamps the action
// label from spec.action, so the label filter routes the request to the right module).
import { Capability } from "pepr";
import { AgentTask, LABEL_ACTION } from "../../../crds/agenttask";
import type { ActionModule } from ".";
import { loadConfig } from "../config";

export function actionCapability(action: string, description: string, validate: ActionModule["validate"]): Capability {
  const capability = new Capability({ name: `agenttask-${action}`, description });
  capability
    .When(AgentTask)
    .IsCreated()
    .WithLabel(LABEL_ACTION, action)
    .Validate(function validatePayload(req) {
      const errors = validate(req.Raw.spec!, loadConfig());
      return errors.length ? req.Deny(errors.join("; "), 422) : req.Approve();
    });
  return capability;
}
