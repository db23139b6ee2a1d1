// The two kinds of deploy write: a new image for one container (strategic merge patch, merged
// by container name, as `kubectl set image`) or a whole manifest applied with server-side apply
// under the operator's field manager (created only when ATB_ALLOW_CREATE allows it).
import { createHash } from "node:crypto";
import type { KubeObject, Plan, TaskContext } from "../lib/action";
import { isRecord, markerAnnotations, markerMetadata, refusePaused } from "../lib/action/define";
import { AtbError } from "../lib/errors";
import { resourcePath } from "../lib/kube";
import { containerImages, podTemplate } from "../lib/kube/workload";

/** Which list the container lives in: regular containers first, then init containers (as kubectl). */
function locateContainer(
  target: KubeObject,
  wanted: string | undefined,
): { name: string; list: "containers" | "initContainers" } {
  const { kind, name } = { kind: target.kind ?? "workload", name: target.metadata.name };
  const names = Object.keys(containerImages(target));
  if (wanted === undefined) {
    if (names.length === 1) return { name: names[0], list: "containers" };
    throw new AtbError(
      "TASK_INVALID",
      `spec.payload.container: required because ${kind} ${name} has ${names.length} containers (${names.join(", ")})`,
    );
  }
  if (names.includes(wanted)) return { name: wanted, list: "containers" };
  const init = podTemplate(target).spec?.initContainers;
  if (Array.isArray(init) && init.some(c => isRecord(c) && c.name === wanted))
    return { name: wanted, list: "initContainers" };
  throw new AtbError(
    "TASK_INVALID",
    `container ${wanted} not found in ${kind} ${name} (containers: ${names.join(", ") || "none"})`,
  );
}

export function planImage(ctx: TaskContext, target: KubeObject): Plan {
  const { kind, name, namespace } = ctx.spec.target;
  refusePaused(kind, target);
  const image = ctx.spec.payload?.image as string;
  const container = locateContainer({ ...target, kind }, ctx.spec.payload?.container as string | undefined);
  const currentImages = containerImages(target);
  return {
    params: { image, container: container.name },
    context: {
      container: container.name,
      currentImage: currentImages[container.name] ?? null,
      newImage: image,
      currentImages,
    },
    write: {
      method: "PATCH",
      path: resourcePath(kind, namespace, name),
      patchType: "strategic",
      body: {
        metadata: markerMetadata(target, ctx.uid),
        spec: { template: { spec: { [container.list]: [{ name: container.name, image }] } } },
      },
    },
    retryOnConflict: true,
  };
}

/** What a policy needs to judge a manifest without receiving env values or other literals. */
function manifestSummary(m: KubeObject): Record<string, unknown> {
  const spec = (podTemplate(m).spec ?? {}) as Record<string, unknown>;
  const containers = [spec.containers, spec.initContainers].flatMap(l => (Array.isArray(l) ? l : []));
  return {
    images: containerImages(m),
    replicas: typeof m.spec?.replicas === "number" ? m.spec.replicas : null,
    hostNetwork: spec.hostNetwork === true,
    privileged: containers.some(
      c => isRecord(c) && isRecord(c.securityContext) && c.securityContext.privileged === true,
    ),
    serviceAccountName: typeof spec.serviceAccountName === "string" ? spec.serviceAccountName : null,
    sha256: createHash("sha256").update(JSON.stringify(m)).digest("hex"),
  };
}

/** The manifest with our marker merged into its annotations and, when the target exists, the
 * observed resourceVersion, which makes the apply conditional (409 when the target moved on). */
function applyBody(manifest: KubeObject, target: KubeObject | undefined, uid: string): KubeObject {
  const annotations = { ...(manifest.metadata.annotations ?? {}), ...markerAnnotations(target, uid) };
  const metadata = { ...manifest.metadata, annotations };
  if (target) metadata.resourceVersion = target.metadata.resourceVersion;
  return { ...manifest, metadata };
}

export function planManifest(ctx: TaskContext, target: KubeObject | undefined): Plan {
  const { kind, name, namespace } = ctx.spec.target;
  const manifest = structuredClone(ctx.spec.payload?.manifest) as KubeObject;
  if (!target && !ctx.config.allowCreate) {
    throw new AtbError(
      "TARGET_NOT_FOUND",
      `${kind} ${namespace}/${name} does not exist and creation is disabled (ATB_ALLOW_CREATE=false)`,
    );
  }
  if (target && manifest.spec?.paused !== false) refusePaused(kind, target);
  const summary = manifestSummary(manifest);
  return {
    params: { mode: "manifest", create: !target, ...summary },
    context: {
      exists: Boolean(target),
      currentImages: target ? containerImages(target) : {},
      newImages: summary.images,
      currentReplicas: typeof target?.spec?.replicas === "number" ? target.spec.replicas : null,
    },
    write: {
      method: "PATCH",
      path: resourcePath(kind, namespace, name),
      patchType: "apply",
      // force: the operator takes ownership of the fields the broker approved, as
      // `kubectl apply --server-side --force-conflicts` does.
      query: { force: "true" },
      body: applyBody(manifest, target, ctx.uid),
    },
    retryOnConflict: true,
  };
}
