// `atb plan -f task.yaml`: submits the task as a Plan task (spec.mode Plan, a name of its own so it
// never collides with the task that will apply it), waits until the operator has planned it (or
// failed it), and prints the diff, the change digest a PoA must bind, the tier and the approvals it
// will need. The PoA token and attestations of the file are left out: a plan needs none, and a
// token should not sit in the cluster for nothing.
import { readFileSync } from "node:fs";
import { loadAll } from "js-yaml";
import { Refused } from "./approve";
import { explainTask } from "./explain";
import { kubeMessage, type CliKube } from "./kube";
import { describePlan, describeTask } from "./show";
import { FINISHED, GROUP, REQUESTER_ANNOTATION, TASKS, taskPath, type TaskView } from "./task";

export interface PlanOptions {
  file: string;
  /** -n: the namespace when the file names none (else the context's, else the target's). */
  namespace?: string;
  timeoutMs: number;
  pollMs?: number;
}

export interface PlanPorts {
  kube: CliKube;
  out(line: string): void;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface PlanResult {
  task: TaskView;
  planned: boolean;
}

/** The one AgentTask of a YAML or JSON file; the message names the file and what is wrong. */
export function readTaskFile(file: string): TaskView {
  let docs: unknown[];
  try {
    docs = loadAll(readFileSync(file, "utf8")).filter(d => d !== null && d !== undefined);
  } catch (err) {
    throw new Refused(`-f ${file}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
  }
  if (docs.length !== 1) throw new Refused(`-f ${file}: expected one AgentTask, found ${docs.length} documents`);
  const doc = docs[0] as TaskView;
  if (doc?.kind !== "AgentTask" || doc.apiVersion !== `${GROUP}/v1alpha1`)
    throw new Refused(`-f ${file}: not an AgentTask (apiVersion ${GROUP}/v1alpha1, kind AgentTask)`);
  if (!doc.spec?.action || !doc.spec.target) throw new Refused(`-f ${file}: spec.action and spec.target are required`);
  return doc;
}

/** The Plan task to create from the file's task. */
export function planTask(doc: TaskView, namespace: string): TaskView {
  const spec = { ...doc.spec!, mode: "Plan" };
  delete spec.poaToken;
  delete spec.attestations;
  const m = doc.metadata ?? {};
  const base = (m.name ?? m.generateName ?? "task").replace(/-+$/, "").slice(0, 200);
  const annotations = { ...m.annotations };
  // Who creates the task is recorded by the operator's webhook; a copied record would be refused.
  delete annotations[REQUESTER_ANNOTATION];
  return {
    apiVersion: doc.apiVersion,
    kind: "AgentTask",
    metadata: {
      namespace,
      generateName: `${base}-plan-`,
      ...(m.labels ? { labels: m.labels } : {}),
      ...(Object.keys(annotations).length ? { annotations } : {}),
    },
    spec,
  };
}

async function waitFor(ns: string, name: string, o: PlanOptions, ports: PlanPorts): Promise<TaskView> {
  const deadline = ports.now() + o.timeoutMs;
  for (;;) {
    let task: TaskView;
    try {
      task = await ports.kube.request<TaskView>({ method: "GET", path: taskPath(ns, name) });
    } catch (err) {
      throw new Refused(kubeMessage(err, `reading AgentTask ${ns}/${name}`));
    }
    const phase = task.status?.phase;
    if (phase && FINISHED.includes(phase)) return task;
    if (ports.now() >= deadline)
      throw new Refused(
        `${ns}/${name} was not planned within ${Math.round(o.timeoutMs / 1000)} s (phase ${phase ?? "none"}); see \`npx atb explain ${ns}/${name}\``,
      );
    await ports.sleep(o.pollMs ?? 500);
  }
}

export async function plan(o: PlanOptions, ports: PlanPorts): Promise<PlanResult> {
  const doc = readTaskFile(o.file);
  const namespace =
    doc.metadata?.namespace ?? o.namespace ?? ports.kube.defaultNamespace ?? doc.spec!.target!.namespace;
  if (doc.spec?.poaToken || doc.spec?.attestations?.length)
    ports.out("Leaving out spec.poaToken and spec.attestations: a plan needs neither and never sends them.");
  let created: TaskView;
  try {
    created = await ports.kube.create<TaskView>(namespace, TASKS, planTask(doc, namespace));
  } catch (err) {
    throw new Refused(kubeMessage(err, `creating the Plan task in ${namespace}`));
  }
  const name = created.metadata!.name!;
  ports.out(`Created Plan task ${namespace}/${name}; waiting for the operator to plan it...`);
  const task = await waitFor(namespace, name, o, ports);
  for (const l of describeTask(task)) ports.out(l);
  if (task.status?.phase === "Planned" && task.status.plan) {
    for (const l of describePlan(task.status.plan)) ports.out(l);
    ports.out(
      `To apply it: create the task with mode Apply and a PoA whose con.change_sha256 is ${task.status.plan.changeSha256}.`,
    );
    return { task, planned: true };
  }
  const e = explainTask(task);
  ports.out(e.sentence);
  for (const d of e.details) ports.out(`  ${d}`);
  ports.out(`Next: ${e.next}`);
  return { task, planned: false };
}
