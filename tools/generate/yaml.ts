// A small YAML writer for the generated parts of crds/agenttask.yaml. Its output is already in the
// form Prettier keeps (flow collections only when they fit on one line, long text as folded block
// scalars, double quotes only where a plain scalar would change meaning), so `npm run generate`
// and `prettier --check` never disagree about the file.

const WIDTH = 120;
/** Plain scalars YAML would read as something other than a string. */
const NOT_STRING = /^(true|false|null|yes|no|on|off|y|n|~|[-+.]?[0-9].*)$/i;

export type YamlValue = string | number | boolean | YamlValue[] | { [key: string]: YamlValue };

const isMap = (v: YamlValue): v is { [key: string]: YamlValue } =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Whether `v` reads back as the same string without quotes (inside [] or {} when inFlow). */
function plain(v: string, inFlow: boolean): boolean {
  if (!/^[A-Za-z(.][\x20-\x7e]*$/.test(v) || NOT_STRING.test(v)) return false;
  if (v.endsWith(" ") || v.endsWith(":") || v.includes(": ") || v.includes(" #") || /["\\]/.test(v)) return false;
  return !(inFlow && /[,[\]{}]/.test(v));
}

export function scalar(v: string | number | boolean, inFlow = false): string {
  if (typeof v !== "string") return String(v);
  return plain(v, inFlow) ? v : JSON.stringify(v);
}

/** The one-line flow form of a value. */
function flow(v: YamlValue): string {
  if (Array.isArray(v)) return `[${v.map(flow).join(", ")}]`;
  if (isMap(v)) {
    const entries = Object.entries(v);
    return entries.length ? `{ ${entries.map(([k, x]) => `${scalar(k, true)}: ${flow(x)}`).join(", ")} }` : "{}";
  }
  return scalar(v, true);
}

/** Words of `text` in lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

/** `key: value` at `indent`, as lines: flow when it fits, else block (long text folded). */
export function entry(key: string, value: YamlValue, indent: string): string[] {
  const head = `${indent}${scalar(key)}:`;
  const oneLine = `${head} ${isMap(value) || Array.isArray(value) ? flow(value) : scalar(value)}`;
  if (oneLine.length <= WIDTH) return [oneLine];
  if (typeof value === "string") return folded(head, value, indent);
  if (Array.isArray(value)) return [head, ...value.map(item => `${indent}  - ${flow(item)}`)];
  if (isMap(value)) return [head, ...mapping(value, `${indent}  `)];
  return [oneLine];
}

/** `head >-` and the text wrapped below it: newlines in a folded scalar read as spaces. */
export function folded(head: string, text: string, indent: string): string[] {
  return foldedLines(head, wrap(text, WIDTH - indent.length - 2), indent);
}

/** `head >-` and the given lines below it (for text whose line breaks help the reader, e.g. CEL). */
export function foldedLines(head: string, lines: readonly string[], indent: string): string[] {
  return [`${head} >-`, ...lines.map(l => `${indent}  ${l.trim()}`)];
}

/** Every entry of a map at `indent`. */
export function mapping(value: { [key: string]: YamlValue }, indent: string): string[] {
  return Object.entries(value).flatMap(([k, v]) => entry(k, v, indent));
}
