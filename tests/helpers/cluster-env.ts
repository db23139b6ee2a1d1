// Where the e2e suite's control plane lives, shared between jest's globalSetup (which starts it)
// and the test files (which read it). The data folder is on tmpfs when the machine has one.
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClusterState } from "../../tools/controlplane/cluster";

export const E2E_STATE_FILE = join(__dirname, "..", "e2e", ".tmp", "cluster.json");

export function e2eDataDir(): string {
  const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
  return join(base, `atb-e2e-${process.pid}`);
}

export function e2eCluster(): ClusterState {
  if (!existsSync(E2E_STATE_FILE))
    throw new Error(`no e2e control plane: ${E2E_STATE_FILE} is missing (globalSetup did not run?)`);
  return JSON.parse(readFileSync(E2E_STATE_FILE, "utf8")) as ClusterState;
}
