// Deep JSON at admission. Pepr copies and compares every admission object recursively (ramda's
// clone, fast-json-patch's compare); a task whose payload nests a few thousand levels overflows the
// stack there, and the API server reports only "failed calling webhook ... Internal Server Error".
// The module's beforeHook runs before any of that: it cuts, in place and without recursion, every
// value nested deeper than ADMISSION_MAX_DEPTH below the request's object and oldObject and puts a
// marker there. The mutating webhook then patches only what it sets (labels, annotations), so
// nothing of the cut reaches the stored object; the validating webhook, which gets the same cut,
// refuses the task naming the field. No valid task nests this deep (change parts stop at 64 levels).

/** Levels below the object's root; deeper values are cut before Pepr touches the request. */
export const ADMISSION_MAX_DEPTH = 100;
/** What replaces a cut value (a user who writes it gets the same refusal, which is harmless). */
export const TOO_DEEP = `<atb: nested deeper than ${ADMISSION_MAX_DEPTH} levels>`;
/** Path segments shown in a refusal (the rest of a path thousands of levels long is elided). */
const PATH_SHOWN = 6;

interface Slot {
  holder: Record<string | number, unknown>;
  key: string | number;
  depth: number;
}

function children(v: unknown, depth: number, out: Slot[]): void {
  if (v === null || typeof v !== "object") return;
  const holder = v as Record<string | number, unknown>;
  if (Array.isArray(v)) for (let i = 0; i < v.length; i++) out.push({ holder, key: i, depth });
  else for (const key of Object.keys(v)) out.push({ holder, key, depth });
}

/** Cuts, in place, every object or array nested deeper than `max` levels below `root`; returns how many. */
export function cutDeep(root: unknown, max = ADMISSION_MAX_DEPTH): number {
  const stack: Slot[] = [];
  children(root, 1, stack);
  let cut = 0;
  for (let slot = stack.pop(); slot; slot = stack.pop()) {
    const v = slot.holder[slot.key];
    if (v === null || typeof v !== "object") continue;
    if (slot.depth >= max) {
      slot.holder[slot.key] = TOO_DEEP;
      cut++;
    } else children(v, slot.depth + 1, stack);
  }
  return cut;
}

/** The module's beforeHook: bounds the depth of what Pepr will copy (see the file comment). */
export function boundAdmissionDepth(request: { object?: unknown; oldObject?: unknown } | undefined): void {
  if (!request || typeof request !== "object") return;
  cutDeep(request.object);
  cutDeep(request.oldObject);
}

/**
 * The refusals for values cut by boundAdmissionDepth, one per top-level field that holds any
 * (`spec.payload.manifest.d[0]…: nested deeper than 100 levels`), in a stable order.
 */
export function depthErrors(root: unknown): string[] {
  const found = new Map<string, string>();
  const stack: { v: unknown; path: (string | number)[] }[] = [{ v: root, path: [] }];
  for (let e = stack.pop(); e; e = stack.pop()) {
    const { v, path } = e;
    if (v === TOO_DEEP) {
      const top = path.slice(0, 2).join(".");
      if (!found.has(top)) found.set(top, `${render(path)}: nested deeper than ${ADMISSION_MAX_DEPTH} levels`);
      continue;
    }
    // A cut object is at most ADMISSION_MAX_DEPTH levels deep, so this walk is bounded.
    if (v === null || typeof v !== "object" || path.length > ADMISSION_MAX_DEPTH) continue;
    if (Array.isArray(v)) v.forEach((x, i) => stack.push({ v: x, path: [...path, i] }));
    else for (const [k, x] of Object.entries(v)) stack.push({ v: x, path: [...path, k] });
  }
  return [...found.keys()].sort().map(k => found.get(k) as string);
}

function render(path: (string | number)[]): string {
  let s = "";
  for (const p of path.slice(0, PATH_SHOWN)) s += typeof p === "number" ? `[${p}]` : s ? `.${p}` : p;
  return path.length > PATH_SHOWN ? `${s}…` : s;
}
