// Three V8 settings the operator applies to itself at start-up, all for its memory peaks, each
// measured (docs/benchmarks.md, "The start-up and restart peaks (2026-12-01)" and "Memory: the
// module bundled with its framework") and each with a variable that restores V8's default. They
// are set by v8-start.ts, the entry point's first import: before Pepr and the rest load.
//
// WebAssembly on Liftoff only (ATB_WASM_TIER_UP=false). The process's one WebAssembly is undici's
// HTTP parser, llhttp, loaded by three copies of undici (ours, the one kubernetes-fluent-client
// uses, Node's own behind fetch). V8 compiles WebAssembly with its baseline compiler, Liftoff, and
// then recompiles hot functions with TurboFan in the background; for llhttp's parser that takes
// 25-35 MiB for a fraction of a second, once per copy, soon after the first responses: it was the
// operator's highest RSS of a start with no task at all. Measured on this project's machine: 4000
// responses of 9 KB through undici used the same CPU with Liftoff only (920-956 ms vs 980-1023 ms)
// and no peak (VmHWM 80 vs 104 MiB). V8 reads the flag when it compiles a module, and undici
// compiles llhttp on its first connection: this must run before the first request.
//
// A tighter old generation (ATB_HEAP_GROWING_PERCENT=20). After a full collection V8 lets the old
// generation grow by a factor it picks from its GC and allocation speeds (often 1.5-2x or more)
// before the next one. In a burst, the objects of 1000 tasks in flight (responses, promises)
// outlive the young generation and die in the old one, which then grew 47 → 85 MiB before V8
// collected it. With the factor fixed at 1.2 (V8 reads it at every collection), `scale` bursts of
// 1000 tasks peaked at 170-176 MiB against 197-236, for the same CPU per task.
//
// Optimize for size (ATB_OPTIMIZE_FOR_SIZE=true): V8's own mode for memory over speed (a smaller
// young generation, more eager compaction and bytecode flushing). Loading Pepr's framework with it
// set first: heap 44 instead of 75 MiB. Bursts of 1000 `scale` tasks with the bundled module
// peaked at 131-134 MiB with it against 153-155 without, at the same CPU per task (9-12 s per 1000);
// a microbenchmark of pure allocation runs up to 2x slower, which the operator, waiting on the API
// server and the broker, does not show.
//
// Node documents setting V8 flags after start-up as unsupported in general; these two are read
// each time V8 compiles WebAssembly or sizes the heap after a collection, and
// tests/unit/v8-settings.test.ts measures that both still take effect this way.
import { setFlagsFromString } from "node:v8";
import type { OperatorConfig } from "../config";

export const LIFTOFF_ONLY = "--liftoff-only";
export const OPTIMIZE_FOR_SIZE = "--optimize-for-size";
export const heapGrowingFlag = (percent: number): string => `--heap-growing-percent=${percent}`;

/** Applies the settings the config asks for (v8-start.ts, before anything loads); returns the flags set. */
export function applyV8Settings(
  config: Pick<OperatorConfig, "wasmTierUp" | "heapGrowingPercent" | "optimizeForSize">,
  setFlags: (flags: string) => void = setFlagsFromString,
): string[] {
  const flags: string[] = [];
  if (!config.wasmTierUp) flags.push(LIFTOFF_ONLY);
  if (config.heapGrowingPercent > 0) flags.push(heapGrowingFlag(config.heapGrowingPercent));
  if (config.optimizeForSize) flags.push(OPTIMIZE_FOR_SIZE);
  for (const f of flags) setFlags(f);
  return flags;
}
