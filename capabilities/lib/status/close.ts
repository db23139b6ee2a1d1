// Closing a finished task: right after the terminal status write, one metadata merge patch removes
// the label atb.siemens.com/open, which the mutating webhook stamped at creation and the watch
// selects on. The API server then sends the watch a DELETED event for the selector, kfc drops the
// task from its cache, and a restarted watcher never lists it again: the watcher's memory follows
// the open tasks, not the history (docs/deployment.md, "Shards"). It is metadata, not status, so
// it goes to the object, not the status subresource (the status writer is still the only writer
// of status). A failed removal is logged and counted and never fails the task: the task is
// finished either way, and the periodic sweep, which lists the labelled tasks of its shard,
// removes the label of a finished task it still finds (lib/runtime/index.ts, closeLeftovers).
import { LABEL_OPEN, type AgentTask } from "../../../crds/agenttask";
import { messageOf } from "../errors";
import { errorClass, isNotFound, resourcePath, type KubeApi } from "../kube";
import type { Logger } from "../logger";
import type { OperatorMetrics } from "../metrics";
import { isOpenLabelled } from "../shard";
import { isTerminal } from "./conditions";

export interface CloseDeps {
  kube: KubeApi;
  log: Logger;
  metrics: Pick<OperatorMetrics, "taskCloseErrors">;
}

/** The merge patch that removes the open label (null deletes a key in a JSON merge patch). */
export const CLOSE_PATCH = { metadata: { labels: { [LABEL_OPEN]: null } } } as const;

/**
 * Removes the open label of a finished task. True when the label is gone (removed now, already
 * absent, or the task itself is gone); false when the removal failed (logged and counted). A task
 * that is not terminal is left alone; one without the label (older than it) costs no request.
 * Never throws.
 */
export async function closeTask(deps: CloseDeps, task: AgentTask): Promise<boolean> {
  if (!isTerminal(task.status?.phase) || !isOpenLabelled(task)) return true;
  const namespace = task.metadata?.namespace ?? "";
  const name = task.metadata?.name ?? "";
  try {
    await deps.kube.request({
      method: "PATCH",
      path: resourcePath("AgentTask", namespace, name),
      patchType: "merge",
      body: CLOSE_PATCH,
    });
    return true;
  } catch (err) {
    if (isNotFound(err)) return true;
    const code = errorClass(err);
    deps.metrics.taskCloseErrors.inc({ code });
    deps.log.warn("could not remove the open label of a finished task; the sweep tries again", {
      task: `${namespace}/${name}`,
      phase: task.status?.phase,
      code,
      error: messageOf(err),
    });
    return false;
  }
}
