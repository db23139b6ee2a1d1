// Following one AgentTask until its status says what the caller waits for: a watch on that one
// task (resumed when the API server closes it or the resource version expires) and, as a safety
// net, a GET every pollMs. Shared by plan(), awaitApproval() and the MCP server (clients/mcp/);
// submitAgentTask (./submit.ts) keeps its own copy of this loop.
import { ApiException, CustomObjectsApi, KubeConfig, Watch } from "@kubernetes/client-node";
import type { AgentTaskSpec, AgentTaskStatus } from "../../crds/agenttask";

export const GROUP = "atb.siemens.com";
export const VERSION = "v1alpha1";
export const PLURAL = "agenttasks";

/**
 * status.plan of a Plan task (issue 15's contract), written out here so that the clients compile
 * and read it whether or not crds/agenttask.ts has it yet.
 */
export interface PlanView {
  /** `sha256:<hex>`: what a PoA for exactly this change must carry as con.change_sha256. */
  changeSha256: string;
  riskTier: string;
  approvalsRequired: { count: number; roles?: string[]; sentence: string };
  /** Unified diff of the target before/after as YAML; Secret data redacted; at most 16 KiB. */
  diff: string;
  diffTruncated: boolean;
}

/** A task's status as the clients read it: the operator's, plus the plan and approvals of issue 15. */
export type TaskStatusView = Omit<AgentTaskStatus, "phase"> & {
  /** One of crds/agenttask.ts PHASES; with issue 15 also AwaitingApproval and Planned. */
  phase?: string;
  plan?: PlanView;
  approvals?: Record<string, unknown>;
};

export interface TaskObject {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    annotations?: Record<string, string>;
  };
  spec?: AgentTaskSpec & { mode?: string };
  status?: TaskStatusView;
}

export interface TaskRef {
  name: string;
  namespace: string;
}

/** A kubeconfig path or a loaded KubeConfig; default KubeConfig.loadFromDefault(). */
export function loadConfig(kubeconfig: string | KubeConfig | undefined): KubeConfig {
  if (kubeconfig instanceof KubeConfig) return kubeconfig;
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

/** The API server's Status message from an ApiException body (text or object), else a summary. */
export function apiMessage(err: unknown): string {
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

export interface WaitOptions {
  /** True when the wait is over for this object. */
  until: (obj: TaskObject) => boolean;
  /** How long to wait from the call; on expiry the promise resolves with timedOut true. */
  timeoutMs: number;
  /** Interval of the safety-net GET (default 2 000 ms). */
  pollMs?: number;
  /** The task as the caller last saw it (its resourceVersion starts the watch). */
  initial?: TaskObject;
}

export interface WaitResult {
  /** The task as last seen (the one that satisfied `until`, or the last one before the timeout). */
  task: TaskObject;
  timedOut: boolean;
}

/**
 * Follows the task until `until` holds (resolves with it) or the time is up (resolves with the
 * last version seen and timedOut). Rejects when the task is deleted or cannot be read at all.
 */
export function waitForTask(kc: KubeConfig, ref: TaskRef, o: WaitOptions): Promise<WaitResult> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const where = `AgentTask ${ref.namespace}/${ref.name}`;
  const pollMs = o.pollMs ?? 2_000;
  return new Promise<WaitResult>((resolve, reject) => {
    let settled = false;
    let last: TaskObject | undefined = o.initial;
    let resourceVersion = o.initial?.metadata?.resourceVersion;
    let watchAbort: AbortController | undefined;
    let watchRestart: NodeJS.Timeout | undefined;
    let polling = false;

    const finish = (err: Error | undefined, result?: WaitResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(watchRestart);
      clearInterval(pollTimer);
      watchAbort?.abort();
      if (err) reject(err);
      else resolve(result!);
    };
    const observe = (obj: TaskObject) => {
      if (obj.metadata?.resourceVersion) resourceVersion = obj.metadata.resourceVersion;
      last = obj;
      if (o.until(obj)) finish(undefined, { task: obj, timedOut: false });
    };
    const poll = async () => {
      if (polling || settled) return;
      polling = true;
      try {
        observe(
          (await api.getNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace: ref.namespace,
            plural: PLURAL,
            name: ref.name,
          })) as TaskObject,
        );
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) finish(new Error(`${where} was deleted`));
        else if (err instanceof ApiException && (err.code === 401 || err.code === 403))
          finish(new Error(`reading ${where}: ${apiMessage(err)}`));
        // Other errors are transient here: the watch, the next poll or the deadline decide.
      } finally {
        polling = false;
      }
    };
    const startWatch = () => {
      if (settled) return;
      const path = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(ref.namespace)}/${PLURAL}`;
      let expired = false;
      new Watch(kc)
        .watch(
          path,
          { fieldSelector: `metadata.name=${ref.name}`, resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: TaskObject & { code?: number }) => {
            if (type === "ERROR") {
              if (obj.code === 410) expired = true;
              return;
            }
            if (type === "DELETED") return finish(new Error(`${where} was deleted`));
            if (type === "BOOKMARK") {
              if (obj.metadata?.resourceVersion) resourceVersion = obj.metadata.resourceVersion;
              return;
            }
            observe(obj);
          },
          () => {
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

    const deadline = setTimeout(
      () => {
        if (last) finish(undefined, { task: last, timedOut: true });
        else finish(new Error(`timed out after ${o.timeoutMs}ms without reading ${where}`));
      },
      Math.max(0, o.timeoutMs),
    );
    const pollTimer = setInterval(() => void poll(), pollMs);
    if (o.initial) observe(o.initial);
    if (settled) return;
    if (!o.initial) void poll();
    startWatch();
  });
}
