// Generated regions inside hand-written files. A region is the lines between a line containing
// `<name>:start` and the next line containing `<name>:end` (in whatever comment syntax the file
// uses); everything outside the markers is left exactly as it is.

/** `text` with region `name` replaced by render(indent), indent being the start marker's. */
export function replaceRegion(
  text: string,
  file: string,
  name: string,
  render: (indent: string) => readonly string[],
): string {
  const lines = text.split("\n");
  const start = lines.findIndex(l => l.includes(`${name}:start`));
  const end = lines.findIndex((l, i) => i > start && l.includes(`${name}:end`));
  if (start < 0 || end < 0) throw new Error(`${file}: markers ${name}:start and ${name}:end not found`);
  const indent = /^\s*/.exec(lines[start])![0];
  return [...lines.slice(0, start + 1), ...render(indent), ...lines.slice(end)].join("\n");
}
