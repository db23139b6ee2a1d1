// The canonical change of a scale (docs/authorization.md, "The change digest"): the replica
// count the task asks for, nothing observed. The operator sends exactly this as the decide
// request's params; a PoA binds it through `con.change_sha256`.

/** `{replicas}` from the task's payload. */
export function changeOf(payload: Record<string, unknown> | undefined): { replicas: unknown } {
  return { replicas: payload?.replicas };
}
