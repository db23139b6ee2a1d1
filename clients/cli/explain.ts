// `atb explain`: a task's phase, reason, policy code and condition messages as one sentence and
// the next step. The meanings come from the reference docs themselves (docs/reasons.md for every
// condition and Event reason, docs/authorization.md for the broker's and the policy's codes and the
// reasons an approval is ignored), so the CLI says what the docs say; the next step for a policy
// code is the small table below. tests/unit/cli-explain.test.ts checks that every reason the code
// can write and every code the broker and policy can answer has an explanation.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TaskView } from "./task";

export interface ReasonEntry {
  /** The phase the reason goes with (docs/reasons.md's Progress table, or its section). */
  phase?: string;
  meaning: string;
  next: string;
}

export interface Explanation {
  /** One sentence: where the task is and why. */
  sentence: string;
  /** What to do next. */
  next: string;
  /** The condition or broker detail lines behind the sentence (already free of secrets). */
  details: string[];
}

const DOCS = join(__dirname, "..", "..", "docs");

/** Table cells of one markdown row; `\|` inside a cell is a literal bar. */
function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\||\|$/g, "")
    .split(/(?<!\\)\|/)
    .map(c => c.trim().replace(/\\\|/g, "|"));
}

/** Markdown to terminal text: links keep their text, emphasis marks go. */
function plain(md: string): string {
  return md
    .replace(/\[([^\]]+)\]\([^)]+\)/g, "$1")
    .replace(/\*\*([^*]+)\*\*/g, "$1")
    .trim();
}

interface Table {
  section: string;
  header: string[];
  rows: string[][];
}

/** Every table of a markdown file with the `##` section it is in. */
export function markdownTables(text: string): Table[] {
  const tables: Table[] = [];
  let section = "";
  let current: Table | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("## ")) section = line.slice(3).trim();
    if (!line.startsWith("|")) {
      current = undefined;
      continue;
    }
    if (!current) {
      current = { section, header: cells(line).map(h => h.toLowerCase()), rows: [] };
      tables.push(current);
    } else if (!/^\|[-| :]+\|$/.test(line.trim())) current.rows.push(cells(line));
  }
  return tables;
}

/** The backticked names of a first cell: "`expired`, `not_yet_valid`" -> both. */
function names(cell: string): string[] {
  return [...cell.matchAll(/`([A-Za-z_]+)`/g)].map(m => m[1]!);
}

const PROGRESS_NEXT = "nothing to do yet: the operator is working on it; follow it with `kubectl get agenttask -w`";
/** The next step for a reason of a finished task that docs/reasons.md gives none for (Completed, NoChange, Planned). */
const DONE_NEXT = "nothing: the task is finished";
const FINISHED = /^(Completed|Denied|Failed|Planned)$/;

/** docs/reasons.md: reason -> phase, meaning and what to do. */
export function reasonTable(text = readFileSync(join(DOCS, "reasons.md"), "utf8")): Map<string, ReasonEntry> {
  const out = new Map<string, ReasonEntry>();
  for (const t of markdownTables(text).filter(t => t.header[0] === "reason")) {
    const col = (row: string[], name: string) => {
      const i = t.header.indexOf(name);
      return i < 0 ? undefined : row[i];
    };
    for (const row of t.rows) {
      const phase = col(row, "phase") ?? t.section;
      const next = col(row, "what to do");
      for (const name of names(row[0]!))
        out.set(name, {
          phase: plain(phase),
          meaning: plain(col(row, "meaning") ?? ""),
          next: next ? plain(next) : FINISHED.test(plain(phase)) ? DONE_NEXT : PROGRESS_NEXT,
        });
    }
  }
  return out;
}

/** What to do about a broker or policy code (docs/authorization.md has what it means). */
const CODE_NEXT: [RegExp, string][] = [
  [/^allowed$/, "nothing: the broker allowed the change"],
  [
    /^(medium_risk_approval_required|high_risk_dual_control_required|critical_risk_executive_approval_required|approval_expired|duplicate_approvers)$/,
    "the tier needs approvals: while the task is AwaitingApproval, each approver runs `npx atb approve <namespace>/<task> --key <their key> --approver <their id>`; a task that already ended needs a new task",
  ],
  [
    /^self_approval_not_allowed$/,
    "approvals must come from people other than the agent: have approvers sign with their own keys (`atb approve`)",
  ],
  [
    /^(change_mismatch|change_digest_required)$/,
    "get a token bound to this change's digest (`npx atb plan -f task.yaml` prints it), then create a new task",
  ],
  [
    /^(poa_expired|poa_not_yet_valid|poa_lifetime_invalid)$/,
    "mint a new token (check the clocks of issuer and broker), then create a new task",
  ],
  [
    /^(poa_|sub_mismatch|action_mismatch|target_mismatch|constraints_missing_target|risk_tier_invalid|payload_exceeds_constraints)/,
    "get a token from an issuer the broker trusts, for this agent, action, target and payload, then create a new task",
  ],
  [/^jti_replayed$/, "every task needs a token of its own (a new jti): mint one and create a new task"],
  [
    /^requester_mismatch$/,
    "create the task as a Kubernetes identity that may act as spec.agentId (docs/authorization.md, holder binding)",
  ],
  [
    /^(replay_cache_full|poa_keys_unavailable|policy_unavailable|policy_result_malformed|bad_request)$/,
    "a broker problem, not the task's: the operator retries what can be retried; if it persists, give the broker's operators the request id",
  ],
  [
    /^(action_malformed|unknown_action|action_target_kind_mismatch|request_time_invalid|params_invalid)$/,
    "fix the task's action, target or payload and create a new task",
  ],
  [/^replicas_above_limit$/, "ask for fewer replicas (the policy's limits.max_replicas) in a new task"],
  [
    /^(pod_security_baseline|pod_security_restricted|service_account_change|image_registry_not_allowed|service_exposure|service_selector_change|ownership_change)$/,
    "change the manifest or patch so the resulting object passes the policy (the broker's details name the field), then create a new task",
  ],
  [/^maintenance_window$/, "wait until the maintenance window ends, then create a new task"],
  [
    /^plan_only$/,
    "a plan never applies anything: create the task with mode Apply and a token bound to the plan's digest",
  ],
];

/** The next step for a broker or policy code; undefined for a code this table does not know. */
export function codeNext(code: string): string | undefined {
  return CODE_NEXT.find(([re]) => re.test(code))?.[1];
}

/** docs/authorization.md: broker and policy codes, and the reasons an approval is ignored -> meaning. */
export function codeTable(text = readFileSync(join(DOCS, "authorization.md"), "utf8")): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of markdownTables(text).filter(t => t.header[0] === "code" || t.header[0] === "`why`")) {
    const meaning = t.header.indexOf(t.header[0] === "code" ? "meaning" : "the entry");
    for (const row of t.rows) for (const name of names(row[0]!)) out.set(name, plain(row[meaning] ?? ""));
  }
  return out;
}

/** The reason the task is in its phase: the condition that decided it (Succeeded, then Authorized, then any). */
export function currentReason(task: TaskView): string | undefined {
  const conds = task.status?.conditions ?? [];
  const order = DECIDING[task.status?.phase ?? ""] ?? ["Executed", "Authorized"];
  for (const type of order) {
    const c = conds.find(x => x.type === type);
    if (c) return c.reason;
  }
  return conds[0]?.reason;
}

/** Which condition decided each phase, in the order to look. */
const DECIDING: Record<string, string[]> = {
  Denied: ["Authorized"],
  AwaitingApproval: ["Authorized"],
  Processing: ["Authorized"],
  Completed: ["Succeeded", "Authorized"],
  Failed: ["Succeeded", "Authorized"],
  Planned: ["Succeeded", "Authorized"],
};

const sentenceOf = (s: string) => (/[.!?]$/.test(s) ? s : `${s}.`);

function approvalDetails(task: TaskView, codes: Map<string, string>): string[] {
  const a = task.status?.approvals;
  if (!a) return [];
  const out: string[] = [];
  if (a.sentence) out.push(`approvals: ${a.sentence}`);
  if (a.counted?.length) out.push(`counted: ${a.counted.join(", ")}`);
  for (const i of a.ignored ?? [])
    out.push(`ignored${i.id ? ` ${i.id}` : ""}: ${i.why}${codes.has(i.why) ? ` (${codes.get(i.why)})` : ""}`);
  return out;
}

function noStatus(task: TaskView, id: string): Explanation {
  const ns = task.metadata?.namespace ?? "?";
  return {
    sentence: `${id} has no status yet: no operator has picked it up (is one running for namespace ${ns}?).`,
    next: "wait a few seconds; if it stays without status, check that the operator runs and watches this namespace",
    details: [],
  };
}

/** "<id> is <phase> (<reason>): <meaning>." plus the broker's code and what it means. */
function sentenceFor(
  id: string,
  at: { phase: string; reason?: string; entry?: ReasonEntry; code?: string },
  codes: Map<string, string>,
): string {
  const { phase, reason, entry, code } = at;
  let sentence = `${id} is ${phase}${reason ? ` (${reason})` : ""}`;
  sentence += entry ? `: ${sentenceOf(entry.meaning)}` : ".";
  if (!code || code === reason) return sentence;
  const meaning = codes.get(code);
  return `${sentence} The broker's answer: ${code}${meaning ? `, ${sentenceOf(meaning)}` : "."}`;
}

function nextFor(phase: string, entry: ReasonEntry | undefined, code: string | undefined): string {
  const byCode = code && (phase === "Denied" || phase === "AwaitingApproval") ? codeNext(code) : undefined;
  return byCode ?? entry?.next ?? "read the task's conditions (`kubectl describe agenttask`) and docs/reasons.md";
}

/** Turns a task's status into a sentence, the next step and the details behind them. */
export function explainTask(
  task: TaskView,
  tables: { reasons?: Map<string, ReasonEntry>; codes?: Map<string, string> } = {},
): Explanation {
  const reasons = tables.reasons ?? reasonTable();
  const codes = tables.codes ?? codeTable();
  const id = `${task.metadata?.namespace ?? "?"}/${task.metadata?.name ?? "?"}`;
  const status = task.status;
  if (!status?.phase) return noStatus(task, id);
  const reason = currentReason(task);
  const entry = reason ? reasons.get(reason) : undefined;
  const code = status.atbResult?.reason;
  const details: string[] = [];
  const cond = status.conditions?.find(c => c.reason === reason);
  if (cond?.message) details.push(`${cond.type}: ${cond.message}`);
  details.push(...approvalDetails(task, codes));
  if (status.lastError) details.push(`last error: ${status.lastError}`);
  return {
    sentence: sentenceFor(id, { phase: status.phase, reason, entry, code }, codes),
    next: nextFor(status.phase, entry, code),
    details,
  };
}
