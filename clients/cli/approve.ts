// `atb approve <ns>/<task>`: an approver looks at a task waiting for approval, confirms, and files
// an AgentTaskApproval carrying an attestation signed with their own key.
//
// The attestation is the one the broker verifies (broker/attestations.ts), made by the same code
// as `npm run poa -- approve` (broker/poa.ts signAttestation): bound to the task's uid and to the
// digest of the task's change, which is computed here from the task as the operator computes it
// (tools/task-change.ts taskChangeSha256: a rollback's revision and an update-config's referenced
// Secret values are read with the approver's own credentials). The approval is created with the
// approver's credentials, so Kubernetes RBAC decides who may approve at all, and the broker decides
// whether the approval counts. Nothing is created unless the approver says yes.
import { createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { signAttestation } from "../../broker/poa";
import { taskChangeSha256 } from "../../tools/task-change";
import { kubeMessage, type CliKube } from "./kube";
import { describeApprovals, describePayload, describePlan, describeTask } from "./show";
import { APPROVALS, FINISHED, taskPath, type TaskView } from "./task";

export interface ApproveOptions {
  namespace: string;
  name: string;
  /** The approver's private key (PKCS#8 or any PEM node:crypto reads). */
  key: KeyObject;
  approver: string;
  roles?: string[];
  /** Skip the question (for scripts). */
  yes?: boolean;
  /** Lifetime of the attestation in seconds (default 900, as `npm run poa -- approve`). */
  ttlSeconds?: number;
}

export interface ApprovePorts {
  kube: CliKube;
  /** Asks a yes/no question on the terminal; false unless the answer is yes. */
  confirm(question: string): Promise<boolean>;
  out(line: string): void;
}

export interface ApproveResult {
  approval: string;
  changeSha256: string;
}

/** A refusal with the sentence the user sees (exit code 1, nothing created). */
export class Refused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Refused";
  }
}

/** Reads an approver's private key; the message names the option, never the key. */
export function readKey(file: string | undefined): KeyObject {
  if (!file) throw new Refused("--key is required: the PEM file of your approver private key");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Refused(`--key ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    return createPrivateKey(text);
  } catch {
    throw new Refused(`--key ${file}: not a PEM private key (PKCS#8, EC, Ed25519 or RSA)`);
  }
}

async function readTask(kube: CliKube, namespace: string, name: string): Promise<TaskView> {
  try {
    return await kube.request<TaskView>({ method: "GET", path: taskPath(namespace, name) });
  } catch (err) {
    if ((err as { status?: number }).status === 404)
      throw new Refused(`no AgentTask ${name} in namespace ${namespace}`);
    throw new Refused(kubeMessage(err, `reading AgentTask ${namespace}/${name}`));
  }
}

/** Why this task cannot be approved now, or null. */
export function notApprovable(task: TaskView): string | null {
  const id = `${task.metadata?.namespace}/${task.metadata?.name}`;
  const phase = task.status?.phase;
  if (task.spec?.mode === "Plan")
    return `${id} is a Plan task: it never applies anything, so there is nothing to approve. Create the task with mode Apply (a PoA bound to ${task.status?.plan?.changeSha256 ?? "its change digest"}) and approve that one while it is AwaitingApproval`;
  if (phase && FINISHED.includes(phase))
    return `${id} is finished (${phase}${task.status?.atbResult?.reason ? `, ${task.status.atbResult.reason}` : ""}): an approval can no longer change it`;
  if (phase === "Executing") return `${id} is already authorized and being applied (Executing): it needs no approval`;
  if (!task.metadata?.uid) return `${id} has no uid: the API server's answer is not an AgentTask`;
  return null;
}

/** con.change_sha256 of the task's PoA, read without verifying (the broker verifies); never shown whole. */
function tokenDigest(token: string | undefined): string | undefined {
  const part = token?.split(".")[1];
  if (!part) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as { con?: { change_sha256?: unknown } };
    return typeof claims.con?.change_sha256 === "string" ? claims.con.change_sha256 : undefined;
  } catch {
    return undefined;
  }
}

/** The digest of the task's change, as the operator computes it; refuses when it cannot be known. */
export async function changeDigestOf(task: TaskView, kube: CliKube): Promise<string> {
  const s = task.spec;
  const id = `${task.metadata?.namespace}/${task.metadata?.name}`;
  if (!s?.action || !s.target) throw new Refused(`${id} has no spec.action or spec.target: cannot compute its change`);
  let digest: string;
  try {
    digest = await taskChangeSha256({ action: s.action, target: s.target, payload: s.payload }, kube);
  } catch (err) {
    throw new Refused(kubeMessage(err, `cannot compute the change digest of ${id}, so there is nothing to sign`));
  }
  const planned = task.status?.plan?.changeSha256;
  if (planned && planned !== digest)
    throw new Refused(
      `${id}: its plan shows change ${planned} but the task's change is ${digest} now (the target changed since?): not signing either`,
    );
  const bound = tokenDigest(s.poaToken);
  if (bound && bound !== digest)
    throw new Refused(
      `${id}: its PoA binds change ${bound}, not the task's change ${digest}; the broker will deny it change_mismatch whatever is approved`,
    );
  return digest;
}

function show(task: TaskView, digest: string, out: (l: string) => void): void {
  for (const l of describeTask(task)) out(l);
  const plan = task.status?.plan;
  if (plan?.diff !== undefined) for (const l of describePlan(plan)) out(l);
  else {
    out(`Change:     ${digest}`);
    out(`Risk tier:  ${task.status?.atbResult?.riskTier ?? "unknown (not decided yet)"}`);
    for (const l of describePayload(task)) out(l);
  }
  for (const l of describeApprovals(task.status?.approvals)) out(l);
}

function approvalName(task: string): string {
  // generateName: the API server appends 5 characters; names are at most 253.
  return `${task.slice(0, 200)}-`;
}

export async function approve(o: ApproveOptions, ports: ApprovePorts): Promise<ApproveResult> {
  const { kube, out } = ports;
  const task = await readTask(kube, o.namespace, o.name);
  const why = notApprovable(task);
  if (why) throw new Refused(why);
  const digest = await changeDigestOf(task, kube);
  show(task, digest, out);
  if (task.status?.phase !== "AwaitingApproval")
    out(
      `Note:       the task is ${task.status?.phase ?? "not processed yet"}, not AwaitingApproval; the approval counts when the operator next asks the broker about it`,
    );
  const question = `Approve change ${digest} of ${o.namespace}/${o.name} as ${o.approver}${o.roles?.length ? ` (roles ${o.roles.join(", ")})` : ""}? [y/N] `;
  if (!o.yes && !(await ports.confirm(question))) throw new Refused("not approved: nothing was signed or created");
  const attestation = await signAttestation({
    key: o.key,
    approver: o.approver,
    changeSha256: digest,
    taskUid: task.metadata!.uid!,
    roles: o.roles,
    ttlSeconds: o.ttlSeconds,
  });
  const body = {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTaskApproval",
    metadata: { generateName: approvalName(o.name), namespace: o.namespace },
    spec: { taskRef: { name: o.name }, attestation },
  };
  let created: { metadata?: { name?: string } };
  try {
    created = await kube.create(o.namespace, APPROVALS, body);
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === 404)
      throw new Refused(
        `creating the AgentTaskApproval in ${o.namespace}: the cluster has no AgentTaskApproval CRD (install crds/agenttaskapproval.yaml)`,
      );
    throw new Refused(kubeMessage(err, `creating the AgentTaskApproval in ${o.namespace}`));
  }
  const name = created.metadata?.name ?? "(unnamed)";
  out(`Created agenttaskapproval ${o.namespace}/${name} for ${o.name}: approver ${o.approver}, change ${digest}.`);
  out(
    `The broker decides whether it counts; follow the task with: kubectl get agenttask -n ${o.namespace} ${o.name} -w`,
  );
  return { approval: name, changeSha256: digest };
}
