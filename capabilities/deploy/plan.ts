// The two kinds of deploy write: a new image for one container (strategic merge patch, merged
// by container name, as `kubectl set image`) or a whole manifest whose spec replaces the target's
// (a JSON patch under the observed resourceVersion, as `kubectl replace`; docs/adr/0005), created
// only when ATB_ALLOW_CREATE allows it.
import type { KubeObject, Plan, TaskContext } from "../lib/action";
import { isRecord, markerAnnotations, markerMetadata, refusePaused } from "../lib/action/define";
import { AtbError } from "../lib/errors";
import { resourcePath, type KubeRequest } from "../lib/kube";
import { containerImages, podTemplate } from "../lib/kube/workload";
import { changeOf } from "./change";

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
    // The payload's {image, container} (./change.ts); the container the operator resolved is
    // `resolved`, so a re-plan that would pick another one is authorized again.
    params: changeOf(ctx.spec.payload),
    resolved: { container: container.name },
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

/** A summary of the resulting spec for the policy's context (the manifest itself is the change;
 * replicas as the API server defaults them when the manifest leaves them out). */
function manifestSummary(m: KubeObject, kind: string): Record<string, unknown> {
  const spec = (podTemplate(m).spec ?? {}) as Record<string, unknown>;
  const containers = [spec.containers, spec.initContainers].flatMap(l => (Array.isArray(l) ? l : []));
  const replicas = typeof m.spec?.replicas === "number" ? m.spec.replicas : kind === "DaemonSet" ? null : 1;
  return {
    images: containerImages(m),
    initImages: initContainerImages(spec.initContainers),
    replicas,
    hostNetwork: spec.hostNetwork === true,
    privileged: containers.some(
      c => isRecord(c) && isRecord(c.securityContext) && c.securityContext.privileged === true,
    ),
    serviceAccountName: typeof spec.serviceAccountName === "string" ? spec.serviceAccountName : null,
  };
}

function initContainerImages(list: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of Array.isArray(list) ? list : []) {
    if (isRecord(c) && typeof c.name === "string") out[c.name] = typeof c.image === "string" ? c.image : "";
  }
  return out;
}

/** Unknown fields are refused (400) instead of dropped: what the broker judged is what runs. */
const STRICT = { fieldValidation: "Strict" };

type JsonOp = { op: "add" | "replace"; path: string; value: unknown };

/** JSON Pointer escaping for map keys (RFC 6901: ~ → ~0, / → ~1). */
const pointer = (key: string): string => key.replace(/~/g, "~0").replace(/\//g, "~1");

/** Ops that set `entries` in the map at `path` (labels, annotations) and keep its other keys. */
function mapOps(path: string, current: Record<string, string> | undefined, entries: Record<string, string>): JsonOp[] {
  if (Object.keys(entries).length === 0) return [];
  if (!current) return [{ op: "add", path, value: entries }];
  return Object.entries(entries).map(([k, v]) => ({ op: "add", path: `${path}/${pointer(k)}`, value: v }));
}

/**
 * The one write over an existing target: a JSON patch whose first op replaces resourceVersion
 * with the observed one (the API server answers 409 Conflict if the target moved on), then the
 * manifest's spec in place of the target's whole spec (fields other writers set are gone), the
 * manifest's labels and annotations added and the at-most-once marker, all in the same write.
 * The rest of the target's metadata stays as it is.
 */
function replaceOps(manifest: KubeObject, target: KubeObject, uid: string): JsonOp[] {
  const annotations = { ...(manifest.metadata.annotations ?? {}), ...markerAnnotations(target, uid) };
  return [
    { op: "replace", path: "/metadata/resourceVersion", value: target.metadata.resourceVersion },
    { op: "replace", path: "/spec", value: manifest.spec },
    ...mapOps("/metadata/labels", target.metadata.labels, manifest.metadata.labels ?? {}),
    ...mapOps("/metadata/annotations", target.metadata.annotations, annotations),
  ];
}

/** The one write: the replace over an existing target, or the create of a missing one. */
function manifestWrite(ctx: TaskContext, manifest: KubeObject, target: KubeObject | undefined): KubeRequest {
  const { kind, name, namespace } = ctx.spec.target;
  if (target) {
    const path = resourcePath(kind, namespace, name);
    return { method: "PATCH", path, patchType: "json", query: STRICT, body: replaceOps(manifest, target, ctx.uid) };
  }
  // A create answers 409 AlreadyExists if another writer created the target meanwhile; it is then
  // re-planned as a replace, which the broker judges again (`resolved.create` differs).
  const annotations = { ...(manifest.metadata.annotations ?? {}), ...markerAnnotations(undefined, ctx.uid) };
  const body = { ...manifest, metadata: { ...manifest.metadata, annotations } };
  return { method: "POST", path: resourcePath(kind, namespace), query: STRICT, body };
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
  const summary = manifestSummary(manifest, kind);
  return {
    // The manifest as the task carries it (./change.ts). Whether it creates or replaces is
    // `resolved`: a create that meets a target someone else created meanwhile is judged again.
    params: changeOf(ctx.spec.payload),
    resolved: { create: !target },
    context: {
      mode: "manifest",
      create: !target,
      ...summary,
      exists: Boolean(target),
      currentImages: target ? containerImages(target) : {},
      newImages: summary.images,
      currentReplicas: typeof target?.spec?.replicas === "number" ? target.spec.replicas : null,
    },
    write: manifestWrite(ctx, manifest, target),
    retryOnConflict: true,
  };
}
