// The core AgentTask capability. At this stage it acknowledges each new task by recording the
// Pending phase and the generation it observed; the authorization pipeline (broker decision,
// execution, retries) is not wired yet, so no task goes past Pending.
import { Capability } from "pepr";
import { AgentTask } from "../../crds/agenttask";
import { writeStatus } from "../lib/status-writer";

export const AgentTaskCapability = new Capability({
  name: "agenttask",
  description: "Admission and lifecycle of AgentTask resources",
});

const { When } = AgentTaskCapability;

/** Records Pending once per task; a task that already has a phase is left alone. */
export async function acknowledge(task: AgentTask): Promise<void> {
  if (task.status?.phase || !task.metadata?.name || !task.metadata.namespace) return;
  await writeStatus(
    { name: task.metadata.name, namespace: task.metadata.namespace },
    {
      phase: "Pending",
      message: "Task received by the operator",
      observedGeneration: task.metadata.generation,
    },
  );
}

When(AgentTask)
  .IsCreated()
  .Reconcile(async task => acknowledge(task));
