// Where the e2e suite's control plane lives, shared between jest's globalSetup (which starts it)
// and the test files (which read it). The data folder is on tmpfs when the machine has one.
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClusterState } from "../../tools/controlplane/cluster";

/**
 * One state file per jest run (several runs may share a machine): globalSetup picks the path
 * and exports it in ATB_E2E_STATE, which jest's workers inherit.
 */
export function stateFile(): string {
  return process.env.ATB_E2E_STATE ?? join(__dirname, "..", "e2e", ".tmp", `cluster-${process.pid}.json`);
}

export function e2eDataDir(): string {
  const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
  return join(base, `atb-e2e-${process.pid}`);
}

export function e2eCluster(): ClusterState {
  const file = stateFile();
  if (!existsSync(file)) throw new Error(`no e2e control plane: ${file} is missing (globalSetup did not run?)`);
  return JSON.parse(readFileSync(file, "utf8")) as ClusterState;
}
