// npm run cluster -- up | down | status | env | build
// Manages the project's local Kubernetes control plane (see tools/controlplane/cluster.ts).
// Data folder: $ATB_CLUSTER_DIR or <repo>/.data/cluster (git-ignored); ~/.kube/config is never touched.
import { join, resolve } from "node:path";
import { binDirs, ensureBinaries } from "./binaries";
import { COMPONENTS, down, isAlive, readState, up } from "./cluster";

const repo = resolve(__dirname, "..", "..");
export const DEFAULT_DATA_DIR = process.env.ATB_CLUSTER_DIR ?? join(repo, ".data", "cluster");

function usage(): never {
  console.error("usage: npm run cluster -- up [--nodes N] | down | status | env | build");
  process.exit(2);
}

function status(): number {
  const s = readState(DEFAULT_DATA_DIR);
  if (!s) {
    console.log(`no control plane recorded in ${DEFAULT_DATA_DIR}`);
    return 1;
  }
  let running = 0;
  console.log(`control plane in ${s.dataDir} (started ${s.startedAt})`);
  console.log(`  api server  ${s.server}\n  kubeconfig  ${s.kubeconfig}`);
  for (const c of COMPONENTS) {
    const pid = s.pids[c];
    const alive = isAlive(pid);
    if (alive) running++;
    const where = c === "etcd" ? ` http://127.0.0.1:${s.ports.etcd}` : c === "kube-apiserver" ? ` ${s.server}` : "";
    console.log(`  ${c.padEnd(24)} ${alive ? `running pid ${pid}${where}` : "stopped"}`);
  }
  return running === COMPONENTS.length ? 0 : 1;
}

function env(): number {
  const s = readState(DEFAULT_DATA_DIR);
  if (!s || !isAlive(s.pids["kube-apiserver"])) {
    console.error("the control plane is not running: npm run cluster -- up");
    return 1;
  }
  const dirs = binDirs(ensureBinaries());
  console.log(`export KUBECONFIG=${s.kubeconfig}`);
  console.log(`export PATH=${dirs.join(":")}:$PATH`);
  return 0;
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case "up": {
      const i = rest.indexOf("--nodes");
      const nodes = i >= 0 ? Number(rest[i + 1]) : 3;
      // The plane keeps running after this command exits, until `npm run cluster -- down`.
      const s = await up({ dataDir: DEFAULT_DATA_DIR, nodes, outliveCaller: true });
      console.log(`control plane running: ${s.server}\nnext: eval "$(npm run -s cluster -- env)"`);
      return 0;
    }
    case "down":
      await down(DEFAULT_DATA_DIR);
      return 0;
    case "status":
      return status();
    case "env":
      return env();
    case "build":
      ensureBinaries();
      return 0;
    default:
      return usage();
  }
}

main().then(
  code => process.exit(code),
  (err: unknown) => {
    console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
