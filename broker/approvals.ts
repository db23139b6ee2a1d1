// Approvals the policy may count, from the PoA's `leg` blocks: only the blocks the token's issuer
// profile vouches for (trust.ts), with ids normalized (approver-id.ts). Every block or entry that
// does not count is listed with why, for the decision's details; nothing unvouched is counted.
// Attestations (approvals signed by the approvers themselves) are judged in attestations.ts.
import { approverKey, displayId } from "./approver-id";
import type { LegBlock } from "./trust";

export type ApprovalSource = LegBlock | "attestation";

/** One approval as the policy sees it (input.poa.approvals). */
export interface Approval {
  /** The comparison key of the approver id (approver-id.ts). */
  id: string;
  /** The id as written, bounded and printable. */
  raw_id: string;
  source: ApprovalSource;
  /** Verified roles only (e.g. "executive"). */
  roles: string[];
  /** Unix seconds after which the approval no longer counts. */
  exp?: number;
  /** Who vouches for it: `issuer:<profile>` or `approver:<id>`. */
  vouched_by: string;
}

/** Something that looked like an approval and is not counted (input.poa.ignored_approvals). */
export interface IgnoredApproval {
  source: ApprovalSource;
  id: string | null;
  why: string;
  /** Roles an attestation claimed that its approver's key does not grant. */
  roles?: string[];
}

export interface Collected {
  approvals: Approval[];
  ignored: IgnoredApproval[];
}

/** Entries read per block; the rest is listed once as too_many. */
const MAX_ENTRIES = 32;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalExp(entry: Record<string, unknown>): { exp?: number } {
  return typeof entry.exp === "number" ? { exp: entry.exp } : {};
}

/** Why a present block does not count, or null when the issuer vouches for it. */
function unvouched(block: LegBlock, value: Record<string, unknown>, vouches: readonly LegBlock[]): string | null {
  if (!vouches.includes(block)) return "not_vouched_by_issuer";
  if (block === "dual_control" && value.required !== true) return "dual_control_not_required";
  return null;
}

interface Entry {
  raw: unknown;
  entry: Record<string, unknown>;
  /** Not an object with an id: shown, never counted. */
  malformed?: true;
}

/** The entries a block lists: approval has one approver_id, the others approvers[].id. */
function entriesOf(block: LegBlock, value: Record<string, unknown>): Entry[] {
  if (block === "approval") return [{ raw: value.approver_id, entry: value }];
  if (!Array.isArray(value.approvers)) return [];
  return value.approvers.map(a => (isRecord(a) ? { raw: a.id, entry: a } : { raw: a, entry: {}, malformed: true }));
}

interface Issuer {
  vouches: readonly LegBlock[];
  name: string;
}

function collectBlock(block: LegBlock, value: unknown, issuer: Issuer, out: Collected): void {
  if (!isRecord(value)) {
    out.ignored.push({ source: block, id: null, why: "block_malformed" });
    return;
  }
  const entries = entriesOf(block, value);
  const why = unvouched(block, value, issuer.vouches);
  for (const { raw, entry, malformed } of entries.slice(0, MAX_ENTRIES)) {
    const id = malformed ? null : approverKey(raw);
    if (why !== null || id === null) {
      out.ignored.push({ source: block, id: displayId(raw), why: why ?? "approver_id_invalid" });
      continue;
    }
    out.approvals.push({
      id,
      raw_id: displayId(raw)!,
      source: block,
      roles: block === "executive_control" ? ["executive"] : [],
      ...optionalExp(entry),
      vouched_by: `issuer:${issuer.name}`,
    });
  }
  if (entries.length > MAX_ENTRIES) out.ignored.push({ source: block, id: null, why: "too_many" });
}

/**
 * The approvals of leg.approval, leg.dual_control and leg.executive_control that the issuer
 * profile vouches for (dual_control only with `required: true`; executive_control grants the
 * executive role), and every other entry as ignored.
 */
export function legApprovals(leg: unknown, vouches: readonly LegBlock[], issuer: string): Collected {
  const out: Collected = { approvals: [], ignored: [] };
  if (!isRecord(leg)) return out;
  for (const block of ["approval", "dual_control", "executive_control"] as const) {
    if (leg[block] !== undefined) collectBlock(block, leg[block], { vouches, name: issuer }, out);
  }
  return out;
}
