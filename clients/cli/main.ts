// `atb` (also `kubectl atb`, as the kubectl plugin kubectl-atb): approver and agent tooling for
// AgentTasks. Commands: approve, plan, explain. Acts with the user's kubeconfig only.
import { parseArgs } from "node:util";
import { approve, readKey, Refused } from "./approve";
import { explainTask } from "./explain";
import { connect, kubeMessage, type CliKube } from "./kube";
import { plan } from "./plan";
import { confirm } from "./prompt";
import { describeTask } from "./show";
import { parseTaskRef, taskPath, type TaskView } from "./task";

export const USAGE = `usage: atb <command> [options]     (as a kubectl plugin: kubectl atb <command> [options])

  atb approve <namespace>/<task> --key <approver private key PEM> --approver <id>
              [--roles r1,r2] [--ttl <seconds>] [--yes]
      shows the task's change (the plan's diff, or the payload and the change digest), its tier and
      the approvals it has, asks for confirmation (default no; --yes does not ask), signs an
      attestation of the change digest bound to the task with your key and creates an
      AgentTaskApproval in the task's namespace with your credentials
  atb plan -f <task.yaml> [-n <namespace>] [--timeout <seconds>]
      submits the task as a Plan task (spec.mode Plan, a name of its own, no token), waits until it is
      planned (default 120 s) and prints the diff, the change digest, the tier and the approvals needed
  atb explain <namespace>/<task>
      says in a sentence why the task is where it is, and what to do next

  common options: --kubeconfig <file> (default: KUBECONFIG, else ~/.kube/config), -n/--namespace <ns>`;

const OPTIONS = {
  kubeconfig: { type: "string" },
  namespace: { type: "string", short: "n" },
  key: { type: "string" },
  approver: { type: "string" },
  roles: { type: "string" },
  ttl: { type: "string" },
  yes: { type: "boolean", short: "y" },
  file: { type: "string", short: "f" },
  timeout: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

function seconds(name: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw.replace(/s$/, ""));
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive number of seconds, got "${raw}"`);
  return n;
}

const out = (line: string) => process.stdout.write(`${line}\n`);

/** Wrong use of the command line (exit code 2). */
export class UsageError extends Refused {
  constructor(message: string) {
    super(`${message}\n\n${USAGE}`);
    this.name = "UsageError";
  }
}

/** What each command needs on its command line, checked before anything is read or asked. */
function checkArgs(command: string, v: Values, positionals: string[]): void {
  if (positionals.length > (command === "plan" ? 0 : 1))
    throw new UsageError(`too many arguments: ${positionals.join(" ")}`);
  if (command !== "plan" && !positionals[0]) throw new UsageError(`${command} needs the task: <namespace>/<name>`);
  if (command === "plan" && !v.file) throw new UsageError("-f <task.yaml> is required: the AgentTask to plan");
  if (command !== "approve") return;
  if (!v.approver) throw new UsageError("--approver is required: your approver id as the broker knows it");
  if (!v.key) throw new UsageError("--key is required: the PEM file of your approver private key");
}

async function approveCommand(kube: CliKube, v: Values, ref: string | undefined): Promise<number> {
  const { namespace, name } = parseTaskRef(ref, v.namespace ?? kube.defaultNamespace);
  const key = readKey(v.key);
  if (!v.yes && !process.stdin.isTTY)
    throw new Refused("no terminal to ask for confirmation on: run it in a terminal, or pass --yes");
  const roles = v.roles
    ?.split(",")
    .map(r => r.trim())
    .filter(Boolean);
  await approve(
    { namespace, name, key, approver: v.approver!, roles, yes: v.yes, ttlSeconds: seconds("ttl", v.ttl, 900) },
    { kube, confirm: q => confirm(q), out },
  );
  return 0;
}

async function planCommand(kube: CliKube, v: Values): Promise<number> {
  const r = await plan(
    { file: v.file!, namespace: v.namespace, timeoutMs: seconds("timeout", v.timeout, 120) * 1000 },
    { kube, out, sleep: ms => new Promise(res => setTimeout(res, ms)), now: () => Date.now() },
  );
  return r.planned ? 0 : 1;
}

async function explainCommand(kube: CliKube, v: Values, ref: string | undefined): Promise<number> {
  const { namespace, name } = parseTaskRef(ref, v.namespace ?? kube.defaultNamespace);
  let task: TaskView;
  try {
    task = await kube.request<TaskView>({ method: "GET", path: taskPath(namespace, name) });
  } catch (err) {
    if ((err as { status?: number }).status === 404)
      throw new Refused(`no AgentTask ${name} in namespace ${namespace}`);
    throw new Refused(kubeMessage(err, `reading AgentTask ${namespace}/${name}`));
  }
  for (const l of describeTask(task)) out(l);
  const e = explainTask(task);
  out("");
  out(e.sentence);
  for (const d of e.details) out(`  ${d}`);
  out(`Next: ${e.next}`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    out(USAGE);
    return command ? 0 : 2;
  }
  if (!["approve", "plan", "explain"].includes(command)) throw new UsageError(`unknown command "${command}"`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return (out(USAGE), 0);
  checkArgs(command, v, positionals);
  const kube = await connect(v.kubeconfig).catch((err: unknown) => {
    throw new Refused(kubeMessage(err, `loading the kubeconfig${v.kubeconfig ? ` ${v.kubeconfig}` : ""}`));
  });
  try {
    if (command === "approve") return await approveCommand(kube, v, positionals[0]);
    if (command === "plan") return await planCommand(kube, v);
    return await explainCommand(kube, v, positionals[0]);
  } finally {
    await kube.close();
  }
}
