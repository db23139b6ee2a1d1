// The entry point's first import (pepr.ts): the V8 settings of v8-settings.ts, applied before
// Pepr, kubernetes-fluent-client and the rest load, so that loading them already runs under them
// (optimize-for-size: a heap of 44 instead of 75 MiB once they are loaded) and before any HTTP
// connection compiles undici's WebAssembly.
//
// An invalid setting anywhere in the environment is not reported here: nothing is applied, and
// pepr.ts's loadConfig() stops the process right after with the variable's name and rule.
import { parseConfig } from "../config";
import { applyV8Settings } from "./v8-settings";

function applyEarly(): string[] {
  try {
    return applyV8Settings(parseConfig(process.env));
  } catch {
    return [];
  }
}

/** The flags set at start-up (for the start-up log line). */
export const V8_FLAGS_APPLIED: readonly string[] = applyEarly();
