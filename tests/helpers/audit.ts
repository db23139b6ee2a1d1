// Reads the local API server's audit log (tools/controlplane/cluster.ts enables it for writes to
// workloads, config and AgentTasks) so tests can count what the operator really wrote, as the
// API server recorded it.
import { existsSync, readFileSync } from "node:fs";
import { auditLogPath } from "../../tools/controlplane/cluster";
import { USER_AGENT } from "../../capabilities/lib/kube";

export interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  userAgent?: string;
  /** Who sent the request; with impersonation, the one it acted as is `impersonatedUser`. */
  user?: { username?: string; groups?: string[] };
  impersonatedUser?: { username?: string; groups?: string[] };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
}

export function auditEvents(dataDir: string): AuditEvent[] {
  const path = auditLogPath(dataDir);
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map(l => JSON.parse(l) as AuditEvent);
}

/** The audit policy also records reads of ConfigMaps and Secrets; only these verbs write. */
const WRITE_VERBS = new Set(["create", "update", "patch", "delete"]);

/** Successful, non-dry-run writes made by the operator, keyed "resource[/sub] ns/name". */
export function operatorWrites(dataDir: string, filter: (e: AuditEvent) => boolean = () => true): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of auditEvents(dataDir)) {
    if (e.stage !== "ResponseComplete" || !e.userAgent?.startsWith(USER_AGENT)) continue;
    if (!WRITE_VERBS.has(e.verb) || /[?&]dryRun=/.test(e.requestURI)) continue;
    const code = e.responseStatus?.code ?? 0;
    if (code < 200 || code >= 300 || !filter(e)) continue;
    const r = e.objectRef ?? {};
    const key = `${r.resource}${r.subresource ? `/${r.subresource}` : ""} ${r.namespace}/${r.name}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}
