// The status writer: the only code that patches AgentTask status (the "one status writer"
// invariant, docs/invariants.md). One merge patch on the status subresource per transition,
// conditioned on the resourceVersion the pipeline decided from (a stale view gets 409 and the
// pipeline re-reads), then a Kubernetes Event on the task when the transition ends it or waits
// for a person (eventful()), recorded after the write (beside the workers where the runtime
// passes `defer`). Events are best-effort, as with
// client-go's recorder: a failed Event is logged and counted, never allowed to fail or repeat the
// transition it reports.
import { randomBytes } from "node:crypto";
import { AgentTask, GROUP, KIND, VERSION } from "../../../crds/agenttask";
import type { KubeApi } from "../kube";
import { resourcePath } from "../kube";
import type { Logger } from "../logger";
import { messageOf } from "../errors";
import { isTerminal, nextStatus, statusPatch, warning, type Transition } from "./conditions";

export interface StatusWriter {
  /**
   * Writes the transition and returns the task as stored afterwards. `task` is the task as the
   * pipeline sees it; `stored` (default: `task`) the task as last stored, when the pipeline has
   * carried transitions of the same pass in memory: the one patch turns the stored status into
   * the new one, conditioned on the stored resourceVersion.
   */
  transition(task: AgentTask, t: Transition, opts?: { stored?: AgentTask; at?: Date }): Promise<AgentTask>;
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
  /**
   * Where a transition's Event is recorded: by default the transition waits for it; the runtime
   * passes its follow-up lane (lib/runtime/follow-ups.ts), so the worker goes on meanwhile.
   */
  defer?: (job: () => Promise<void>) => Promise<void>;
}

export function createStatusWriter(deps: StatusWriterDeps): StatusWriter {
  const now = deps.now ?? (() => new Date());
  return {
    async transition(task, t, opts) {
      const stored = opts?.stored ?? task;
      const name = task.metadata!.name!;
      const namespace = task.metadata!.namespace!;
      // A transition carried in memory is stored with the time it was made (`at`).
      const at = opts?.at ?? now();
      const status = nextStatus(task, t, at);
      const updated = await deps.kube.request<AgentTask>({
        method: "PATCH",
        path: resourcePath("AgentTask", namespace, name, "status"),
        patchType: "merge",
        body: {
          metadata: { resourceVersion: stored.metadata!.resourceVersion },
          status: statusPatch(stored.status, status),
        },
      });
      if (eventful(t)) {
        const message = `${t.phase}: ${t.message}`;
        const record = () =>
          recordEvent(deps, updated, { reason: t.reason, message, action: t.phase, phase: t.phase }, at);
        await (deps.defer ? deps.defer(record) : record());
      }
      return updated;
    },
    async event(task, e) {
      await recordEvent(deps, task, e, now());
    },
  };
}

/**
 * The transitions that get an Event: the end of a task (Completed, Denied, Failed, Planned: the
 * reason says why) and a wait only a person can end (AwaitingApproval). Every other step is in
 * status, the conditions, the logs and the metrics; an Event per step doubled the API writes.
 */
export function eventful(t: Pick<Transition, "phase">): boolean {
  return isTerminal(t.phase) || t.phase === "AwaitingApproval";
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
