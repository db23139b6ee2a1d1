// GIVEN the shared fixtures in tests/fixtures/change-digest/ (a change per action plus RFC 8785
// edge cases), whose digests capabilities/lib/change-digest.ts computed
// WHEN each way an agent can compute a task's change digest runs on each fixture: the TypeScript
// client (taskChangeDigest), `npm run poa -- digest`, the Python client (change_digest.py with the
// system python3, and submit_task.py --print-change-digest in .venv) and the Go client
// (atb-submit --print-change-digest, built from clients/go); a rollback's resolution and the
// digests of Secret values given by reference passed as each one takes them
// THEN all of them print the fixture's digest; and on random JSON (a deploy manifest of anything
// fast-check makes up) Python and Go agree with TypeScript too.
//
// Each client gets the payload exactly as the fixture file writes it (numbers such as -0, 100.0
// or 9007199254740993 included), so each one parses it the way it parses an agent's --payload.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { taskChangeDigest } from "../../clients/typescript";
import { changeDigest } from "../../capabilities/lib/change-digest";
import { ensureVenv, ROOT, VENV_PYTHON } from "../helpers/python-venv";
import { makeTempDir } from "./helpers";

const FIXTURES = join(ROOT, "tests", "fixtures", "change-digest");
const tmp = makeTempDir("atb-change-digest-");
const GO_BIN = join(tmp.dir, "atb-submit");

interface Fixture {
  file: string;
  action: string;
  kind: string;
  /** The payload's JSON text as the file writes it. */
  payloadText: string;
  payload: Record<string, unknown>;
  resolved?: { revision?: number; templateHash?: string | null; valueDigests?: Record<string, string> };
  digest: string;
}

/** The text of a top-level member of a JSON object text (its value exactly as written). */
function rawMember(text: string, name: string): string {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
    else if (c === '"') {
      if (depth === 1 && text.startsWith(`"${name}"`, i)) return valueAt(text, text.indexOf(":", i) + 1);
      inString = true;
    }
  }
  throw new Error(`no top-level member ${name}`);
}

/** The JSON value (an object here) starting at or after `from`. */
function valueAt(text: string, from: number): string {
  const start = text.indexOf("{", from);
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if ((c === "}" || c === "]") && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error("unterminated value");
}

const fixtures: Fixture[] = readdirSync(FIXTURES)
  .filter(f => f.endsWith(".json"))
  .sort()
  .map(file => {
    const text = readFileSync(join(FIXTURES, file), "utf8");
    const parsed = JSON.parse(text) as Omit<Fixture, "file" | "payloadText">;
    return { ...parsed, file, payloadText: rawMember(text, "payload") };
  });

/**
 * The resolution options every CLI takes: a rollback's --revision (when resolved says) and
 * --template-hash, and --value-digest KEY=sha256:... for each Secret value given by reference.
 */
function resolutionArgs(f: Fixture): string[] {
  if (!f.resolved) return [];
  const digests = Object.entries(f.resolved.valueDigests ?? {}).flatMap(([k, d]) => ["--value-digest", `${k}=${d}`]);
  if (f.resolved.templateHash === undefined) return digests;
  const revision = f.resolved.revision === undefined ? [] : ["--revision", String(f.resolved.revision)];
  return [...revision, "--template-hash", f.resolved.templateHash ?? "none", ...digests];
}

function run(cmd: string, args: string[], cwd = ROOT): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) return `exit ${r.status}: ${r.stderr.trim().split("\n").pop()}`;
  return r.stdout.trim();
}

const clients: Record<string, (f: Fixture) => string> = {
  typescript: f =>
    taskChangeDigest({ action: f.action, target: { kind: f.kind }, payload: f.payload } as never, f.resolved),
  "npm run poa -- digest": f =>
    run("npm", [
      "run",
      "-s",
      "poa",
      "--",
      "digest",
      "--action",
      f.action,
      "--kind",
      f.kind,
      "--payload",
      f.payloadText,
      ...resolutionArgs(f),
    ]),
  "python3 change_digest.py": f =>
    run("python3", [
      "clients/python/change_digest.py",
      "--action",
      f.action,
      "--kind",
      f.kind,
      "--payload",
      f.payloadText,
      ...resolutionArgs(f),
    ]),
  "submit_task.py --print-change-digest": f =>
    run(VENV_PYTHON, [
      "clients/python/submit_task.py",
      "--print-change-digest",
      "--action",
      f.action,
      "--target",
      `${f.kind}/ns/name`,
      "--payload",
      f.payloadText,
      ...resolutionArgs(f),
    ]),
  "atb-submit --print-change-digest": f =>
    run(GO_BIN, [
      "--print-change-digest",
      "--action",
      f.action,
      "--target",
      `${f.kind}/ns/name`,
      "--payload",
      f.payloadText,
      ...resolutionArgs(f),
    ]),
};

beforeAll(async () => {
  mkdirSync(join(tmp.dir, "logs"), { recursive: true });
  const progress = (line: string) => process.stderr.write(`[change-digest-clients] ${line}\n`);
  await ensureVenv(join(tmp.dir, "logs"), progress);
  progress("building the Go client (cached by the Go build cache after the first build of client-go)...");
  const go = spawnSync("go", ["build", "-o", GO_BIN, "."], {
    cwd: join(ROOT, "clients", "go"),
    env: { ...process.env, GOTOOLCHAIN: "local" },
    encoding: "utf8",
    timeout: 20 * 60_000,
  });
  if (go.status !== 0) throw new Error(`go build failed (exit ${go.status}): ${go.stderr.slice(-4000)}`);
}, 25 * 60_000);

afterAll(() => tmp.remove());

test("the fixtures cover every action and the edge cases", () => {
  expect(new Set(fixtures.map(f => f.action))).toEqual(
    new Set(["scale", "restart", "update-config", "deploy", "rollback", "patch"]),
  );
  expect(fixtures.filter(f => f.resolved?.valueDigests).map(f => f.file)).toEqual(["update-config-secret-ref.json"]);
  expect(fixtures.find(f => f.file === "edge-numbers-nesting.json")!.payloadText).toMatch(
    /-0, .*100\.0.*9007199254740993/,
  );
});

test.each(Object.keys(clients))("%s prints each fixture's digest", name => {
  const got = Object.fromEntries(fixtures.map(f => [f.file, clients[name]!(f)]));
  expect(got).toEqual(Object.fromEntries(fixtures.map(f => [f.file, f.digest])));
});

test("on random JSON, Python and Go digest a deploy manifest as TypeScript does", () => {
  // Well-formed Unicode only: a lone surrogate has no UTF-8 form (docs/authorization.md).
  const values = fc.sample(fc.jsonValue({ maxDepth: 4, stringUnit: "grapheme" }), { numRuns: 60, seed: 8785 });
  const rows = values.map(value => {
    const text = JSON.stringify({ manifest: value });
    // The deploy's canonical change is {manifest}: the payload itself.
    const want = changeDigest(JSON.parse(text) as unknown);
    const args = ["--action", "deploy", "--payload", text];
    return {
      text,
      python: run("python3", ["clients/python/change_digest.py", ...args]) === want,
      go: run(GO_BIN, ["--print-change-digest", "--target", "Deployment/ns/name", ...args]) === want,
    };
  });
  expect(rows.filter(r => !r.python || !r.go)).toEqual([]);
});
