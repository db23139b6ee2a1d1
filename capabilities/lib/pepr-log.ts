// Pepr's own logger never prints a token or a value (issue 14; the "secrets stay secret"
// invariant). Pepr 1.1.4 logs through one pino instance, exported as `Log`; it takes its level
// from LOG_LEVEL when pepr is first loaded, and at debug it prints whole admission requests and
// every watched AgentTask (node_modules/pepr/src/lib/controller/index.ts "Incoming request body",
// processors/watch-processor.ts "Watch event ... received", ...), at info the admission
// responses; our winston logger's redaction (logger.ts) never sees those lines.
//
// The redaction sits on the last step of pino's write path: `hooks.streamWrite`, which pino
// calls with every finished JSON line just before it goes to the destination (stdout, or the
// pretty-printing transport), whatever the level, the call's arguments (merging object, format
// arguments, Error), and for child loggers too (they inherit the parent's hooks). The hook is
// read on each write, so it holds across later level changes, which re-create pino's level
// methods (a wrapper of Log.debug & co. would be dropped by them and miss children). The hooks
// symbol is pino's public `Symbol.for("pino.hooks")`. Each line is parsed and redacted by
// structure, then printed again:
// - fields that hold secrets by name (poaToken, attestations, token, data, stringData, password,
//   key, ...) are replaced whole, wherever they are;
// - under a `payload` (a task's spec.payload: update-config values, patch values, a manifest's
//   env) every string is replaced; numbers and booleans (replicas, revision) stay;
// - every other string is passed through the JWS redaction (a token under any other name, in
//   a message or an error) and bounded; a string that holds JSON (kubectl's
//   last-applied-configuration annotation, a stringified object in a message) is redacted as
//   that JSON, and a base64 admission `patch` as the JSON it encodes;
// - anything nested deeper than MAX_DEPTH is replaced, and a line that cannot be parsed or
//   redacted is replaced by a notice: the redactor fails closed.
import { Log } from "pepr";
import { REDACTED, boundedString } from "./logger";

/** pino's public symbol for a logger's hooks (pino/lib/symbols.js: Symbol.for("pino.hooks")). */
const HOOKS = Symbol.for("pino.hooks");
const SECRET_KEYS = new Set([
  "poatoken",
  "attestations",
  "token",
  "authorization",
  "password",
  "secret",
  "data",
  "stringdata",
  "privatekey",
  "key",
]);
const MAX_DEPTH = 32;
/** Strings that look like JSON and are longer than this are replaced, not parsed. */
const MAX_JSON_STRING = 1 << 20;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function parseJson(s: string): Json | undefined {
  try {
    return JSON.parse(s) as Json;
  } catch {
    return undefined;
  }
}

/**
 * A string that holds a JSON object or array, redacted as that JSON (one too long to parse is
 * replaced whole); undefined for other strings.
 */
function redactJsonString(s: string, inPayload: boolean, depth: number): string | undefined {
  const t = s.trimStart();
  if (t[0] !== "{" && t[0] !== "[") return undefined;
  if (s.length > MAX_JSON_STRING) return REDACTED;
  const parsed = parseJson(s);
  if (parsed === undefined || typeof parsed !== "object" || parsed === null) return undefined;
  return JSON.stringify(redactValue(parsed, inPayload, depth + 1));
}

/** An admission response's `patch` (base64 of a JSON Patch), as the redacted JSON it encodes. */
function redactBase64Patch(s: string, depth: number): Json | undefined {
  if (s.length > MAX_JSON_STRING || s.length % 4 !== 0 || !BASE64.test(s)) return undefined;
  const parsed = parseJson(Buffer.from(s, "base64").toString("utf8"));
  if (parsed === undefined || typeof parsed !== "object" || parsed === null) return undefined;
  return redactValue(parsed, false, depth + 1);
}

function redactValue(v: Json, inPayload: boolean, depth: number): Json {
  if (depth > MAX_DEPTH) return REDACTED;
  if (typeof v === "string") return redactText(v, inPayload, depth);
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(x => redactValue(x, inPayload, depth + 1));
  const out: { [k: string]: Json } = {};
  for (const [k, x] of Object.entries(v)) out[k] = redactField(k, x, inPayload, depth);
  return out;
}

function redactText(s: string, inPayload: boolean, depth: number): Json {
  const json = redactJsonString(s, inPayload, depth);
  if (json !== undefined) return boundedString(json);
  return inPayload ? REDACTED : boundedString(s);
}

function redactField(k: string, x: Json, inPayload: boolean, depth: number): Json {
  if (SECRET_KEYS.has(k.toLowerCase()) && x !== null && typeof x !== "boolean") return REDACTED;
  if (k === "patch" && typeof x === "string") return redactBase64Patch(x, depth) ?? redactValue(x, true, depth + 1);
  return redactValue(x, inPayload || k === "payload", depth + 1);
}

/**
 * One line as pino wrote it (a JSON object and a newline), with tokens and values redacted. Never
 * throws: a line it cannot handle becomes a notice with the line's level.
 */
export function redactPeprLine(line: string): string {
  try {
    const parsed = parseJson(line);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return notice(line);
    return `${JSON.stringify(redactValue(parsed, false, 0))}\n`;
  } catch {
    return notice(line);
  }
}

function notice(line: unknown): string {
  const level = typeof line === "string" ? /^\{"level":(\d{1,3})[,}]/.exec(line)?.[1] : undefined;
  return `${JSON.stringify({ level: level ? Number(level) : 50, msg: `${REDACTED}: a Pepr log line that could not be redacted` })}\n`;
}

type Hooks = { streamWrite?: (s: string) => string } & Record<string, unknown>;

/** Loggers that already redact (redactPeprLogs is idempotent). */
const redacting = new WeakSet<object>();

/**
 * Installs the redaction on Pepr's logger (idempotent). Call it before Pepr handles anything:
 * pepr.ts does, first thing after the imports, both from the sources and in the bundle (which
 * loads pepr from node_modules, so `Log` here is the instance Pepr's controller logs through).
 */
export function redactPeprLogs(log: object = Log): void {
  const target = log as Record<symbol, Hooks | undefined>;
  const hooks = target[HOOKS];
  if (!hooks || typeof hooks !== "object")
    throw new Error("Pepr's logger has no pino hooks: its lines cannot be redacted (pino changed?)");
  if (redacting.has(log)) return;
  const previous = hooks.streamWrite;
  // A new hooks object on the logger itself: pino shares its default hooks object between
  // instances made without hooks, so it is not changed in place.
  target[HOOKS] = {
    ...hooks,
    streamWrite: previous ? (s: string) => redactPeprLine(previous(s)) : redactPeprLine,
  };
  redacting.add(log);
}
