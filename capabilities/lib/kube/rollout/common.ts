// Helpers every kind's rollout rules share: numbers as the controllers read them and whether the
// controller has observed the latest spec.
import type { KubeObject, VerifyResult } from "../../action";

export type Status = Record<string, unknown>;

export interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

export function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

export function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export const waiting = (message: string): VerifyResult => ({ state: "waiting", message });
export const done = (message: string): VerifyResult => ({ state: "done", message });

/** spec.replicas with the API default (1) applied, as the controllers read it. */
export function specReplicas(obj: KubeObject): number {
  const r = obj.spec?.replicas;
  return typeof r === "number" ? r : 1;
}

/** The controller has not seen the latest spec yet: nothing in status is about our change. */
export function notObserved(obj: KubeObject): boolean {
  const status: Status = obj.status ?? {};
  return num(status.observedGeneration) === 0 || num(obj.metadata.generation) > num(status.observedGeneration);
}
