// Validation of decide request bodies (pure, unit-tested): anything that is not the contract's
// shape is a 400 with a message naming the field. The token is checked for presence only here;
// verify.ts judges it.
import { REQUESTER_LIMITS, type Requester } from "../capabilities/lib/requester";

export interface DecideBody {
  action: string;
  token: string;
  agent_id: string;
  /**
   * The Kubernetes identity that created the task (the operator's admission webhook records it).
   * Optional in the body, so a caller that does not know it gets an answer: the reference policy
   * then denies requester_mismatch (policies/requester.rego).
   */
  requester?: Requester;
  target: { kind: string; name: string; namespace: string };
  params: Record<string, unknown>;
  context: Record<string, unknown>;
  /** Approver attestations sent next to the token (compact JWS each; judged by the broker). */
  attestations?: string[];
}

export type ParsedBody = { ok: true; body: DecideBody } | { ok: false; message: string };

const MAX_FIELD_CHARS = 512;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function text(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= MAX_FIELD_CHARS;
}

function targetProblem(t: unknown): string | undefined {
  if (!isRecord(t)) return "`target` must be an object {kind, name, namespace}";
  for (const field of ["kind", "name", "namespace"]) {
    if (!text(t[field])) return `\`target.${field}\` must be a non-empty string`;
  }
  return undefined;
}

function optionalProblem(v: Record<string, unknown>): string | undefined {
  const optional = ["params", "context"].find(f => v[f] !== undefined && !isRecord(v[f]));
  return optional ? `\`${optional}\` must be an object` : undefined;
}

const MAX_ATTESTATIONS = 16;
const MAX_ATTESTATION_CHARS = 8 * 1024;

function attestationsProblem(a: unknown): string | undefined {
  if (a === undefined) return undefined;
  const ok =
    Array.isArray(a) &&
    a.length <= MAX_ATTESTATIONS &&
    a.every(x => typeof x === "string" && x.length > 0 && x.length <= MAX_ATTESTATION_CHARS);
  return ok
    ? undefined
    : `\`attestations\` must be a list of at most ${MAX_ATTESTATIONS} compact JWS strings (each at most ${MAX_ATTESTATION_CHARS} characters)`;
}

const boundedText = (v: unknown, max: number): v is string => typeof v === "string" && v.length > 0 && v.length <= max;

/** Why `requester` is not the contract's shape, if it is not: {username, uid?, groups?} within the operator's bounds. */
function requesterProblem(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  const ok =
    isRecord(v) &&
    boundedText(v.username, REQUESTER_LIMITS.usernameChars) &&
    (v.uid === undefined || boundedText(v.uid, REQUESTER_LIMITS.uidChars)) &&
    (v.groups === undefined ||
      (Array.isArray(v.groups) &&
        v.groups.length <= REQUESTER_LIMITS.groups &&
        v.groups.every(g => boundedText(g, REQUESTER_LIMITS.groupChars))));
  return ok
    ? undefined
    : `\`requester\` must be {username: 1..${REQUESTER_LIMITS.usernameChars} characters, uid?: string, groups?: at most ${REQUESTER_LIMITS.groups} strings}`;
}

/** `requester` of a body requesterProblem accepted, as the policy reads it (groups always a list). */
function requesterOf(v: Record<string, unknown>): { requester?: Requester } {
  if (!isRecord(v.requester)) return {};
  const r = v.requester as { username: string; uid?: string; groups?: string[] };
  return {
    requester: { username: r.username, ...(r.uid === undefined ? {} : { uid: r.uid }), groups: r.groups ?? [] },
  };
}

/** A request body that must be a JSON object: the object, or the refusal's message. */
export function parseJsonObject(
  raw: string,
): { ok: true; v: Record<string, unknown> } | { ok: false; message: string } {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return { ok: false, message: "body is not valid JSON" };
  }
  return isRecord(v) ? { ok: true, v } : { ok: false, message: "body must be a JSON object" };
}

export function parseDecideBody(raw: string): ParsedBody {
  const json = parseJsonObject(raw);
  if (!json.ok) return json;
  const v = json.v;
  if (!text(v.action)) return { ok: false, message: "`action` must be a non-empty string (k8s.<Kind>.<action>)" };
  if (typeof v.token !== "string" || v.token === "") return { ok: false, message: "`token` (the PoA JWT) is required" };
  if (!text(v.agent_id)) return { ok: false, message: "`agent_id` must be a non-empty string" };
  const problem =
    targetProblem(v.target) ??
    optionalProblem(v) ??
    attestationsProblem(v.attestations) ??
    requesterProblem(v.requester);
  if (problem) return { ok: false, message: problem };
  const t = v.target as Record<string, string>;
  return {
    ok: true,
    body: {
      action: v.action,
      token: v.token,
      agent_id: v.agent_id,
      ...requesterOf(v),
      target: { kind: t.kind!, name: t.name!, namespace: t.namespace! },
      params: (v.params as Record<string, unknown> | undefined) ?? {},
      context: (v.context as Record<string, unknown> | undefined) ?? {},
      ...(v.attestations === undefined ? {} : { attestations: v.attestations as string[] }),
    },
  };
}

/** X-Request-ID if it is header-safe and bounded, else undefined (the broker makes one). */
export function acceptableRequestId(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v && /^[A-Za-z0-9._:-]{1,128}$/.test(v) ? v : undefined;
}
