// Executing, applied: has the change taken effect? The action's verify decides (rollout done,
// replicas ready, keys as requested); a later task that changed the same target since ends the
// wait, since ours was applied and there is nothing of it left to watch. A rollout that does not
// finish within the configured timeout fails the task.
import { appliedTasks } from "../action/marker";
import { getTarget } from "../action/target";
import type { KubeObject, VerifyResult } from "../action";
import { conditionOf } from "../status/conditions";
import type { StepResult, StepScope } from "./scope";
import { rolloutPollMs } from "./timing";
import { completed, failed, Reason } from "./transitions";

/** The task whose change replaced ours on the target, if one did. */
function supersededBy(target: KubeObject | undefined, uid: string): string | undefined {
  const list = appliedTasks(target);
  const i = list.indexOf(uid);
  return i >= 0 && i < list.length - 1 ? list[list.length - 1] : undefined;
}

/**
 * One look at the target: the copy this process already holds from its own write or a watch
 * event (`s.observed`), else one GET; the action's verify and the superseded check share it.
 */
export async function verify(s: StepScope): Promise<StepResult> {
  let r: VerifyResult;
  try {
    const target = s.observed !== undefined ? (s.observed ?? undefined) : await getTarget(s.ctx);
    const later = supersededBy(target, s.ctx.uid);
    r = later
      ? { state: "done", message: `change applied; a later task (${later}) has since changed the target` }
      : await s.module.verify(s.ctx, target ?? null);
  } catch (err) {
    return { error: err, stage: "verify" };
  }
  if (r.state === "done") return { transition: completed(r.message) };
  if (r.state === "failed") return { transition: failed(s.task, r.reason, r.message) };
  const now = s.clock().getTime();
  const since = Date.parse(conditionOf(s.task, "Executed")?.lastTransitionTime ?? "") || now;
  const waited = now - since;
  if (waited > s.config.rolloutTimeoutMs) {
    const message = `${r.message} (not done ${Math.round(waited / 1000)}s after the change was applied)`;
    return { transition: failed(s.task, Reason.RolloutTimeout, message) };
  }
  return { requeueAfterMs: rolloutPollMs(waited) };
}
