// The deploy action: roll a Deployment, StatefulSet or DaemonSet to a new image or a new manifest
// and count the task Completed when the rollout finishes (Failed on ProgressDeadlineExceeded) and,
// for a manifest, the rolled-out pod template is the manifest's (Failed on TemplateMismatch).
import type { TaskContext } from "../lib/action";
import { defineAction, requireTarget, rolloutDone } from "../lib/action/define";
import { planImage, planManifest } from "./plan";
import { validateDeploy } from "./validate";
import { verifyManifest } from "./verify";

const withManifest = (ctx: TaskContext): boolean => ctx.spec.payload?.manifest !== undefined;

export const DeployAction = defineAction({
  action: "deploy",
  kinds: ["Deployment", "StatefulSet", "DaemonSet"],
  tier: "HIGH",
  payload: {
    fields: {
      image: { type: "string", minLength: 1, maxLength: 1024, description: "new container image" },
      container: { type: "string", maxLength: 253, description: "container to update (default: the only one)" },
      manifest: {
        type: "object",
        description: "the full desired object (its spec replaces the target's)",
        "x-kubernetes-preserve-unknown-fields": true,
      },
    },
    required: { one: ["image", "manifest"] },
  },
  docs: {
    summary:
      "`image` (+ `container`) updates one container's image; or `manifest`, a full object whose spec replaces the target's (as `kubectl replace`: fields other writers set are removed), Completed only when the rolled-out pod template is the manifest's (else `TemplateMismatch`); creates a missing target only with `ATB_ALLOW_CREATE=true`; Failed on `ProgressDeadlineExceeded`",
    payload: "`image` [+ `container`] or `manifest`",
  },
  admission: "an image or a manifest that names exactly the target",
  // A manifest's verify reads the template the controller rolled out from its history.
  grants: [
    { kind: "ReplicaSet", verbs: ["list"] },
    { kind: "ControllerRevision", verbs: ["list"] },
  ],
  validate: validateDeploy,
  plan: (ctx, target) => (withManifest(ctx) ? planManifest(ctx, target) : planImage(ctx, target)),
  // Only a manifest may create its target (when ATB_ALLOW_CREATE allows it).
  planMissing: ctx =>
    withManifest(ctx) ? planManifest(ctx, undefined) : planImage(ctx, requireTarget(ctx, undefined)),
  verify: (ctx, target) => (withManifest(ctx) ? verifyManifest(ctx, target) : rolloutDone(ctx, target)),
});
