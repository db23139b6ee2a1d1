// The status writer: the only code that patches AgentTask status (the "one status writer"
// invariant, docs/invariants.md). One merge patch on the status subresource per transition,
// conditioned on the resourceVersion the pipeline decided from (a stale view gets 409 and the
// pipeline re-reads), then one Kubernetes Event on the task. Events are best-effort, as with
// client-go's recorder: a failed Event is logged and counted, never allowed to fail or repeat the
// transition it reports.
import { randomBytes } from "node:crypto";
import { AgentTask, GROUP, KIND, VERSION } from "../../../crds/agenttask";
import type { KubeApi } from "../kube";
import { resourcePath } from "../kube";
import type { Logger } from "../logger";
import { messageOf } from "../errors";
import { nextStatus, statusPatch, warning, type Transition } from "./conditions";

export interface StatusWriter {
  /** Writes the transition and returns the task as stored afterwards. */
  transition(task: AgentTask, t: Transition): Promise<AgentTask>;
  /** Records an Event on the task that is no transition (a Normal one: the TTL's deletion). Best-effort. */
  event(task: AgentTask, e: TaskEvent): Promise<void>;
}

/** An Event on a task besides its transitions. */
export interface TaskEvent {
  reason: string;
  message: string;
  /** What was done about the task (events.k8s.io `action`), e.g. Delete. */
  action: string;
}

export interface StatusWriterDeps {
  kube: KubeApi;
  log: Logger;
  now?: () => Date;
  onEventError?: () => void;
}

export function createStatusWriter(deps: StatusWriterDeps): StatusWriter {
  const now = deps.now ?? (() => new Date());
  return {
    async transition(task, t) {
      const name = task.metadata!.name!;
      const namespace = task.metadata!.namespace!;
      const at = now();
      const status = nextStatus(task, t, at);
      const updated = await deps.kube.request<AgentTask>({
        method: "PATCH",
        path: resourcePath("AgentTask", namespace, name, "status"),
        patchType: "merge",
        body: {
          metadata: { resourceVersion: task.metadata!.resourceVersion },
          status: statusPatch(task.status, status),
        },
      });
      const message = `${t.phase}: ${t.message}`;
      await recordEvent(deps, updated, { reason: t.reason, message, action: t.phase, phase: t.phase }, at);
      return updated;
    },
    async event(task, e) {
      await recordEvent(deps, task, e, now());
    },
  };
}

async function recordEvent(
  deps: StatusWriterDeps,
  task: AgentTask,
  t: TaskEvent & { phase?: Transition["phase"] },
  at: Date,
): Promise<void> {
  const name = task.metadata!.name!;
  const namespace = task.metadata!.namespace!;
  const event = {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: `${name}.${randomBytes(8).toString("hex")}`, namespace },
    involvedObject: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: KIND,
      name,
      namespace,
      uid: task.metadata!.uid,
      resourceVersion: task.metadata!.resourceVersion,
    },
    reason: t.reason,
    message: t.message.slice(0, 1024),
    type: t.phase && warning(t.phase) ? "Warning" : "Normal",
    source: { component: "atb-operator" },
    reportingComponent: "atb.siemens.com/operator",
    reportingInstance: "atb-operator",
    action: t.action,
    firstTimestamp: at.toISOString(),
    lastTimestamp: at.toISOString(),
    count: 1,
  };
  try {
    await deps.kube.request({ method: "POST", path: resourcePath("Event", namespace), body: event });
  } catch (err) {
    deps.onEventError?.();
    deps.log.warn("could not record event", { task: `${namespace}/${name}`, reason: t.reason, error: messageOf(err) });
  }
}
