// What one step of the pipeline works with, and what it hands back. A step gets a small scope
// (the stored task, its action module, the ports it may use, the time) instead of the Pipeline,
// and returns a result the pipeline applies: a transition to write, a time to look again, or an
// error for outcome.ts to judge. Steps never write status.
import type { AgentTask } from "../../../crds/agenttask";
import type { ActionModule, KubeObject, Planned, TaskContext } from "../action";
import type { BrokerClient } from "../broker/client";
import type { OperatorConfig } from "../config";
import type { OperatorMetrics } from "../metrics";
import type { Transition } from "../status/conditions";
import type { IncludedApprovals } from "./approvals";
import type { ExecutorCheck } from "./executor";
import type { AccessReview } from "./access-review";
import type { DecideWindow, Stage } from "./outcome";

export interface StepScope {
  /** The task as stored (the latest read or the pipeline's own last write). */
  task: AgentTask;
  module: ActionModule;
  ctx: TaskContext;
  config: Readonly<OperatorConfig>;
  broker: BrokerClient;
  metrics: OperatorMetrics;
  /** When the step started; `clock` gives the time after a slow call (the broker's retries). */
  now: Date;
  clock: () => Date;
  /** Whether the task's namespace has an executor (asked with the operator's own identity). */
  executor: ExecutorCheck;
  /** May a task's creator get its target (SubjectAccessReview, the operator's own identity)? Plan tasks ask it. */
  access: AccessReview;
  /** The Kubernetes user every target request of this task is made as (ctx.kube impersonates it). */
  executedAs: string;
  /** The plan the broker allowed for this task and that is not applied yet (memory only; gone after a restart). */
  judged?: Planned;
  /**
   * The target as read when `judged` was planned (undefined: not held; null: it did not exist).
   * The write that follows in the same pass needs no second read: it is conditioned on this
   * copy's resourceVersion, and a conflict re-reads.
   */
  judgedFrom?: KubeObject | null;
  /** The target as this process last saw it after its own write (the write's answer, a watch event). */
  observed?: KubeObject | null;
  /** A waiting task's approval objects this decision includes (AwaitingApproval; approvals.ts). */
  approvals?: IncludedApprovals;
}

export type StepResult =
  /**
   * Write this transition; `judged` is the plan an allow refers to, kept until it is applied, and
   * `judgedFrom` the target it was planned on; `observed` the target as our write left it.
   */
  | {
      transition: Transition;
      judged?: Planned;
      judgedFrom?: KubeObject | null;
      observed?: KubeObject | null;
      /** The target's resourceVersion read before our write (a watch of it starts there). */
      since?: string;
    }
  /** Nothing to write now; look again after this long. */
  | { requeueAfterMs: number }
  /** Something went wrong; outcome.ts decides between retry, requeue and Failed. */
  | { error: unknown; stage: Stage; window?: DecideWindow };
