// The patch action: an RFC 6902 JSON Patch applied to exactly the object the broker judged. The
// write opens with a precondition, so if the object changed after the decision the API server
// refuses the whole patch and the task fails: nothing is re-planned, because the broker approved
// these operations against that object.
//
// The precondition: for objects with a generation (workloads), `test /metadata/generation` — the
// generation moves with every spec change but not with the controllers' status updates, which
// would otherwise make a patch of a live Deployment fail at random; a failed test is a bare 422,
// which the pipeline maps to TargetChanged (retryOnConflict is false; the dry run on the observed
// object succeeded, so only a change in between explains it). For objects without a generation
// (ConfigMap, Service) the resourceVersion itself (`replace /metadata/resourceVersion`, a 409).
import { applyPatch, validate as validateOps } from "fast-json-patch";
import type { AgentTaskSpec } from "../../crds/agenttask";
import type { ActionModule, KubeObject, Plan, TaskContext, VerifyResult } from "../lib/action";
import type { OperatorConfig } from "../lib/config";
import { AtbError, messageOf } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { markerPatchOps } from "../lib/action/marker";
import { getTarget, targetGone, verifyRollout } from "../lib/action/target";
import { parsePatch, pointerSegments, touchesPodTemplate, type Op } from "./ops";
import { actionCapability } from "../lib/action/capability";

const ALLOWED = ["patch"];

export function validatePatch(spec: AgentTaskSpec | undefined, config: Readonly<OperatorConfig>): string[] {
  const payload: unknown = spec?.payload;
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    return ["spec.payload: must be an object with field patch"];
  }
  const errors = Object.keys(payload)
    .filter(k => !ALLOWED.includes(k))
    .map(k => `spec.payload.${k.slice(0, 64)}: not a field of action patch (allowed: ${ALLOWED.join(", ")})`);
  return errors.concat(parsePatch((payload as Record<string, unknown>).patch, config.maxPatchBytes).errors);
}

function isConfigData(kind: string, segs: string[] | undefined): boolean {
  return (
    kind === "ConfigMap" && (segs === undefined || segs.length === 0 || segs[0] === "data" || segs[0] === "binaryData")
  );
}

/** The operations as the broker sees them: ConfigMap values are reduced to their size. */
export function brokerOps(kind: string, ops: readonly Op[]): Record<string, unknown>[] {
  return ops.map(o => {
    const shown: Record<string, unknown> = { op: o.op, path: o.path };
    if (o.from !== undefined) shown.from = o.from;
    if ("value" in o) {
      shown.value = isConfigData(kind, pointerSegments(o.path))
        ? { redacted: true, bytes: Buffer.byteLength(JSON.stringify(o.value) ?? "", "utf8") }
        : o.value;
    }
    return shown;
  });
}

/** Current scalar values at the patched paths (what the policy compares against). */
function currentValues(kind: string, target: KubeObject, ops: readonly Op[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const o of ops) {
    const segs = pointerSegments(o.path);
    if (!segs || isConfigData(kind, segs)) continue;
    let v: unknown = target;
    for (const s of segs)
      v = v !== null && typeof v === "object" && Object.hasOwn(v, s) ? (v as Record<string, unknown>)[s] : undefined;
    if (v === null || ["string", "number", "boolean"].includes(typeof v)) out[o.path] = v;
  }
  return out;
}

/** Dry-runs the operations locally on the observed object (after our marker ops), so a path that
 * does not exist fails the task before the broker is asked, with the operation's index. */
function checkAgainst(target: KubeObject, marker: Op[], ops: Op[]): void {
  let problem: string | undefined;
  try {
    const doc = applyPatch(structuredClone(target), marker, false, true).newDocument;
    const err = validateOps(ops, doc);
    if (err) problem = `spec.payload.patch[${err.index ?? "?"}]: ${err.message.split("\n")[0]}`;
  } catch (err) {
    problem = `spec.payload.patch: ${messageOf(err).split("\n")[0]}`;
  }
  if (problem) throw new AtbError("TASK_INVALID", problem);
}

async function plan(ctx: TaskContext, target: KubeObject | undefined): Promise<Plan> {
  const { kind, name, namespace } = ctx.spec.target;
  if (!target) throw new AtbError("TARGET_NOT_FOUND", `${kind} ${namespace}/${name} does not exist`);
  const parsed = parsePatch(ctx.spec.payload?.patch, ctx.config.maxPatchBytes);
  if (parsed.errors.length) throw new AtbError("TASK_INVALID", parsed.errors.join("; "));
  const marker = markerPatchOps(target, ctx.uid) as Op[];
  checkAgainst(target, marker, parsed.ops);
  const observed = target.metadata.resourceVersion;
  return {
    params: { patch: brokerOps(kind, parsed.ops), bytes: parsed.bytes },
    context: {
      resourceVersion: observed,
      generation: target.metadata.generation ?? null,
      touchesPodTemplate: touchesPodTemplate(parsed.ops),
      current: currentValues(kind, target, parsed.ops),
    },
    write: {
      method: "PATCH",
      path: resourcePath(kind, namespace, name),
      patchType: "json",
      body: [precondition(target), ...marker, ...parsed.ops],
    },
    retryOnConflict: false,
  };
}

function precondition(target: KubeObject): Op {
  const generation = target.metadata.generation;
  return typeof generation === "number"
    ? ({ op: "test", path: "/metadata/generation", value: generation } as Op)
    : ({ op: "replace", path: "/metadata/resourceVersion", value: target.metadata.resourceVersion } as Op);
}

async function verify(ctx: TaskContext): Promise<VerifyResult> {
  const ops = parsePatch(ctx.spec.payload?.patch, ctx.config.maxPatchBytes).ops;
  if (touchesPodTemplate(ops)) return verifyRollout(ctx);
  const obj = await getTarget(ctx);
  if (!obj) return targetGone(ctx);
  return { state: "done", message: `${ctx.spec.target.kind} ${obj.metadata.name} patched (${ops.length} operations)` };
}

const BARE_PATCH_ERROR = /^the server rejected our request due to an error in our request$/;

/** Whether a failed write means the object changed after the decision: the resourceVersion
 * precondition (409), or a bare 422 (a JSON patch that no longer applies; the dry-run on the
 * observed object succeeded, so only a change in between explains it). */
export function isStaleObjectError(err: unknown): boolean {
  const status = (err as { status?: number } | null)?.status;
  return status === 409 || (status === 422 && BARE_PATCH_ERROR.test(messageOf(err)));
}

const capability = actionCapability(
  "patch",
  "Admission of patch AgentTasks: well-formed RFC 6902, bounded size, no protected paths",
  validatePatch,
);

export const PatchAction: ActionModule = {
  action: "patch",
  kinds: ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ConfigMap", "Service"],
  capability,
  validate: validatePatch,
  plan,
  verify,
};
