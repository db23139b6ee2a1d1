// The parts of a decision's `metadata.details` the operator reads (the reference policy's
// details, policies/decision.rego): the deny codes, the approvers the broker counted and the
// approvals it did not count. Bounded and shape-checked: anything else is dropped, so a broker
// without details (or with other details) leaves the decision as it was (an answer without
// details is Denied, fail closed).
export interface DecisionDetails {
  /** Every deny code, lowest priority first (details.denies). */
  denies: string[];
  /** The distinct approvers counted (details.counted_approvers); absent when the broker sends none. */
  counted?: string[];
  /** What looked like an approval and was not counted (details.ignored_approvals). */
  ignored: { id?: string; why: string }[];
}

const MAX_ITEMS = 32;
const CODE = /^[a-z][a-z0-9_]{0,63}$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An approver id as shown in status: printable ASCII, at most 256 characters. */
function shownId(v: unknown): string | undefined {
  return typeof v === "string" && /^[!-~]{1,256}$/.test(v) ? v : undefined;
}

function codes(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.filter((c): c is string => typeof c === "string" && CODE.test(c)).slice(0, MAX_ITEMS);
}

/** The details the operator uses, or undefined when there are none it can read. */
export function parseDetails(v: unknown): DecisionDetails | undefined {
  if (!isRecord(v)) return undefined;
  const denies = codes(v.denies);
  if (!denies) return undefined;
  const out: DecisionDetails = { denies, ignored: [] };
  if (Array.isArray(v.counted_approvers))
    out.counted = v.counted_approvers
      .map(shownId)
      .filter((x): x is string => !!x)
      .slice(0, MAX_ITEMS);
  if (Array.isArray(v.ignored_approvals)) {
    for (const i of v.ignored_approvals.slice(0, MAX_ITEMS)) {
      if (!isRecord(i) || typeof i.why !== "string" || !CODE.test(i.why)) continue;
      const id = shownId(i.id);
      out.ignored.push(id ? { id, why: i.why } : { why: i.why });
    }
  }
  return out;
}
