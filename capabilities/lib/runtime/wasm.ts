// The process's one WebAssembly: undici parses HTTP responses with llhttp compiled to
// WebAssembly, and three copies of undici load it (ours, the one kubernetes-fluent-client uses,
// and Node's own behind fetch). V8 compiles WebAssembly with its baseline compiler, Liftoff, and
// then recompiles hot functions with TurboFan in the background. For llhttp's parser that
// recompilation takes 25-35 MiB for a fraction of a second, once per copy, soon after the first
// responses: the operator's highest RSS of a start with no task at all (docs/benchmarks.md,
// "Where the time and memory go"). Measured on this project's machine: 4000 responses of 9 KB
// through undici used the same CPU with Liftoff only (920-956 ms vs 980-1023 ms) and no peak
// (VmHWM 80 vs 104 MiB). So the operator keeps Liftoff's code (ATB_WASM_TIER_UP=true restores
// V8's default).
//
// V8 reads the flag when it compiles a module; undici compiles llhttp on its first connection,
// so this must run before the first request (pepr.ts calls it right after loading the config).
// Node documents setting V8 flags after start-up as unsupported in general; this one only
// selects which compiler later WebAssembly compilations use.
import { setFlagsFromString } from "node:v8";
import type { OperatorConfig } from "../config";

export const LIFTOFF_ONLY = "--liftoff-only";

/** Keeps WebAssembly on the baseline compiler unless the config allows tier-up; true if it did. */
export function limitWasmTiering(
  config: Pick<OperatorConfig, "wasmTierUp">,
  setFlags: (flags: string) => void = setFlagsFromString,
): boolean {
  if (config.wasmTierUp) return false;
  setFlags(LIFTOFF_ONLY);
  return true;
}
