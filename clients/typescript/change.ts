// The change digest an agent's token binds (con.change_sha256; docs/authorization.md, "The change
// digest"): the SHA-256 of the RFC 8785 canonical JSON of the task's canonical change, computed by
// the operator's own code (capabilities/change.ts), so what the agent asks a token for is exactly
// what the operator will ask the broker about. MEDIUM and higher tiers require it.
import { canonicalChange, taskChangeDigest as digestOf, type ChangeResolution } from "../../capabilities/change";
import type { AgentTaskRequest } from "./submit";

export type { ChangeResolution } from "../../capabilities/change";

/** What a change is computed from: the task's action, its target and its payload. */
export type ChangeOf = Pick<AgentTaskRequest, "action" | "target" | "payload">;

/**
 * `sha256:<hex>`: what the task's token must carry as con.change_sha256. A rollback also needs the
 * revision it restores (when the payload names none) and that revision's template hash (the
 * pod-template-hash label of its ReplicaSet, or the hash label of its ControllerRevision; null if
 * it has none). An update-config of a Secret, whose values are references to another Secret's keys,
 * needs `valueDigests`: for each referenced data key, `sha256:<hex>` of the value's bytes (the digest
 * of the same value given inline).
 */
export function taskChangeDigest(task: ChangeOf, resolved?: ChangeResolution): string {
  return digestOf(task, resolved);
}

/** The task's canonical change itself (what an approver is shown). */
export function taskChange(task: ChangeOf, resolved?: ChangeResolution): Record<string, unknown> {
  return canonicalChange(task, resolved);
}
