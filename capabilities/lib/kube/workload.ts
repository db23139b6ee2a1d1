// Reading a workload's pod template and its containers' images (Deployment, StatefulSet,
// DaemonSet, ReplicaSet all keep it at spec.template).
import type { KubeObject } from "../action";
import { record } from "./rollout/common";

export interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  spec?: { containers?: { name: string; image?: string }[]; [k: string]: unknown };
  [k: string]: unknown;
}

export function podTemplate(obj: KubeObject | undefined): PodTemplate {
  return record(obj?.spec?.template) as PodTemplate;
}

/** Container name → image of a workload's pod template (regular containers only). */
export function containerImages(obj: KubeObject | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const list = podTemplate(obj).spec?.containers;
  for (const c of Array.isArray(list) ? list : []) {
    if (c && typeof c.name === "string") out[c.name] = typeof c.image === "string" ? c.image : "";
  }
  return out;
}
