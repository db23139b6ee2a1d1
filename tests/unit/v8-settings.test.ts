// lib/runtime/v8-settings.ts: undici's HTTP parser stays on V8's baseline WebAssembly compiler,
// the old generation grows by at most ATB_HEAP_GROWING_PERCENT between full collections, and V8
// optimizes for size; v8-start.ts applies them before anything else loads.
// The measured tests run child processes with and without each flag, set at run time as the
// operator sets it: if a Node or V8 upgrade made a setting a no-op (or its peak went away), they
// say so.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../capabilities/lib/config";
import {
  applyV8Settings,
  heapGrowingFlag,
  LIFTOFF_ONLY,
  OPTIMIZE_FOR_SIZE,
} from "../../capabilities/lib/runtime/v8-settings";

const ROOT = join(__dirname, "..", "..");

describe("applyV8Settings", () => {
  test("by default: WebAssembly on Liftoff only, the old generation grows by 20 % at most, optimize for size", () => {
    const set = jest.fn();
    expect(applyV8Settings(parseConfig({}), set)).toEqual([
      LIFTOFF_ONLY,
      "--heap-growing-percent=20",
      OPTIMIZE_FOR_SIZE,
    ]);
    expect(set.mock.calls).toEqual([[LIFTOFF_ONLY], ["--heap-growing-percent=20"], [OPTIMIZE_FOR_SIZE]]);
  });

  test("ATB_WASM_TIER_UP=true, ATB_HEAP_GROWING_PERCENT=0 and ATB_OPTIMIZE_FOR_SIZE=false leave V8's defaults", () => {
    const set = jest.fn();
    const env = { ATB_WASM_TIER_UP: "true", ATB_HEAP_GROWING_PERCENT: "0", ATB_OPTIMIZE_FOR_SIZE: "false" };
    expect(applyV8Settings(parseConfig(env), set)).toEqual([]);
    expect(set).not.toHaveBeenCalled();
  });

  test("ATB_HEAP_GROWING_PERCENT is passed as given", () => {
    const set = jest.fn();
    applyV8Settings(
      parseConfig({ ATB_WASM_TIER_UP: "1", ATB_HEAP_GROWING_PERCENT: "50", ATB_OPTIMIZE_FOR_SIZE: "0" }),
      set,
    );
    expect(set.mock.calls).toEqual([["--heap-growing-percent=50"]]);
  });

  test.each([
    [{ ATB_WASM_TIER_UP: "fast" }, /ATB_WASM_TIER_UP: must be true or false/],
    [{ ATB_OPTIMIZE_FOR_SIZE: "small" }, /ATB_OPTIMIZE_FOR_SIZE: must be true or false/],
    [{ ATB_HEAP_GROWING_PERCENT: "-5" }, /ATB_HEAP_GROWING_PERCENT: must be a whole number between 0 and 1000/],
    [{ ATB_HEAP_GROWING_PERCENT: "2000" }, /ATB_HEAP_GROWING_PERCENT: must be between 0 and 1000/],
  ])("rejects %p naming the variable", (env, message) => {
    expect(() => parseConfig(env)).toThrow(message);
  });

  test("the entry point's first import applies them, before Pepr or anything else loads", () => {
    const src = readFileSync(join(ROOT, "pepr.ts"), "utf8");
    const imports = [...src.matchAll(/^import .*?["']([^"']+)["'];$/gm)].map(m => m[1]);
    expect(imports[0]).toBe("./capabilities/lib/runtime/v8-start");
    expect(imports).toContain("pepr");
    const start = readFileSync(join(ROOT, "capabilities", "lib", "runtime", "v8-start.ts"), "utf8");
    expect(start).toMatch(/applyV8Settings\(parseConfig\(process\.env\)\)/);
    // Its only imports: the config parser and the settings, neither of which loads Pepr.
    expect([...start.matchAll(/^import .*?["']([^"']+)["'];$/gm)].map(m => m[1])).toEqual([
      "../config",
      "./v8-settings",
    ]);
  });

  test("v8-start sets the configured flags, and nothing on an invalid environment (loadConfig then names it)", () => {
    const flagsSet = (env: Record<string, string>): unknown => {
      const r = spawnSync(
        process.execPath,
        [
          "--import",
          "tsx",
          "-e",
          'import("./capabilities/lib/runtime/v8-start.ts").then(m => console.log(JSON.stringify(m.default.V8_FLAGS_APPLIED)))',
        ],
        { cwd: ROOT, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "", ...env }, timeout: 60_000 },
      );
      expect(r.status).toBe(0);
      return JSON.parse(r.stdout.trim().split("\n").pop()!);
    };
    expect(flagsSet({ ATB_HEAP_GROWING_PERCENT: "30" })).toEqual([
      LIFTOFF_ONLY,
      heapGrowingFlag(30),
      OPTIMIZE_FOR_SIZE,
    ]);
    expect(flagsSet({ ATB_WORKERS: "many" })).toEqual([]);
    expect(() => parseConfig({ ATB_WORKERS: "many" })).toThrow(/ATB_WORKERS/);
  });
});

/** Runs `script` in a child node with `flag` (or none) as its first argument; returns its stdout as a number. */
function measure(script: string, flag: string, env: Record<string, string> = {}): number {
  const r = spawnSync(process.execPath, ["-e", script, flag], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    timeout: 60_000,
  });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return Number(r.stdout);
}

// A local HTTP server, 400 responses through undici (JSON bodies of ~9 KB, as API responses), then
// 1.5 s for V8's background compilation: how far VmHWM rose above the RSS after the first response.
const TIER_UP = `
const { readFileSync } = require("node:fs");
const kb = k => Number(new RegExp(k + ":\\\\s+(\\\\d+)").exec(readFileSync("/proc/self/status", "utf8"))[1]);
if (process.argv[1]) require("node:v8").setFlagsFromString(process.argv[1]);
const undici = require(process.env.UNDICI_PATH);
const body = JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => ({ name: "t" + i, spec: "y".repeat(400) })) });
const srv = require("node:http").createServer((q, r) => r.end(body)).listen(0, "127.0.0.1", async () => {
  const url = "http://127.0.0.1:" + srv.address().port + "/";
  await (await undici.request(url)).body.text();
  const base = kb("VmRSS");
  for (let i = 0; i < 400; i++) await (await undici.request(url)).body.text();
  await new Promise(r => setTimeout(r, 1500));
  process.stdout.write(String((kb("VmHWM") - base) / 1024));
  process.exit(0);
});
`;

test("measured: the WebAssembly tier-up's peak is there with V8's default and gone with Liftoff only", () => {
  const env = { UNDICI_PATH: require.resolve("undici") };
  const tierUp = measure(TIER_UP, "", env);
  const liftoff = measure(TIER_UP, LIFTOFF_ONLY, env);
  // Seen on the project's machine: 30-42 MiB with the default, 1-7 MiB with Liftoff only (what
  // 400 responses add to the heap).
  expect(tierUp - liftoff).toBeGreaterThan(15);
});

// 20,000 objects that stay, then 400,000 that each live for 20,000 allocations: they outlive the
// young generation and die in the old one, as a burst's in-flight work does. The largest old space.
const OLD_GROWTH = `
const v8 = require("node:v8");
if (process.argv[1]) v8.setFlagsFromString(process.argv[1]);
const live = [];
for (let i = 0; i < 20000; i++) live.push({ s: "x".repeat(1000) + i, a: [i, i + 1, i + 2] });
const ring = new Array(20000);
let max = 0;
for (let i = 0; i < 400000; i++) {
  ring[i % ring.length] = { s: "y".repeat(500) + i, a: [i, i], o: { k: i } };
  if (i % 1000 === 0) max = Math.max(max, v8.getHeapSpaceStatistics().find(s => s.space_name === "old_space").space_size);
}
process.stdout.write(String(max / 1048576 + live.length * 0));
`;

test("measured: a growing factor of 20 % keeps the old generation smaller than V8's own", () => {
  const own = measure(OLD_GROWTH, "");
  const tight = measure(OLD_GROWTH, heapGrowingFlag(20));
  // Seen on the project's machine: 75.0 MiB with V8's factor, 46.7-47.2 with 20 %.
  expect(own - tight).toBeGreaterThan(12);
});

// @kubernetes/client-node's index (the largest thing the framework loads when it is not bundled),
// loaded after the flag is set at run time, then a full collection: the heap V8 keeps.
const LOAD_HEAP = `
const v8 = require("node:v8");
if (process.argv[1]) v8.setFlagsFromString(process.argv[1]);
require(process.env.MODULE_PATH);
setTimeout(() => { global.gc(); process.stdout.write(String(process.memoryUsage().heapTotal / 1048576)); }, 1500);
`;

test("measured: optimize-for-size, set at run time, keeps the heap smaller while the framework loads", () => {
  const env = { MODULE_PATH: require.resolve("@kubernetes/client-node") };
  const size = (flag: string): number => {
    const r = spawnSync(process.execPath, ["--expose-gc", "-e", LOAD_HEAP, flag], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, NODE_OPTIONS: "", ...env },
      timeout: 60_000,
    });
    expect(r.status).toBe(0);
    return Number(r.stdout);
  };
  const own = size("");
  const small = size(OPTIMIZE_FOR_SIZE);
  // Seen on the project's machine: 63.8 MiB with V8's default, 39.3-47.6 with the flag.
  expect(own - small).toBeGreaterThan(10);
});
