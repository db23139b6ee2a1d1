// Structured JSON logging (winston) shared by the operator, the reference broker and the tools.
// Every line passes through a redaction format: anything shaped like a JWT/JWS and any field
// whose name says it holds a secret is replaced before it is written, so a token or Secret value
// cannot reach stdout even when a caller passes a whole object by mistake.
import winston from "winston";

const JWS = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
const SECRET_KEYS = /^(poatoken|token|authorization|password|secret|data|stringdata|privatekey|key)$/i;
export const REDACTED = "[REDACTED]";

/** Replaces JWS-shaped substrings in a string. */
export function redactString(value: string): string {
  return value.replace(JWS, REDACTED);
}

/** Deep copy of a value with secret-named fields and JWS-shaped strings redacted. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redactString(value);
  if (value === null || typeof value !== "object" || depth > 8) return value;
  if (value instanceof Error) return { name: value.name, message: redactString(value.message) };
  if (Array.isArray(value)) return value.map(v => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      SECRET_KEYS.test(k) && v !== undefined && v !== null && typeof v !== "boolean" ? REDACTED : redact(v, depth + 1);
  }
  return out;
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
