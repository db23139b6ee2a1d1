// The canonical change of a restart (docs/authorization.md, "The change digest"): the intent
// only. The restartedAt value the operator stamps is its own (the task's creation time, fixed
// per task) and unknown to the agent when it asks for a token, so it never enters the digest; it
// travels in the decide request's context.

export function changeOf(): { restart: true } {
  return { restart: true };
}
