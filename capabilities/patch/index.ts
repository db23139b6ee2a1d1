// The patch action: an RFC 6902 JSON Patch applied to exactly the object the broker judged. The
// write opens with a precondition, so if the object changed after the decision the API server
// refuses the whole patch and the task fails: nothing is re-planned, because the broker approved
// these operations against that object.
//
// The precondition: for objects with a generation (workloads), `test /metadata/generation` — the
// generation moves with every spec change but not with the controllers' status updates, which
// would otherwise make a patch of a live Deployment fail at random; a failed test is a bare 422,
// which the pipeline maps to TargetChanged (isStaleWrite in lib/kube/errors.ts; retryOnConflict
// is false; the dry run on the observed object succeeded, so only a change in between explains it). For objects without a generation
// (ConfigMap, Service) the resourceVersion itself (`replace /metadata/resourceVersion`, a 409).
import { applyPatch, validate as validateOps } from "fast-json-patch";
import type { KubeObject, Plan, TaskContext, VerifyResult } from "../lib/action";
import { defineAction, markerPatchOps, rolloutDone } from "../lib/action/define";
import { AtbError, messageOf } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { changeOf, holdsConfigValue } from "./change";
import { parsePatch, pointerSegments, touchesPodTemplate, type Op } from "./ops";

/** Current scalar values at the patched paths (what the policy compares against). */
function currentValues(kind: string, target: KubeObject, ops: readonly Op[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const o of ops) {
    const segs = pointerSegments(o.path);
    if (!segs || holdsConfigValue(kind, o.path)) continue;
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

function plan(ctx: TaskContext, target: KubeObject): Plan {
  const { kind, name, namespace } = ctx.spec.target;
  const parsed = parsePatch(ctx.spec.payload?.patch, ctx.config.maxPatchBytes);
  if (parsed.errors.length) throw new AtbError("TASK_INVALID", parsed.errors.join("; "));
  const marker = markerPatchOps(target, ctx.uid) as Op[];
  checkAgainst(target, marker, parsed.ops);
  const observed = target.metadata.resourceVersion;
  return {
    // The operations as given, ConfigMap values only as digests (./change.ts).
    params: changeOf(kind, { patch: parsed.ops }),
    context: {
      bytes: parsed.bytes,
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

function verify(ctx: TaskContext, obj: KubeObject): VerifyResult {
  const ops = parsePatch(ctx.spec.payload?.patch, ctx.config.maxPatchBytes).ops;
  if (touchesPodTemplate(ops)) return rolloutDone(ctx, obj);
  return { state: "done", message: `${ctx.spec.target.kind} ${obj.metadata.name} patched (${ops.length} operations)` };
}

export const PatchAction = defineAction({
  action: "patch",
  kinds: ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ConfigMap", "Service"],
  tier: "HIGH",
  payload: {
    fields: {
      patch: {
        description:
          "RFC 6902 JSON Patch, as an array or a JSON string (either type, so the API server cannot check it with CEL; the patch capability's admission rule requires it)",
        "x-kubernetes-preserve-unknown-fields": true,
      },
    },
    required: { all: ["patch"], apiServer: false },
  },
  docs: {
    summary:
      "RFC 6902 JSON Patch (array, or a JSON string of one) applied to exactly the object version the broker judged; refuses `metadata.name/namespace/uid/ownerReferences/managedFields/resourceVersion`, `status` and the operator's marker annotations, and patches over `ATB_MAX_PATCH_BYTES`",
  },
  admission: "well-formed RFC 6902, bounded size, no protected paths",
  validate: (payload, _spec, config) => parsePatch(payload.patch, config.maxPatchBytes).errors,
  plan,
  verify,
});
