// Approver ids as the broker compares them (and policies/approvals.rego again, on the broker's
// output): two ids name the same person when their keys are equal, and the agent approves itself
// when an approver's key equals the key of the PoA's `sub`. The rule (docs/authorization.md,
// "Approver ids"):
//   1. surrounding whitespace is removed; what remains must be 1..256 printable ASCII characters
//      (0x21-0x7E), else the id is refused (an approval with it is ignored, never counted): case
//      folding beyond ASCII differs between JavaScript and Rego, and SPIFFE IDs, e-mail addresses
//      and account names are ASCII;
//   2. lower-case;
//   3. trailing slashes removed;
//   4. the SPIFFE user form `spiffe://<trust domain>/user/<name>` is the bare `<name>`, whatever
//      the trust domain: `spiffe://corp.example/user/alice`, `Alice` and `alice/` are one approver.
// Collapsing more ids than strictly necessary can only make a requirement harder to meet (fewer
// distinct approvers, more self-approvals), never easier.

const PRINTABLE_ASCII = /^[\x21-\x7e]{1,256}$/;
const SPIFFE_USER = /^spiffe:\/\/[^/]+\/user\/([^/]+)$/;

/** The comparison key of an approver id, or null when the id is refused. */
export function approverKey(raw: unknown): string | null {
  if (typeof raw !== "string") return null;
  const trimmed = raw.trim();
  if (!PRINTABLE_ASCII.test(trimmed)) return null;
  const lower = trimmed.toLowerCase().replace(/\/+$/, "");
  if (lower === "") return null;
  return SPIFFE_USER.exec(lower)?.[1] ?? lower;
}

/** A bounded, printable rendering of an untrusted id for the decision's details. */
export function displayId(raw: unknown): string | null {
  if (typeof raw !== "string") return null;
  return raw.slice(0, 256).replace(/[^\x20-\x7e]/g, "?");
}
