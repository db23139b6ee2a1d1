// The module's entry point: the capabilities and the start-up order. The actions are listed in
// capabilities/registry.ts (adding one is a folder plus one line there, then `npm run generate`).
// First, before Pepr and its dependencies load: the V8 settings for memory (lib/runtime/v8-settings.ts).
import "./capabilities/lib/runtime/v8-start";
import { PeprModule } from "pepr";
import cfg from "./package.json";
import { agentTaskCapability } from "./capabilities/agent-task";
import { applyPeprSettings, loadConfig } from "./capabilities/lib/config";
import { boundAdmissionDepth } from "./capabilities/lib/admission-depth";
import { redactPeprLogs } from "./capabilities/lib/pepr-log";
import { OperatorRuntime } from "./capabilities/lib/runtime";
import { ACTION_MODULES, actions } from "./capabilities/registry";

// First of all: Pepr's own logger (LOG_LEVEL=debug prints whole admission requests and tasks)
// writes every line through our redaction of tokens, attestations and payload values.
redactPeprLogs();
const config = loadConfig();
// Pepr's Reconcile queues: one per kind (PEPR_RECONCILE_STRATEGY, default "kind" here), not one
// per task name kept forever (Pepr's default); our callbacks only hand keys to the runtime.
applyPeprSettings(config);
// The pipeline runs only where Pepr runs watches (the watcher pod, or dev mode); admission pods
// and `pepr build` get the bindings and nothing else.
const runtime =
  config.peprMode === "watch" || config.peprMode === "dev" ? new OperatorRuntime(config, actions) : undefined;

const module = new PeprModule(
  cfg,
  [agentTaskCapability({ actions, config, runtime }), ...ACTION_MODULES.map(a => a.capability)],
  {
    deferStart: true,
    // Before Pepr copies an admission object: values nested too deep to copy are cut (and the
    // task is refused naming the field) instead of overflowing the stack into an HTTP 500.
    beforeHook: boundAdmissionDepth,
  },
);

if (config.peprMode !== "build") {
  module.start(config.peprPort);
  runtime?.start().catch((err: unknown) => {
    runtime.log.error("operator runtime failed to start", { error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
}
