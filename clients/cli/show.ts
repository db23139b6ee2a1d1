// What the CLI prints about a task: who asks for what, the change (the plan's diff, or the payload
// and the change digest), the tier and the approvals. Never the PoA token or an attestation: a
// task's spec.poaToken and spec.attestations are not printed, and Secret values are never in a task
// (update-config takes them by reference).
import { dump } from "js-yaml";
import { parseRequester } from "../../capabilities/lib/requester";
import { REQUESTER_ANNOTATION, type TaskApprovalsView, type TaskPlanView, type TaskView } from "./task";

function requesterOf(task: TaskView): string {
  const r = parseRequester(task.metadata?.annotations?.[REQUESTER_ANNOTATION]);
  return r ? r.username : "(not recorded)";
}

export function approvalsNeeded(a: { count?: number; roles?: string[]; sentence?: string } | undefined): string {
  if (!a) return "unknown";
  if (a.sentence) return a.sentence;
  const roles = a.roles?.length ? ` (roles: ${a.roles.join(", ")})` : "";
  return `${a.count ?? 0} approval(s)${roles}`;
}

export function describeApprovals(a: TaskApprovalsView | undefined): string[] {
  if (!a) return ["Approvals:  none recorded on the task"];
  const out = [`Approvals:  ${a.sentence ?? approvalsNeeded(a.required)}`];
  out.push(`  counted:  ${a.counted?.length ? a.counted.join(", ") : "none yet"}`);
  for (const i of a.ignored ?? []) out.push(`  ignored:  ${i.id ?? "(unknown)"}: ${i.why}`);
  return out;
}

export function describePlan(plan: TaskPlanView): string[] {
  const out = [
    `Change:     ${plan.changeSha256 ?? "(none)"}`,
    `Risk tier:  ${plan.riskTier ?? "unknown"}`,
    `Needs:      ${approvalsNeeded(plan.approvalsRequired)}`,
    "Diff:",
  ];
  out.push(...(plan.diff ?? "(no diff)").replace(/\n$/, "").split("\n"));
  if (plan.diffTruncated) out.push("(diff truncated at 16 KiB)");
  return out;
}

/** The task's header lines: name, agent, requester, action and target, phase. */
export function describeTask(task: TaskView): string[] {
  const s = task.spec ?? {};
  const t = s.target;
  const reason = typeof s.payload?.reason === "string" ? [`Why:        ${s.payload.reason}`] : [];
  return [
    `Task:       ${task.metadata?.namespace}/${task.metadata?.name}${s.mode === "Plan" ? " (a Plan task)" : ""}`,
    `Agent:      ${s.agentId ?? "?"}`,
    `Requester:  ${requesterOf(task)}`,
    `Action:     ${s.action ?? "?"} ${t ? `${t.kind} ${t.namespace}/${t.name}` : ""}`.trimEnd(),
    ...reason,
    `Phase:      ${task.status?.phase ?? "(no status yet)"}`,
  ];
}

/** An Apply task's change as given: its payload (without the free-text reason) as YAML. */
export function describePayload(task: TaskView): string[] {
  const payload = { ...task.spec?.payload };
  delete payload.reason;
  if (Object.keys(payload).length === 0) return ["Payload:    (none)"];
  return [
    "Payload:",
    ...dump(payload, { lineWidth: 120, noRefs: true })
      .replace(/\n$/, "")
      .split("\n")
      .map(l => `  ${l}`),
  ];
}
