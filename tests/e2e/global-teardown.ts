// Stops the e2e control plane, also after failed tests, and removes its data folder. (When jest
// is interrupted or killed this does not run: the watchdog global-setup tied them to does it.)
import { existsSync, rmSync } from "node:fs";
import { down } from "../../tools/controlplane/cluster";
import { untiePath } from "../../tools/reaper";
import { e2eCluster, stateFile } from "../helpers/cluster-env";

export default async function globalTeardown(): Promise<void> {
  const file = stateFile();
  if (!existsSync(file)) return;
  const state = e2eCluster();
  await down(state.dataDir, l => console.log(l));
  // ATB_E2E_KEEP=1 keeps logs, audit and PKI for a post-mortem.
  if (process.env.ATB_E2E_KEEP !== "1") rmSync(state.dataDir, { recursive: true, force: true });
  else console.log(`[e2e] kept ${state.dataDir}`);
  rmSync(file, { force: true });
  untiePath(state.dataDir);
  untiePath(file);
}
