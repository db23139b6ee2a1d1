// Starts one real control plane for the whole e2e run (etcd, kube-apiserver, controller-manager,
// scheduler, KWOK), installs the CRDs, and records where it is. Fails loudly if it cannot start:
// the e2e suite never skips. The plane is tied to jest's main process (tools/reaper.ts): a Ctrl-C
// or a killed jest skips globalTeardown, and the watchdog then stops the plane and removes its
// data folder and state file instead.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { up } from "../../tools/controlplane/cluster";
import { ensureBinaries } from "../../tools/controlplane/binaries";
import { tiePath } from "../../tools/reaper";
import { e2eDataDir, stateFile } from "../helpers/cluster-env";
import { installCrds } from "../../tools/stack";

export default async function globalSetup(): Promise<void> {
  const t0 = Date.now();
  // A state file inherited from an enclosing run (a test that runs `npm test` itself) belongs to
  // that run's plane: this run records its own.
  delete process.env.ATB_E2E_STATE;
  const dataDir = e2eDataDir();
  const file = stateFile();
  if (process.env.ATB_E2E_KEEP !== "1") tiePath(dataDir);
  tiePath(file);
  const state = await up({ dataDir, nodes: 3, log: l => console.log(l) });
  process.env.ATB_E2E_STATE = file;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(state, null, 2));
  installCrds(ensureBinaries(), state.kubeconfig);
  console.log(`[e2e] control plane ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${state.server}`);
}
