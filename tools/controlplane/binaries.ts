// Finds the control plane's binaries in the versioned cache, building them first (via build.sh,
// with its progress output) when the cache is incomplete.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";

const BUILD = join(__dirname, "build.sh");

export interface Binaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  kwok: string;
  kwokStages: string;
  opa: string;
  /** Not part of the control plane: renders and lints the Helm chart Pepr generates (tests/e2e/helm-chart.test.ts). */
  helm: string;
}

function printPaths(): Record<string, string> {
  const r = spawnSync("bash", [BUILD, "--print"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tools/controlplane/build.sh --print failed: ${r.stderr}`);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split("\n")
      .map(line => line.split("=", 2) as [string, string]),
  );
}

/** True when every binary is in the cache (no build needed). */
export function binariesReady(): boolean {
  return spawnSync("bash", [BUILD, "--check"]).status === 0;
}

/** Returns the binaries, building missing ones first. Throws with the build's own message on failure. */
export function ensureBinaries(log: (line: string) => void = line => console.error(line)): Binaries {
  if (!binariesReady()) {
    log("[controlplane] binaries missing from the cache: building them (a cold build takes tens of minutes)");
    const r = spawnSync("bash", [BUILD], { stdio: ["ignore", "inherit", "inherit"] });
    if (r.status !== 0) throw new Error("the control plane build failed (see the messages above)");
  }
  const p = printPaths();
  return {
    etcd: p["etcd"],
    kubeApiserver: p["kube-apiserver"],
    kubeControllerManager: p["kube-controller-manager"],
    kubeScheduler: p["kube-scheduler"],
    kubectl: p["kubectl"],
    kwok: p["kwok"],
    kwokStages: p["kwok-stages.yaml"],
    opa: p["opa"],
    helm: p["helm"],
  };
}

/** Folders to put first on PATH so `kubectl` and `opa` resolve to the cached builds. */
export function binDirs(b: Binaries): string[] {
  return [...new Set([dirname(b.kubectl), dirname(b.opa)])];
}
