// Validation of decide request bodies (pure, unit-tested): anything that is not the contract's
// shape is a 400 with a message naming the field. The token is checked for presence only here;
// verify.ts judges it.

export interface DecideBody {
  action: string;
  token: string;
  agent_id: string;
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

export function parseDecideBody(raw: string): ParsedBody {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return { ok: false, message: "body is not valid JSON" };
  }
  if (!isRecord(v)) return { ok: false, message: "body must be a JSON object" };
  if (!text(v.action)) return { ok: false, message: "`action` must be a non-empty string (k8s.<Kind>.<action>)" };
  if (typeof v.token !== "string" || v.token === "") return { ok: false, message: "`token` (the PoA JWT) is required" };
  if (!text(v.agent_id)) return { ok: false, message: "`agent_id` must be a non-empty string" };
  const problem = targetProblem(v.target) ?? optionalProblem(v) ?? attestationsProblem(v.attestations);
  if (problem) return { ok: false, message: problem };
  const t = v.target as Record<string, string>;
  return {
    ok: true,
    body: {
      action: v.action,
      token: v.token,
      agent_id: v.agent_id,
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
