// The module's entry point: lists the capabilities and starts Pepr on the configured port.
// Capabilities register their bindings at import; nothing else happens at import time.
import { PeprModule } from "pepr";
import cfg from "./package.json";
import { AgentTaskCapability } from "./capabilities/agent-task";
import { parseConfig } from "./capabilities/lib/config";

const module = new PeprModule(cfg, [AgentTaskCapability], { deferStart: true });
if (process.env.PEPR_MODE !== "build") module.start(parseConfig(process.env).peprPort);
