// The agent-side TypeScript client: submit an AgentTask and wait for its terminal status, plan a
// change first (plan: a Plan task's status.plan) and wait while a task awaits approvals
// (awaitApproval), and compute the digest of its change that the task's token binds (con.change_sha256).
export { submitAgentTask } from "./submit";
export type { AgentTaskRequest, SubmitOptions, SubmitPhase, SubmitResult, TerminalPhase } from "./submit";
export { taskChange, taskChangeDigest } from "./change";
export { awaitApproval, plan } from "./plan";
export type { AwaitApprovalOptions, AwaitApprovalResult, PlanOptions, PlanRequest, PlanResult } from "./plan";
export type { PlanView, TaskStatusView } from "./wait";
export type { ChangeOf, ChangeResolution } from "./change";
