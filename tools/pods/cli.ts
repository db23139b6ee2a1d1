// npm run pods -- --kubeconfig FILE --namespace NS [--namespace NS ...] --bridge NAME/A.B.C
//                 --apiserver HOST:PORT --state DIR
// Runs the pods of the given namespaces as local processes (tools/pods/runner.ts) until SIGTERM
// or SIGINT, then stops them (each pod's grace period). It needs a network namespace with the
// bridge (A.B.C.1/24) and an API server reachable at HOST:PORT from the bridge; the deploy-path
// check (npm run deploy-check) makes both. Writes what it runs to <state>/report.json (every
// two seconds and at the end). Runs as a process of its own so that its probes and Pod status
// updates never wait for whoever started it.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBinaries } from "../controlplane/binaries";
import { PodRunner } from "./runner";

function parse(argv: string[]) {
  const o = { kubeconfig: "", namespaces: [] as string[], bridge: "", apiserver: "", state: "" };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (!value) throw new Error(`${flag}: missing value`);
    if (flag === "--kubeconfig") o.kubeconfig = value;
    else if (flag === "--namespace") o.namespaces.push(value);
    else if (flag === "--bridge") o.bridge = value;
    else if (flag === "--apiserver") o.apiserver = value;
    else if (flag === "--state") o.state = value;
    else throw new Error(`unknown argument ${flag}`);
  }
  const [bridgeName, prefix] = o.bridge.split("/");
  const [host, port] = o.apiserver.split(":");
  if (
    !o.kubeconfig ||
    !o.namespaces.length ||
    !bridgeName ||
    !/^\d+\.\d+\.\d+$/.test(prefix ?? "") ||
    !host ||
    !/^\d+$/.test(port ?? "") ||
    !o.state
  )
    throw new Error(
      "usage: --kubeconfig FILE --namespace NS [--namespace NS ...] --bridge NAME/A.B.C --apiserver HOST:PORT --state DIR",
    );
  return { ...o, bridge: { name: bridgeName, prefix }, apiserver: { host, port: Number(port) } };
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  mkdirSync(o.state, { recursive: true, mode: 0o700 });
  const runner = new PodRunner({
    root: join(__dirname, "..", ".."),
    kubectl: ensureBinaries().kubectl,
    kubeconfig: o.kubeconfig,
    namespaces: o.namespaces,
    stateDir: o.state,
    bridge: o.bridge,
    apiserver: o.apiserver,
    log: l => console.log(l),
  });
  const writeReport = () => {
    const file = join(o.state, "report.json");
    writeFileSync(`${file}.tmp`, JSON.stringify(runner.report(), null, 2));
    renameSync(`${file}.tmp`, file);
  };
  runner.start();
  const t = setInterval(writeReport, 2000);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    clearInterval(t);
    writeReport();
    void runner.stop().then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  console.error(`pods: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
