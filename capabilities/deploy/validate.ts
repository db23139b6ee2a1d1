// Admission rules of the deploy action: exactly one of payload.image (with an optional
// payload.container) or payload.manifest, and a manifest that names exactly the task's target and
// sets neither the fields the API server owns nor ownerReferences or finalizers.
// (The payload's unknown keys are refused by defineAction from the schema in ./index.ts.)
import type { AgentTaskSpec } from "../../crds/agenttask";
import { isRecord } from "../lib/action/define";
import type { OperatorConfig } from "../lib/config";

const CONTAINER_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Fields the API server owns; an agent's manifest that sets them is a mistake or an attack. */
const SERVER_FIELDS = [
  "uid",
  "resourceVersion",
  "managedFields",
  "creationTimestamp",
  "generation",
  "deletionTimestamp",
];
/** Metadata a deploy never changes, with why (the policy's ownership_change rule covers patches). */
const OWNERSHIP_FIELDS: Record<string, string> = {
  ownerReferences: "a deploy does not change who owns the workload: an owner can garbage-collect or adopt it",
  finalizers: "a deploy does not change the workload's finalizers: one can block its deletion",
};

function short(v: unknown): string {
  let s: string;
  try {
    s = typeof v === "string" ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    s = "(unprintable)";
  }
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);
}

/** Size as sent to the API server; anything that does not serialise counts as too large. */
function jsonBytes(v: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(v) ?? "", "utf8");
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}

function checkImage(p: Record<string, unknown>, errors: string[]): void {
  const image = p.image;
  if (typeof image !== "string" || image.length === 0 || image.length > 1024 || /[\s\u0000-\u001f]/.test(image)) {
    errors.push("spec.payload.image: must be a container image reference of 1 to 1024 characters without whitespace");
  }
  const c = p.container;
  if (c !== undefined && (typeof c !== "string" || c.length > 63 || !CONTAINER_NAME.test(c))) {
    errors.push("spec.payload.container: must be a container name (lower-case DNS label, at most 63 characters)");
  }
}

function checkManifestIdentity(m: Record<string, unknown>, spec: AgentTaskSpec, errors: string[]): void {
  const target = spec.target ?? ({} as Partial<AgentTaskSpec["target"]>);
  if (m.apiVersion !== "apps/v1")
    errors.push(`spec.payload.manifest.apiVersion: must be "apps/v1" (got ${short(m.apiVersion)})`);
  if (m.kind !== target.kind)
    errors.push(`spec.payload.manifest.kind: must equal spec.target.kind ${short(target.kind)} (got ${short(m.kind)})`);
  const meta = m.metadata;
  if (!isRecord(meta)) {
    errors.push("spec.payload.manifest.metadata: must be an object with name and namespace");
    return;
  }
  if (meta.name !== target.name) {
    errors.push(
      `spec.payload.manifest.metadata.name: must equal spec.target.name ${short(target.name)} (got ${short(meta.name)})`,
    );
  }
  if (meta.namespace !== target.namespace) {
    errors.push(
      `spec.payload.manifest.metadata.namespace: must equal spec.target.namespace ${short(target.namespace)} (got ${short(meta.namespace)})`,
    );
  }
  for (const f of SERVER_FIELDS.filter(k => meta[k] !== undefined)) {
    errors.push(`spec.payload.manifest.metadata.${f}: must not be set (the API server owns it)`);
  }
  for (const [f, why] of Object.entries(OWNERSHIP_FIELDS).filter(([k]) => meta[k] !== undefined)) {
    errors.push(`spec.payload.manifest.metadata.${f}: must not be set (${why})`);
  }
}

function checkManifest(spec: AgentTaskSpec, config: Readonly<OperatorConfig>, errors: string[]): void {
  const m = spec.payload?.manifest;
  if (!isRecord(m)) {
    errors.push("spec.payload.manifest: must be an object (the full Deployment, StatefulSet or DaemonSet)");
    return;
  }
  checkManifestIdentity(m, spec, errors);
  if (m.status !== undefined)
    errors.push("spec.payload.manifest.status: must not be set (the controller writes status)");
  if (!isRecord(m.spec)) errors.push("spec.payload.manifest.spec: must be an object");
  const bytes = jsonBytes(m);
  if (bytes > config.maxPatchBytes) {
    errors.push(
      `spec.payload.manifest: must be at most ${config.maxPatchBytes} bytes as JSON (ATB_MAX_PATCH_BYTES; got ${bytes})`,
    );
  }
}

export function validateDeploy(
  p: Record<string, unknown>,
  spec: AgentTaskSpec,
  config: Readonly<OperatorConfig>,
): string[] {
  const errors: string[] = [];
  const hasImage = p.image !== undefined;
  const hasManifest = p.manifest !== undefined;
  if (hasImage === hasManifest) errors.push("spec.payload: exactly one of image or manifest is required");
  if (hasImage) checkImage(p, errors);
  if (hasManifest) checkManifest(spec, config, errors);
  if (hasManifest && p.container !== undefined)
    errors.push("spec.payload.container: only allowed with spec.payload.image");
  return errors;
}
