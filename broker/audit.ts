// The audit trail: one JSON line per decide request (allow, deny or error), joinable with the
// operator's logs through request_id. Never contains the token: records are built from chosen
// fields only and pass through the logger's redaction as a second guard.
import { createWriteStream } from "node:fs";
import { redact } from "../capabilities/lib/logger";

export interface AuditRecord {
  request_id: string;
  decision_id: string;
  poa_jti: string | null;
  agent_identity: string | null;
  /** The username of the Kubernetes identity that created the task (the request's `requester`), if sent. */
  requester_identity: string | null;
  operator_identity: string | null;
  action: string | null;
  target: unknown;
  decision: "allow" | "deny" | "error";
  reason: string;
  risk_tier: string | null;
  policy_revision: string;
  evaluate_ms: number;
  /** Set on the token preflight's line (POST /api/v1/verify) and a plan's (POST /api/v1/plan); absent on decisions. */
  phase?: "preflight" | "plan";
}

export interface AuditSink {
  write(record: AuditRecord): void;
  close(): Promise<void>;
}

/** dest: "stdout", "stderr", a file path (appended), or a stream (tests). */
export function createAuditSink(dest: string | NodeJS.WritableStream): AuditSink {
  const owned = typeof dest === "string" && dest !== "stdout" && dest !== "stderr";
  const stream: NodeJS.WritableStream =
    dest === "stdout"
      ? process.stdout
      : dest === "stderr"
        ? process.stderr
        : typeof dest === "string"
          ? createWriteStream(dest, { flags: "a", mode: 0o600 })
          : dest;
  return {
    write(record) {
      stream.write(`${JSON.stringify(redact({ ts: new Date().toISOString(), type: "audit", ...record }))}\n`);
    },
    close() {
      if (!owned) return Promise.resolve();
      return new Promise(resolve => stream.end(resolve));
    },
  };
}
