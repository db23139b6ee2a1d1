// submitAgentTask: create an AgentTask with the Kubernetes API and resolve with its terminal status.
//
// The task is created with @kubernetes/client-node's CustomObjectsApi, then followed by a watch on
// that one task (restarted when the API server closes it or the resource version expires) and,
// as a safety net, a GET every pollMs. It resolves when the operator records Completed, Denied or
// Failed, or AwaitingApproval (the broker's only objection is missing approvals: the approvers'
// turn; follow it with awaitApproval() from ./plan), and rejects with an Error on admission rejection (the API server's message), when the
// task is deleted, or on timeout (naming the task and its last phase). The PoA token is never
// logged and never appears in an error message.
import { ApiException, CustomObjectsApi, KubeConfig, Watch } from "@kubernetes/client-node";
import type { AgentTaskStatus, TargetKind } from "../../crds/agenttask";
import type { Action } from "../../capabilities/registry";

const GROUP = "atb.siemens.com";
const VERSION = "v1alpha1";
const PLURAL = "agenttasks";
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

interface TaskObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  status?: AgentTaskStatus;
}

/** The API server's Status message from an ApiException body (text or object), else a summary. */
function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    let parsed: unknown = body;
    if (typeof body === "string") {
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
    }
    const message = (parsed as { message?: unknown } | undefined)?.message;
    if (typeof message === "string" && message) return message;
    return `HTTP ${err.code}`;
  }
  if (err instanceof Error) return err.message.split("\n")[0] ?? err.name;
  return String(err);
}

function loadConfig(kubeconfig: SubmitOptions["kubeconfig"]): KubeConfig {
  if (kubeconfig instanceof KubeConfig) return kubeconfig;
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  return kc;
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

  return new Promise<SubmitResult>((resolve, reject) => {
    let settled = false;
    let lastPhase = created.status?.phase ?? "(none yet)";
    let resourceVersion = created.metadata?.resourceVersion;
    let watchAbort: AbortController | undefined;
    let watchRestart: NodeJS.Timeout | undefined;
    let pollTimer: NodeJS.Timeout | undefined;
    let polling = false;

    const finish = (err: Error | undefined, result?: SubmitResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadlineTimer);
      clearTimeout(watchRestart);
      clearInterval(pollTimer);
      watchAbort?.abort();
      if (err) reject(new Error(clean(err.message)));
      else resolve(result!);
    };

    const observe = (obj: TaskObject) => {
      if (obj.metadata?.resourceVersion) resourceVersion = obj.metadata.resourceVersion;
      const phase = obj.status?.phase;
      if (phase) lastPhase = phase;
      if (isSettled(phase))
        finish(undefined, { phase, status: obj.status!, name: task.name, namespace: task.namespace });
    };

    const deadlineTimer = setTimeout(
      () =>
        finish(new Error(`timed out after ${timeoutMs}ms waiting for ${where} to finish (last phase: ${lastPhase})`)),
      Math.max(0, timeoutMs - (Date.now() - started)),
    );

    const poll = async () => {
      if (polling || settled) return;
      polling = true;
      try {
        observe(
          (await api.getNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace: task.namespace,
            plural: PLURAL,
            name: task.name,
          })) as TaskObject,
        );
      } catch (err) {
        if (err instanceof ApiException && err.code === 404)
          finish(new Error(`${where} was deleted before it finished`));
        // Other errors are transient here: the watch, the next poll or the deadline decide.
      } finally {
        polling = false;
      }
    };

    const startWatch = () => {
      if (settled) return;
      const path = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(task.namespace)}/${PLURAL}`;
      let expired = false;
      new Watch(kc)
        .watch(
          path,
          { fieldSelector: `metadata.name=${task.name}`, resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: TaskObject & { code?: number }) => {
            if (type === "ERROR") {
              if (obj.code === 410) expired = true;
              return;
            }
            if (type === "DELETED") return finish(new Error(`${where} was deleted before it finished`));
            if (type === "BOOKMARK") {
              if (obj.metadata?.resourceVersion) resourceVersion = obj.metadata.resourceVersion;
              return;
            }
            observe(obj);
          },
          () => {
            // The watch ended (server timeout, connection loss or an expired version): resume it.
            if (settled) return;
            if (expired) resourceVersion = undefined;
            void poll();
            watchRestart = setTimeout(startWatch, 1_000);
          },
        )
        .then(
          ctrl => {
            watchAbort = ctrl;
            if (settled) ctrl.abort();
          },
          () => {
            if (!settled) watchRestart = setTimeout(startWatch, 1_000);
          },
        );
    };

    pollTimer = setInterval(() => void poll(), pollMs);
    observe(created);
    startWatch();
  });
}
