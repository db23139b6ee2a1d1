// Starts one real control plane for the whole e2e run (etcd, kube-apiserver, controller-manager,
// scheduler, KWOK), installs the CRDs, and records where it is. Fails loudly if it cannot start:
// the e2e suite never skips.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { up } from "../../tools/controlplane/cluster";
import { ensureBinaries } from "../../tools/controlplane/binaries";
import { e2eDataDir, stateFile } from "../helpers/cluster-env";
import { installCrds } from "../../tools/stack";

export default async function globalSetup(): Promise<void> {
  const t0 = Date.now();
  const state = await up({ dataDir: e2eDataDir(), nodes: 3, log: l => console.log(l) });
  const file = stateFile();
  process.env.ATB_E2E_STATE = file;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(state, null, 2));
  installCrds(ensureBinaries(), state.kubeconfig);
  console.log(`[e2e] control plane ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${state.server}`);
}
