// Stops the e2e control plane, also after failed tests, and removes its data folder.
import { existsSync, rmSync } from "node:fs";
import { down } from "../../tools/controlplane/cluster";
import { e2eCluster, stateFile } from "../helpers/cluster-env";

export default async function globalTeardown(): Promise<void> {
  if (!existsSync(stateFile())) return;
  const state = e2eCluster();
  await down(state.dataDir, l => console.log(l));
  // ATB_E2E_KEEP=1 keeps logs, audit and PKI for a post-mortem.
  if (process.env.ATB_E2E_KEEP !== "1") rmSync(state.dataDir, { recursive: true, force: true });
  else console.log(`[e2e] kept ${state.dataDir}`);
  rmSync(stateFile(), { force: true });
}
