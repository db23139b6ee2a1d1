// Structured JSON logging (winston) shared by the operator, the reference broker and the tools.
// Every line passes through a redaction format: anything shaped like a JWT/JWS and any field
// whose name says it holds a secret is replaced before it is written, so a token or Secret value
// cannot reach stdout even when a caller passes a whole object by mistake.
import winston from "winston";

/**
 * Maximal runs of base64url characters and dots. Each run is matched once, left to right, and
 * the pattern cannot backtrack into itself (every repetition starts with a dot), so a scan is
 * linear in the text: the earlier `eyJ[...]{5,}\.` pattern took seconds on 60 KB of "eyJ".
 */
const RUN = /[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)*/g;
const SECRET_KEYS = /^(poatoken|token|authorization|password|secret|data|stringdata|privatekey|key)$/i;
export const REDACTED = "[REDACTED]";
/** Longest string a log line keeps (after redaction); the rest is counted, not written. */
export const MAX_LOGGED_CHARS = 4096;

/** Whether a run of base64url segments holds a JWS: an `eyJ` header, then two more segments. */
function holdsJws(run: string): boolean {
  const parts = run.split(".");
  for (let i = 0; i + 2 < parts.length; i++) {
    const at = parts[i].indexOf("eyJ");
    if (at >= 0 && parts[i].length - at >= 8 && parts[i + 1].length >= 5) return true;
  }
  return false;
}

/** Replaces every run that holds a JWS-shaped token, whole (linear time, whatever the input). */
export function redactString(value: string): string {
  if (!value.includes("eyJ")) return value;
  return value.replace(RUN, run => (run.includes(".") && holdsJws(run) ? REDACTED : run));
}

/** Redacted, then cut to `max` characters with a note of how many were left out. */
export function boundedString(value: string, max = MAX_LOGGED_CHARS): string {
  const clean = redactString(value);
  return clean.length <= max ? clean : `${clean.slice(0, max)}...(${clean.length - max} more characters)`;
}

/** Deep copy of a value with secret-named fields and JWS-shaped strings redacted, strings bounded. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return boundedString(value);
  if (value === null || typeof value !== "object" || depth > 8) return value;
  if (value instanceof Error) return { name: value.name, message: boundedString(value.message) };
  if (Array.isArray(value)) return value.map(v => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = holdsSecret(k, v) ? REDACTED : redact(v, depth + 1);
  return out;
}

/** A field whose name says it holds a secret, with a value to hide (not absent, not a flag). */
function holdsSecret(key: string, v: unknown): boolean {
  return SECRET_KEYS.test(key) && v !== undefined && v !== null && typeof v !== "boolean";
}

const redactFormat = winston.format(info => {
  const copy = redact({ ...info }) as Record<string, unknown>;
  for (const key of Object.keys(info)) delete (info as Record<string, unknown>)[key];
  return Object.assign(info, copy);
});

export type Logger = winston.Logger;

/** Creates the root logger. Level from the caller (config), JSON with ISO time. */
export function createLogger(level = "info", component = "operator", stream?: NodeJS.WritableStream): Logger {
  const transport = stream
    ? new winston.transports.Stream({ stream })
    : new winston.transports.Console({ stderrLevels: [] });
  return winston.createLogger({
    level,
    defaultMeta: { component },
    format: winston.format.combine(winston.format.timestamp(), redactFormat(), winston.format.json()),
    transports: [transport],
  });
}
