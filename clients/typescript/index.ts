// The agent-side TypeScript client: submit an AgentTask and wait for its terminal status, and
// compute the digest of its change that the task's token binds (con.change_sha256).
export { submitAgentTask } from "./submit";
export type { AgentTaskRequest, SubmitOptions, SubmitResult, TerminalPhase } from "./submit";
export { taskChange, taskChangeDigest } from "./change";
export type { ChangeOf, ChangeResolution } from "./change";
