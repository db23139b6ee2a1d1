// The core AgentTask capability: admission for every task (routing labels; the rules common to
// all actions; spec immutability) and the one watch that feeds the operator runtime. Each action
// capability adds its own payload validation; the pipeline in capabilities/lib does the work.
import { Capability, type PeprMutateRequest, type PeprValidateRequest } from "pepr";
import { AgentTask, ANNOTATION_REQUESTER, LABEL_ACTION, LABEL_AGENT } from "../../crds/agenttask";
import { AgentTaskApproval } from "../../crds/agenttaskapproval";
import type { ActionRegistry } from "../lib/action";
import type { OperatorConfig } from "../lib/config";
import type { OperatorRuntime } from "../lib/runtime";
import { depthErrors } from "../lib/admission-depth";
import { requesterAnnotation } from "../lib/requester";
import { selectOpenTasks } from "../lib/open-watch";
import { watchLabels } from "../lib/shard";
import { commonErrors, immutableErrors, agentLabel, labelErrors, requesterErrors, stampedLabels } from "./admission";

export interface AgentTaskCapabilityOptions {
  actions: ActionRegistry;
  config: Readonly<OperatorConfig>;
  /** Present in the watcher (watch or dev mode); absent in admission pods and at build time. */
  runtime?: OperatorRuntime;
}

export function agentTaskCapability(o: AgentTaskCapabilityOptions): Capability {
  const cap = new Capability({ name: "agenttask", description: "Admission and lifecycle of AgentTask resources" });
  const { When } = cap;

  When(AgentTask)
    .IsCreatedOrUpdated()
    .Mutate(function stampLabels(req: PeprMutateRequest<AgentTask>) {
      const spec = req.Raw.spec;
      if (typeof spec?.action === "string") req.SetLabel(LABEL_ACTION, spec.action.slice(0, 63));
      const agent = agentLabel(spec?.agentId);
      if (agent) req.SetLabel(LABEL_AGENT, agent);
      // Who creates the task, recorded once; a value already there is the user's, and refused below.
      const requester = requesterAnnotation(req.Request.userInfo);
      if (req.Request.operation === "CREATE" && requester && !req.HasAnnotation(ANNOTATION_REQUESTER))
        req.SetAnnotation(ANNOTATION_REQUESTER, requester);
      // An update that drops the record puts it back as stored: a second `kubectl apply
      // --server-side` of the same task does not own the annotation (the webhook added it), so it
      // would remove it. A changed value is not repaired: validation refuses it.
      const stored = req.OldResource?.metadata?.annotations?.[ANNOTATION_REQUESTER];
      if (req.Request.operation === "UPDATE" && stored !== undefined && !req.HasAnnotation(ANNOTATION_REQUESTER))
        req.SetAnnotation(ANNOTATION_REQUESTER, stored);
      // The routing labels: shard and open at creation (over what the user sent), and put back
      // when an update drops them; a changed value is refused below.
      for (const [key, value] of Object.entries(
        stampedLabels(req.Request.operation, req.OldResource, req.Raw, o.config),
      ))
        req.SetLabel(key, value);
    })
    .Validate(function validateTask(req: PeprValidateRequest<AgentTask>) {
      const { operation, userInfo } = req.Request;
      const errors = [
        ...depthErrors(req.Raw),
        ...(operation === "UPDATE"
          ? immutableErrors(req.OldResource, req.Raw)
          : commonErrors(req.Raw, o.actions, o.config)),
        ...requesterErrors(operation, userInfo, req.OldResource, req.Raw),
        ...labelErrors(operation, req.OldResource, req.Raw, o.config),
      ];
      return errors.length ? req.Deny(errors.join("; "), 422) : req.Approve();
    });

  // Open tasks only (and, on a shard, only its own), selected by the API server: a finished
  // task (its terminal status write sets status.finishedAt) leaves the watch and kfc's cache, so
  // the watcher's memory follows the open work, not the history, and a restart does not list
  // finished tasks again (lib/open-watch.ts).
  selectOpenTasks(cap, () => {
    const all = When(AgentTask).IsCreatedOrUpdated();
    let openTasks: Pick<ReturnType<typeof all.WithLabel>, "WithLabel" | "Reconcile"> = all;
    for (const [key, value] of watchLabels(o.config)) openTasks = openTasks.WithLabel(key, value);
    openTasks.Reconcile(async function feedRuntime(task: AgentTask) {
      o.runtime?.onEvent(task);
    });
  });

  // An approval for a task waiting in AwaitingApproval: the task is looked at again (it is
  // decided again only for an approval object its last decision did not include).
  When(AgentTaskApproval)
    .IsCreatedOrUpdated()
    .Reconcile(async function wakeApprovedTask(approval: AgentTaskApproval) {
      o.runtime?.onApproval(approval);
    });

  return cap;
}
