// lib/runtime/wasm.ts: undici's HTTP parser stays on V8's baseline WebAssembly compiler. The
// last test measures, in child processes, the peak that the setting removes: if a Node or V8
// upgrade made the tier-up cheap (or the flag a no-op), it says so.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../capabilities/lib/config";
import { LIFTOFF_ONLY, limitWasmTiering } from "../../capabilities/lib/runtime/wasm";

const ROOT = join(__dirname, "..", "..");

describe("limitWasmTiering", () => {
  test("by default, WebAssembly stays on Liftoff", () => {
    const set = jest.fn();
    expect(limitWasmTiering(parseConfig({}), set)).toBe(true);
    expect(set).toHaveBeenCalledWith(LIFTOFF_ONLY);
  });

  test("ATB_WASM_TIER_UP=true leaves V8's default", () => {
    const set = jest.fn();
    expect(limitWasmTiering(parseConfig({ ATB_WASM_TIER_UP: "true" }), set)).toBe(false);
    expect(set).not.toHaveBeenCalled();
  });

  test("ATB_WASM_TIER_UP must be a boolean", () => {
    expect(() => parseConfig({ ATB_WASM_TIER_UP: "fast" })).toThrow(/ATB_WASM_TIER_UP: must be true or false/);
  });

  test("the entry point applies it after the config and before Pepr starts anything", () => {
    const src = readFileSync(join(ROOT, "pepr.ts"), "utf8");
    const at = (s: string) => {
      const i = src.indexOf(s);
      expect(i).toBeGreaterThanOrEqual(0);
      return i;
    };
    const call = at("limitWasmTiering(config);");
    expect(at("const config = loadConfig();")).toBeLessThan(call);
    expect(call).toBeLessThan(at("new OperatorRuntime("));
    expect(call).toBeLessThan(at("new PeprModule("));
    expect(call).toBeLessThan(at("module.start("));
  });
});

// A child process: a local HTTP server, 400 requests through undici (JSON bodies of ~9 KB, as
// API responses), then 1.5 s for V8's background compilation; prints how far VmHWM rose above
// the RSS after the first response.
const CHILD = `
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

function peakGrowthMiB(flags: string): number {
  const r = spawnSync(process.execPath, ["-e", CHILD, flags], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "", UNDICI_PATH: require.resolve("undici") },
    timeout: 30_000,
  });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return Number(r.stdout);
}

test("measured: the tier-up's peak is there with V8's default and gone with Liftoff only", () => {
  const tierUp = peakGrowthMiB("");
  const liftoff = peakGrowthMiB(LIFTOFF_ONLY);
  // Seen on the project's machine: 30-42 MiB with the default, 1-7 MiB with Liftoff only (what
  // 400 responses add to the heap).
  expect(tierUp - liftoff).toBeGreaterThan(15);
});
