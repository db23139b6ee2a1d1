// submitAgentTask: create an AgentTask with the Kubernetes API and resolve with its terminal status.
//
// The task is created with @kubernetes/client-node's CustomObjectsApi, then followed by a watch on
// that one task (restarted when the API server closes it or the resource version expires) and,
// as a safety net, a GET every pollMs. It resolves when the operator records Completed, Denied or
// Failed, or AwaitingApproval (the broker's only objection is missing approvals: the approvers'
// turn; follow it with awaitApproval() from ./plan), and rejects with an Error on admission rejection (the API server's message), when the
// task is deleted, or on timeout (naming the task and its last phase). The PoA token is never
// logged and never appears in an error message.
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import type { AgentTaskStatus, TargetKind } from "../../crds/agenttask";
import type { Action } from "../../capabilities/registry";
import { apiMessage, GROUP, loadConfig, PLURAL, VERSION, waitForTask, type TaskObject } from "./wait";

const TERMINAL = ["Completed", "Denied", "Failed"] as const;
/** The phases submitAgentTask resolves with: the terminal ones, and AwaitingApproval. */
const SETTLED = [...TERMINAL, "AwaitingApproval"] as const;

export type TerminalPhase = (typeof TERMINAL)[number];
export type SubmitPhase = (typeof SETTLED)[number];

export interface AgentTaskRequest {
  /** Name of the AgentTask; tasks are immutable, so use a fresh name for every request. */
  name: string;
  /** Namespace of the AgentTask: the target's namespace (the operator rejects cross-namespace targets). */
  namespace: string;
  /**
   * The agent's SPIFFE ID, the PoA token's subject. The identity the kubeconfig authenticates as
   * must be bound to it, or the broker denies the task requester_mismatch: e.g. run as the
   * ServiceAccount <sa> in <ns> with spiffe://<trust domain>/ns/<ns>/sa/<sa> (docs/agents.md).
   */
  agentId: string;
  /** The agent's PoA token (compact JWS). Never logged, never included in errors. */
  poaToken: string;
  action: Action;
  target: { kind: TargetKind; name: string; namespace: string };
  payload?: Record<string, unknown>;
}

export interface SubmitOptions {
  /** How long to wait for a terminal phase, from the call (default 300 000 ms). */
  timeoutMs?: number;
  /** A kubeconfig path or a loaded KubeConfig (default: KubeConfig.loadFromDefault(): $KUBECONFIG, ~/.kube/config or in-cluster). */
  kubeconfig?: string | KubeConfig;
  /** Interval of the safety-net GET while waiting (default 2 000 ms). */
  pollMs?: number;
}

export interface SubmitResult {
  phase: SubmitPhase;
  status: AgentTaskStatus;
  name: string;
  namespace: string;
}

const isSettled = (phase: string | undefined): phase is SubmitPhase =>
  (SETTLED as readonly string[]).includes(phase ?? "");

export async function submitAgentTask(task: AgentTaskRequest, opts: SubmitOptions = {}): Promise<SubmitResult> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const pollMs = opts.pollMs ?? 2_000;
  const token = task.poaToken;
  const clean = (text: string) => (token ? text.split(token).join("[REDACTED]") : text);
  const where = `AgentTask ${task.namespace}/${task.name}`;
  const started = Date.now();

  const kc = loadConfig(opts.kubeconfig);
  const api = kc.makeApiClient(CustomObjectsApi);
  const body = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "AgentTask",
    metadata: { name: task.name, namespace: task.namespace },
    spec: {
      agentId: task.agentId,
      poaToken: token,
      action: task.action,
      target: task.target,
      payload: task.payload ?? {},
    },
  };

  let created: TaskObject;
  try {
    created = (await api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: task.namespace,
      plural: PLURAL,
      body,
      fieldManager: "atb-submit-ts",
    })) as TaskObject;
  } catch (err) {
    throw new Error(clean(`the API server rejected ${where}: ${apiMessage(err)}`));
  }

  // Followed by the clients' one wait loop (wait.ts): a watch on this task, resumed when it ends,
  // and a GET every pollMs as a safety net.
  let waited;
  try {
    waited = await waitForTask(
      kc,
      { name: task.name, namespace: task.namespace },
      {
        until: o => isSettled(o.status?.phase),
        timeoutMs: Math.max(0, timeoutMs - (Date.now() - started)),
        pollMs,
        initial: created,
      },
    );
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(clean(/was deleted$/.test(message) ? `${message} before it finished` : message));
  }
  const phase = waited.task.status?.phase;
  if (waited.timedOut || !isSettled(phase))
    throw new Error(
      clean(`timed out after ${timeoutMs}ms waiting for ${where} to finish (last phase: ${phase ?? "(none yet)"})`),
    );
  return { phase, status: waited.task.status as AgentTaskStatus, name: task.name, namespace: task.namespace };
}
