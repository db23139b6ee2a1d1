// What the CLI reads of an AgentTask, as the API server returns it. Written out here rather than
// taken from crds/agenttask.ts so that the CLI reads exactly the contract's fields (issue 15:
// spec.mode, status.plan, status.approvals) and tolerates an operator that does not write them yet.
export const GROUP = "atb.siemens.com";
export const VERSION = "v1alpha1";
export const TASKS = "agenttasks";
export const APPROVALS = "agenttaskapprovals";
/** Phases after which a task never changes again (crds/agenttask.ts TERMINAL_PHASES, with Planned). */
/** The record of who created a task, written by the operator's mutating webhook only. */
export const REQUESTER_ANNOTATION = "atb.siemens.com/requester";
export const FINISHED = ["Completed", "Denied", "Failed", "Planned"];

export interface TaskPlanView {
  changeSha256?: string;
  riskTier?: string;
  approvalsRequired?: { count?: number; roles?: string[]; sentence?: string };
  diff?: string;
  diffTruncated?: boolean;
}

export interface TaskApprovalsView {
  required?: { count?: number; roles?: string[] };
  counted?: string[];
  ignored?: { id?: string; why: string }[];
  seen?: string[];
  sentence?: string;
}

export interface ConditionView {
  type: string;
  status: string;
  reason: string;
  message?: string;
}

export interface TaskView {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: {
    agentId?: string;
    mode?: string;
    poaToken?: string;
    attestations?: string[];
    action?: string;
    target?: { kind: string; name: string; namespace: string };
    payload?: Record<string, unknown>;
  };
  status?: {
    phase?: string;
    message?: string;
    lastError?: string;
    atbResult?: { allowed?: boolean; riskTier?: string; reason?: string; requestId?: string };
    plan?: TaskPlanView;
    approvals?: TaskApprovalsView;
    conditions?: ConditionView[];
  };
}

export function taskPath(namespace: string, name?: string): string {
  const base = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${TASKS}`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

export function approvalsPath(namespace: string): string {
  return `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${APPROVALS}`;
}

/** "<ns>/<name>" (or a bare name with a default namespace) -> both. */
export function parseTaskRef(ref: string | undefined, defaultNamespace?: string): { namespace: string; name: string } {
  if (!ref) throw new Error("missing the task: give it as <namespace>/<name>");
  const parts = ref.split("/");
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  if (parts.length === 1 && parts[0] && defaultNamespace) return { namespace: defaultNamespace, name: parts[0] };
  throw new Error(`the task must be <namespace>/<name> (or a name with -n <namespace>), got "${ref}"`);
}
