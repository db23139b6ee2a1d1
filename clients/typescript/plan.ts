// plan(): ask the operator what a change would do before asking for a token, and awaitApproval():
// wait while a task waits for its approvers.
//
// plan() creates an AgentTask with spec.mode Plan (no PoA token: a Plan task needs none and writes
// nothing) and resolves with status.plan once the operator records Planned: the change digest a
// token for exactly this change must carry (con.change_sha256), the risk tier, the approvals the
// policy would need and a diff of the target. A Plan task that ends otherwise (Failed
// PlanNotAllowed when the creator may not read the target, InvalidTask, ...) rejects with the
// reason and the operator's message.
//
// awaitApproval() follows an Apply task while it is AwaitingApproval (the broker's policy needs
// approvals the task does not carry yet; AgentTaskApproval objects in its namespace add them) and
// resolves once it has moved on (to Executing or a terminal phase) or when the time is up.
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { AgentTaskRequest } from "./submit";
import {
  apiMessage,
  GROUP,
  loadConfig,
  PLURAL,
  VERSION,
  waitForTask,
  type PlanView,
  type TaskObject,
  type TaskRef,
  type TaskStatusView,
} from "./wait";

/** A planned change: the task's request without a token. */
export type PlanRequest = Omit<AgentTaskRequest, "poaToken">;

export interface PlanOptions {
  /** How long to wait for the plan (default 120 000 ms). */
  timeoutMs?: number;
  /** A kubeconfig path or a loaded KubeConfig (default: $KUBECONFIG, ~/.kube/config or in-cluster). */
  kubeconfig?: string | KubeConfig;
  /** Interval of the safety-net GET while waiting (default 2 000 ms). */
  pollMs?: number;
}

export interface PlanResult {
  name: string;
  namespace: string;
  phase: "Planned";
  plan: PlanView;
  status: TaskStatusView;
}

const PLAN_DONE = ["Planned", "Completed", "Denied", "Failed"];

/** The AgentTask a plan() creates (exported for callers that create it themselves). */
export function planTaskBody(task: PlanRequest): Record<string, unknown> {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "AgentTask",
    metadata: { name: task.name, namespace: task.namespace },
    spec: {
      agentId: task.agentId,
      mode: "Plan",
      action: task.action,
      target: task.target,
      payload: task.payload ?? {},
    },
  };
}

export async function plan(task: PlanRequest, opts: PlanOptions = {}): Promise<PlanResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const where = `AgentTask ${task.namespace}/${task.name}`;
  const kc = loadConfig(opts.kubeconfig);
  const api = kc.makeApiClient(CustomObjectsApi);
  let created: TaskObject;
  try {
    created = (await api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: task.namespace,
      plural: PLURAL,
      body: planTaskBody(task),
      fieldManager: "atb-plan-ts",
    })) as TaskObject;
  } catch (err) {
    throw new Error(`the API server rejected ${where}: ${apiMessage(err)}`);
  }
  const { task: seen, timedOut } = await waitForTask(kc, task, {
    until: t => PLAN_DONE.includes(t.status?.phase ?? ""),
    timeoutMs,
    pollMs: opts.pollMs,
    initial: created,
  });
  const status = seen.status ?? {};
  if (timedOut)
    throw new Error(
      `timed out after ${timeoutMs}ms waiting for the plan of ${where} (last phase: ${status.phase ?? "(none yet)"})`,
    );
  if (status.phase !== "Planned" || !status.plan) {
    const reason = status.conditions?.find(c => c.status === "False")?.reason ?? status.atbResult?.reason ?? "-";
    throw new Error(`${where} ended ${status.phase} without a plan (${reason}): ${status.message ?? "-"}`);
  }
  return { name: task.name, namespace: task.namespace, phase: "Planned", plan: status.plan, status };
}

export interface AwaitApprovalOptions {
  /** How long to wait (default 300 000 ms); on expiry the result has timedOut true. */
  timeoutMs?: number;
  kubeconfig?: string | KubeConfig;
  pollMs?: number;
}

export interface AwaitApprovalResult {
  name: string;
  namespace: string;
  /** The phase it moved on to, or the one it still had when the time was up. */
  phase: string;
  status: TaskStatusView;
  timedOut: boolean;
}

/** The phases a task still waits in: before the decision and while it waits for approvals. */
const UNDECIDED = ["", "Pending", "Processing", "AwaitingApproval"];

/**
 * Waits while the task is AwaitingApproval (or not yet decided: no phase, Pending, Processing) and
 * resolves with the phase it moves on to (Executing or a terminal one), or with timedOut on
 * expiry. Rejects when the task is deleted or cannot be read.
 */
export async function awaitApproval(ref: TaskRef, opts: AwaitApprovalOptions = {}): Promise<AwaitApprovalResult> {
  const kc = loadConfig(opts.kubeconfig);
  const { task, timedOut } = await waitForTask(kc, ref, {
    until: t => !UNDECIDED.includes(t.status?.phase ?? ""),
    timeoutMs: opts.timeoutMs ?? 300_000,
    pollMs: opts.pollMs,
  });
  const status = task.status ?? {};
  return { name: ref.name, namespace: ref.namespace, phase: status.phase ?? "", status, timedOut };
}
