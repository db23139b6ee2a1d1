// The API server's audit log as the end-to-end scenarios read it: every request of one identity
// (the operator's ServiceAccount, the limit's) between two offsets of the log, counted by verb and
// resource. The benchmark's control plane audits those identities at Metadata level
// (BENCH_AUDIT_RULES in environment.ts); the agent's creates are made by the benchmark's own
// identity and admission webhook calls are not API requests, so neither is counted.
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { auditLogPath } from "../tools/controlplane/cluster";
import { log } from "./log";

interface AuditEntry {
  stage: string;
  verb: string;
  requestURI: string;
  user?: { username?: string };
  impersonatedUser?: { username?: string };
  objectRef?: { resource?: string; subresource?: string };
  responseStatus?: { code?: number };
}

export interface RequestCount {
  /** By "verb resource[/subresource][ dry-run][ (as executor)]", e.g. "patch deployments (as executor)". */
  byKey: Record<string, number>;
  total: number;
  /** Answers other than 2xx (conflicts, refusals). */
  failed: number;
}

/** The audit log's current size: where a run's requests begin. */
export function auditOffset(dataDir: string): number {
  return statSync(auditLogPath(dataDir)).size;
}

/** "verb resource[/subresource][ dry-run][ (as executor)]" of one audit entry. */
export function requestKey(e: AuditEntry): string {
  const sub = e.objectRef?.subresource ? `/${e.objectRef.subresource}` : "";
  const dry = /[?&]dryRun=/.test(e.requestURI) ? " dry-run" : "";
  const as = e.impersonatedUser?.username ? " (as executor)" : "";
  return `${e.verb} ${e.objectRef?.resource ?? e.requestURI.split("?")[0]}${sub}${dry}${as}`;
}

/** The completed requests of `username` recorded in the audit text. */
export function countRequests(text: string, username: string): RequestCount {
  const out: RequestCount = { byKey: {}, total: 0, failed: 0 };
  const quoted = `"username":"${username}"`;
  for (const line of text.split("\n")) {
    // Most lines are other users': skip them before parsing.
    if (!line.includes(quoted)) continue;
    const e = JSON.parse(line) as AuditEntry;
    if (e.stage !== "ResponseComplete" && e.stage !== "Panic") continue;
    if (e.user?.username !== username) continue;
    const key = requestKey(e);
    out.byKey[key] = (out.byKey[key] ?? 0) + 1;
    out.total++;
    const code = e.responseStatus?.code ?? 0;
    if (code < 200 || code >= 300) out.failed++;
  }
  return out;
}

/** The whole lines of audit text written since `offset` (from the start when the log was rotated since). */
export function auditSince(dataDir: string, offset: number): string {
  const path = auditLogPath(dataDir);
  const size = statSync(path).size;
  let from = offset;
  if (size < offset) {
    log(`audit log rotated during the run: counting from the new file's start (figures of this run are low)`);
    from = 0;
  }
  const buf = Buffer.alloc(size - from);
  const fd = openSync(path, "r");
  try {
    let read = 0;
    while (read < buf.length) {
      const n = readSync(fd, buf, read, buf.length - read, from + read);
      if (n === 0) break;
      read += n;
    }
  } finally {
    closeSync(fd);
  }
  // A line still being written is left out.
  return buf.subarray(0, buf.lastIndexOf(0x0a) + 1).toString("utf8");
}
