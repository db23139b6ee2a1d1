// The module's entry point: the action registry, the capabilities, and the start-up order.
// Adding an action = one folder under capabilities/ plus one entry in `actions` (the registry's
// type makes a missing action a compile error).
import { PeprModule } from "pepr";
import cfg from "./package.json";
import { agentTaskCapability } from "./capabilities/agent-task";
import type { ActionRegistry } from "./capabilities/lib/action";
import { loadConfig } from "./capabilities/lib/config";
import { OperatorRuntime } from "./capabilities/lib/runtime";
import { ScaleAction } from "./capabilities/scale";
import { RestartAction } from "./capabilities/restart";
import { UpdateConfigAction } from "./capabilities/update-config";
import { DeployAction } from "./capabilities/deploy";
import { RollbackAction } from "./capabilities/rollback";
import { PatchAction } from "./capabilities/patch";

const actions: ActionRegistry = {
  scale: ScaleAction,
  restart: RestartAction,
  "update-config": UpdateConfigAction,
  deploy: DeployAction,
  rollback: RollbackAction,
  patch: PatchAction,
};

const config = loadConfig();
// The pipeline runs only where Pepr runs watches (the watcher pod, or dev mode); admission pods
// and `pepr build` get the bindings and nothing else.
const runtime =
  config.peprMode === "watch" || config.peprMode === "dev" ? new OperatorRuntime(config, actions) : undefined;

const module = new PeprModule(
  cfg,
  [agentTaskCapability({ actions, config, runtime }), ...Object.values(actions).map(a => a.capability)],
  {
    deferStart: true,
  },
);

if (config.peprMode !== "build") {
  module.start(config.peprPort);
  runtime?.start().catch((err: unknown) => {
    runtime.log.error("operator runtime failed to start", { error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
}
