// The agent-side TypeScript client: submit an AgentTask and wait for its terminal status.
export { submitAgentTask } from "./submit";
export type { AgentTaskRequest, SubmitOptions, SubmitResult, TerminalPhase } from "./submit";
