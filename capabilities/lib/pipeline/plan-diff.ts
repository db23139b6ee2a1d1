// The diff a Plan task shows (status.plan.diff): the target as it is and as the server-side dry
// run says it would be stored, each as YAML, compared line by line into a unified diff. What is
// shown is the object's identity, labels, annotations, owners, finalizers, spec and values; never
// status, managedFields or kubectl's last-applied copy (which can hold a whole Secret). A Secret's
// values are never shown: each is [REDACTED], and [REDACTED (changed)] where the change gives it
// another value, so the diff says which keys change and nothing about what they hold. Bounded at
// MAX_DIFF_BYTES, cut at a line, with `truncated` set.
import { dump } from "js-yaml";
import type { KubeObject } from "../action";
import { ANNOTATION_APPLIED_TASKS } from "../action/marker";
import { isRecord } from "../action/payload";
import { ANNOTATION_APPLIED_BY } from "../../../crds/agenttask";

/** status.plan.diff holds at most this many bytes (UTF-8); the CRD bounds it at 16384 characters. */
export const MAX_DIFF_BYTES = 16 * 1024;
export const REDACTED = "[REDACTED]";
export const REDACTED_CHANGED = "[REDACTED (changed)]";
const CONTEXT_LINES = 3;
/** Beyond this many cells the middle of the two texts is shown as removed then added, not aligned. */
const MAX_LCS_CELLS = 4_000_000;
/**
 * Annotations left out: kubectl's copy of the object (it can hold a whole Secret), and the
 * operator's at-most-once markers, which name the task that writes (for a plan: itself, which
 * never writes; the Apply task that follows stamps its own).
 */
const DROPPED_ANNOTATIONS = [
  "kubectl.kubernetes.io/last-applied-configuration",
  ANNOTATION_APPLIED_BY,
  ANNOTATION_APPLIED_TASKS,
];
const VALUE_FIELDS = ["data", "stringData", "binaryData"] as const;

type Shown = Record<string, unknown>;
/** The "before" of an object that does not exist yet: every value of the new one is new, none changed. */
const EMPTY = { metadata: {} } as KubeObject;

function metadataShown(m: KubeObject["metadata"]): Shown {
  const out: Shown = { name: m.name, namespace: m.namespace };
  const annotations = Object.entries(m.annotations ?? {}).filter(([k]) => !DROPPED_ANNOTATIONS.includes(k));
  if (m.labels && Object.keys(m.labels).length) out.labels = m.labels;
  if (annotations.length) out.annotations = Object.fromEntries(annotations);
  if (m.ownerReferences !== undefined) out.ownerReferences = m.ownerReferences;
  if (m.finalizers !== undefined) out.finalizers = m.finalizers;
  return out;
}

/** A Secret's values, each replaced; `before` tells which of them the change gives another value. */
function redactedValues(values: Record<string, unknown>, before?: Record<string, unknown>): Shown {
  const out: Shown = {};
  for (const [k, v] of Object.entries(values)) {
    const changed = before !== undefined && (!(k in before) ? false : before[k] !== v);
    out[k] = changed ? REDACTED_CHANGED : REDACTED;
  }
  return out;
}

/**
 * The part of an object the diff shows. For a Secret every value is replaced; `before` (the
 * current object, for the dry run's result) marks the values that change.
 */
export function shownObject(obj: KubeObject | undefined | null, kind: string, before?: KubeObject): Shown {
  if (!obj || !isRecord(obj) || !isRecord(obj.metadata)) return {};
  const secret = (obj.kind ?? kind) === "Secret";
  const view: Shown = { apiVersion: obj.apiVersion, kind: obj.kind ?? kind, metadata: metadataShown(obj.metadata) };
  if (typeof obj.type === "string") view.type = obj.type;
  if (typeof obj.immutable === "boolean") view.immutable = obj.immutable;
  for (const f of VALUE_FIELDS) {
    const values = obj[f];
    if (!isRecord(values)) continue;
    const prev = before && isRecord(before[f]) ? before[f] : before ? {} : undefined;
    view[f] = secret || f === "binaryData" ? redactedValues(values, prev) : values;
  }
  if (obj.spec !== undefined) view.spec = obj.spec;
  return view;
}

/** YAML lines of an object (keys sorted, so only real changes differ). */
export function yamlLines(view: Shown): string[] {
  if (Object.keys(view).length === 0) return [];
  const text = dump(view, { sortKeys: true, lineWidth: -1, noRefs: true });
  return text.replace(/\n$/, "").split("\n");
}

type Op = { tag: " " | "-" | "+"; line: string; a: number; b: number };

/** The edit script of two line lists (longest common subsequence on the part between the common prefix and suffix). */
export function lineDiff(a: string[], b: string[]): Op[] {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const am = a.slice(pre, a.length - suf);
  const bm = b.slice(pre, b.length - suf);
  const ops: Op[] = [];
  for (let i = 0; i < pre; i++) ops.push({ tag: " ", line: a[i]!, a: i, b: i });
  ops.push(...middle(am, bm, pre));
  for (let i = 0; i < suf; i++) {
    const ai = a.length - suf + i;
    const bi = b.length - suf + i;
    ops.push({ tag: " ", line: a[ai]!, a: ai, b: bi });
  }
  return ops;
}

function middle(a: string[], b: string[], offset: number): Op[] {
  const n = a.length;
  const m = b.length;
  if (n * m > MAX_LCS_CELLS) {
    return [
      ...a.map((line, i) => ({ tag: "-" as const, line, a: offset + i, b: offset })),
      ...b.map((line, j) => ({ tag: "+" as const, line, a: offset + n, b: offset + j })),
    ];
  }
  // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ tag: " ", line: a[i]!, a: offset + i, b: offset + j });
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! > lcs[i + 1]![j]!)) {
      ops.push({ tag: "+", line: b[j]!, a: offset + i, b: offset + j });
      j++;
    } else {
      ops.push({ tag: "-", line: a[i]!, a: offset + i, b: offset + j });
      i++;
    }
  }
  return ops;
}

const range = (start: number, count: number): string => (count === 1 ? `${start}` : `${start},${count}`);

/** Unified diff hunks (3 lines of context) of an edit script; "" when nothing changes. */
export function unifiedHunks(ops: Op[]): string[] {
  const changed = ops.map((o, i) => (o.tag === " " ? -1 : i)).filter(i => i >= 0);
  if (!changed.length) return [];
  const groups: [number, number][] = [];
  for (const i of changed) {
    const last = groups[groups.length - 1];
    if (last && i - last[1] <= 2 * CONTEXT_LINES + 1) last[1] = i;
    else groups.push([i, i]);
  }
  const out: string[] = [];
  for (const [first, lastChanged] of groups) {
    const from = Math.max(0, first - CONTEXT_LINES);
    const to = Math.min(ops.length - 1, lastChanged + CONTEXT_LINES);
    const slice = ops.slice(from, to + 1);
    const aCount = slice.filter(o => o.tag !== "+").length;
    const bCount = slice.filter(o => o.tag !== "-").length;
    const aStart = aCount ? slice.find(o => o.tag !== "+")!.a + 1 : slice[0]!.a;
    const bStart = bCount ? slice.find(o => o.tag !== "-")!.b + 1 : slice[0]!.b;
    out.push(`@@ -${range(aStart, aCount)} +${range(bStart, bCount)} @@`);
    for (const o of slice) out.push(`${o.tag}${o.line}`);
  }
  return out;
}

export interface PlanDiff {
  diff: string;
  truncated: boolean;
}

/** Cuts a text to at most `max` UTF-8 bytes at a line end. */
function bounded(lines: string[], max: number): PlanDiff {
  let size = 0;
  const kept: string[] = [];
  for (const line of lines) {
    const bytes = Buffer.byteLength(line, "utf8") + 1;
    if (size + bytes > max) return { diff: kept.join("\n") + (kept.length ? "\n" : ""), truncated: true };
    kept.push(line);
    size += bytes;
  }
  return { diff: kept.join("\n") + (kept.length ? "\n" : ""), truncated: false };
}

/**
 * The unified diff of the target before the change and after it (the dry run's result), as
 * YAML, Secret values redacted, at most MAX_DIFF_BYTES. Empty when nothing would change.
 */
export function planDiff(before: KubeObject | undefined, after: KubeObject | undefined, kind: string): PlanDiff {
  const meta = (before ?? after)?.metadata;
  const name = `${kind}/${meta?.namespace ?? ""}/${meta?.name ?? ""}`;
  const hunks = unifiedHunks(
    lineDiff(yamlLines(shownObject(before, kind)), yamlLines(shownObject(after, kind, before ?? EMPTY))),
  );
  if (!hunks.length) return { diff: "", truncated: false };
  return bounded(
    [`--- ${name} (current)`, `+++ ${name} (after the change, server-side dry run)`, ...hunks],
    MAX_DIFF_BYTES,
  );
}
