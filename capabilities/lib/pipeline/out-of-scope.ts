// Tasks in a namespace this operator never processes (lib/scope.ts): a protected namespace, or
// one outside WATCH_NAMESPACE. Admission refuses them where the ValidatingAdmissionPolicy is
// installed; this is the backstop for a task that got in anyway, so that none is left without a
// status. The rule:
//   * a protected namespace inside the operator's watch (WATCH_NAMESPACE empty): the namespace is
//     this operator's to judge, so the task is Failed/OutOfScope at once, whatever its phase;
//   * a namespace outside WATCH_NAMESPACE may be served by another instance (a shard), so the
//     task is marked only when it still has no status at all ATB_OUT_OF_SCOPE_GRACE_SECONDS after
//     its creation (an operator serving it stores its decision within milliseconds, or Pending
//     after ATB_PENDING_CLAIM_SECONDS while the task waits for its target), and only in the
//     namespaces ATB_OUT_OF_SCOPE_NAMESPACES names when it is set. 0 turns this off. The status
//     write is conditioned on the resourceVersion read, so an instance that writes Pending
//     first wins and the task is left alone.
import type { AgentTask } from "../../../crds/agenttask";
import type { OperatorConfig } from "../config";
import { scopeRefusal, watches } from "../scope";
import type { Transition } from "../status/conditions";
import { failed, Reason } from "./transitions";

type ScopeConfig = Pick<
  OperatorConfig,
  "watchNamespaces" | "protectedNamespaces" | "outOfScopeGraceMs" | "outOfScopeNamespaces"
>;

const hasStatus = (t: AgentTask): boolean => Object.keys(t.status ?? {}).length > 0;

/**
 * A task outside WATCH_NAMESPACE that no operator has picked up: no status at all, older than the
 * grace, in a namespace the check covers. The sweep pre-selects with it; the pipeline decides
 * with it on the task it has just read.
 */
export function unclaimed(task: AgentTask, config: ScopeConfig, now: Date): boolean {
  const ns = task.metadata?.namespace ?? "";
  if (config.outOfScopeGraceMs <= 0 || hasStatus(task) || watches(ns, config)) return false;
  if (config.outOfScopeNamespaces.length && !config.outOfScopeNamespaces.includes(ns)) return false;
  const created = Date.parse(String(task.metadata?.creationTimestamp));
  return Number.isFinite(created) && now.getTime() - created >= config.outOfScopeGraceMs;
}

/**
 * What the pipeline does with a task by its namespace: undefined when the operator serves it,
 * "leave" when it is not this operator's to touch (yet), or the Failed/OutOfScope transition.
 */
export function outOfScope(task: AgentTask, config: ScopeConfig, now: Date): Transition | "leave" | undefined {
  const ns = task.metadata?.namespace ?? "";
  const refusal = scopeRefusal(ns, config);
  if (!refusal) return undefined;
  if (watches(ns, config)) return failed(task, Reason.OutOfScope, refusal);
  if (!unclaimed(task, config, now)) return "leave";
  const grace = config.outOfScopeGraceMs / 1000;
  return failed(task, Reason.OutOfScope, `${refusal}; no operator picked the task up within ${grace}s`);
}
