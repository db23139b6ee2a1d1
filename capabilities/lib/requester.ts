// The Kubernetes identity that created a task ("token bound to its holder"). The mutating webhook
// records it from the admission request in the annotation atb.siemens.com/requester, as compact
// JSON {"username","uid"?,"groups"}; the validating webhook refuses any other value at creation and
// any change later; the pipeline sends it to the broker as `requester`, whose policy decides
// whether that identity may act as spec.agentId (policies/requester.rego). The scope
// ValidatingAdmissionPolicy (crds/agenttask-scope.yaml) rebuilds the same text in CEL, so the
// format below is fixed: keys in this order, `uid` left out when empty, JSON.stringify's escaping.
// Pure, and free of Pepr: admission, the pipeline and the reference broker share it.

/** Who created the task, as the API server authenticated them (the authenticator's `extra` is not kept). */
export interface Requester {
  username: string;
  uid?: string;
  groups: string[];
}

/** The userInfo of an admission request (Pepr's AdmissionRequest.userInfo). */
export interface AdmissionUser {
  username?: string;
  uid?: string;
  groups?: string[];
}

/**
 * Bounds that keep the annotation small whatever the authenticator says. A username beyond its
 * bound cannot be recorded, and the task is refused; a uid beyond its bound is left out (the
 * binding never reads it); groups beyond their bounds are left out, keeping the first 64 of the
 * others in the authenticator's order. Leaving a group out can only make a binding by group fail
 * (fail closed), never make one match.
 */
export const REQUESTER_LIMITS = { usernameChars: 512, uidChars: 128, groups: 64, groupChars: 256 } as const;

const isText = (v: unknown, max: number): v is string => typeof v === "string" && v.length > 0 && v.length <= max;

/** The requester of an admission request, bounded as REQUESTER_LIMITS says; undefined without a usable username. */
export function requesterOf(user: AdmissionUser | undefined): Requester | undefined {
  if (!isText(user?.username, REQUESTER_LIMITS.usernameChars)) return undefined;
  const groups = (Array.isArray(user.groups) ? user.groups : [])
    .filter(g => isText(g, REQUESTER_LIMITS.groupChars))
    .slice(0, REQUESTER_LIMITS.groups);
  return {
    username: user.username,
    ...(isText(user.uid, REQUESTER_LIMITS.uidChars) ? { uid: user.uid } : {}),
    groups,
  };
}

/** The annotation's text for a requester: the one form the webhook writes and the pipeline accepts. */
export function requesterText(r: Requester): string {
  return JSON.stringify({ username: r.username, ...(r.uid ? { uid: r.uid } : {}), groups: r.groups });
}

/** What the webhook stamps for this admission request; undefined when it cannot record the identity. */
export function requesterAnnotation(user: AdmissionUser | undefined): string | undefined {
  const r = requesterOf(user);
  return r ? requesterText(r) : undefined;
}

const MAX_TEXT_CHARS = 32 * 1024;

function isRequesterShape(v: unknown): v is Requester {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const r = v as Record<string, unknown>;
  return (
    isText(r.username, REQUESTER_LIMITS.usernameChars) &&
    (r.uid === undefined || isText(r.uid, REQUESTER_LIMITS.uidChars)) &&
    Array.isArray(r.groups) &&
    r.groups.length <= REQUESTER_LIMITS.groups &&
    r.groups.every(g => isText(g, REQUESTER_LIMITS.groupChars))
  );
}

/**
 * The requester a task's annotation records, or undefined when it is missing or not exactly what
 * the webhook writes (a task created before the webhook, or with the webhook bypassed): the
 * pipeline then denies the task without asking the broker (fail closed).
 */
export function parseRequester(annotation: unknown): Requester | undefined {
  if (typeof annotation !== "string" || annotation.length > MAX_TEXT_CHARS) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(annotation);
  } catch {
    return undefined;
  }
  if (!isRequesterShape(parsed)) return undefined;
  const r: Requester = {
    username: parsed.username,
    ...(parsed.uid ? { uid: parsed.uid } : {}),
    groups: [...parsed.groups],
  };
  // Only the webhook's own form counts: no other keys, no other order, no other spacing.
  return requesterText(r) === annotation ? r : undefined;
}
