// Builders for the Kubernetes objects that the e2e tests and the benchmark both create: an
// AgentTask, a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet) with a single container,
// and the PoA for a task, minted with the key the stack's broker trusts. One place, so a field the
// CRD or the policy starts to require is added once.
import type { Stack } from "./stack";

export interface TaskTarget {
  kind: string;
  name: string;
  namespace: string;
}

export interface AgentTaskFields {
  name: string;
  namespace: string;
  agentId: string;
  poaToken: string;
  action: string;
  target: TaskTarget;
  /** Left out of the spec when undefined. */
  payload?: unknown;
}

export interface AgentTaskObject {
  apiVersion: "atb.siemens.com/v1alpha1";
  kind: "AgentTask";
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: { agentId: string; poaToken: string; action: string; target: TaskTarget; payload?: unknown };
}

export function agentTask(f: AgentTaskFields): AgentTaskObject {
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name: f.name, namespace: f.namespace },
    spec: {
      agentId: f.agentId,
      poaToken: f.poaToken,
      action: f.action,
      target: f.target,
      ...(f.payload === undefined ? {} : { payload: f.payload }),
    },
  };
}

export type WorkloadKind = "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet";

export interface WorkloadFields {
  kind: WorkloadKind;
  name: string;
  namespace: string;
  image: string;
  /** Merged into the spec last (replicas, strategy, ...). */
  spec?: Record<string, unknown>;
}

/**
 * A workload with one container named "app" (label app=<name>, no grace period so rollouts on
 * KWOK nodes are quick); 2 replicas unless a DaemonSet.
 */
export function workload(w: WorkloadFields): object {
  const { kind, name } = w;
  const spec: Record<string, unknown> = {
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: { containers: [{ name: "app", image: w.image }], terminationGracePeriodSeconds: 0 },
    },
  };
  if (kind !== "DaemonSet") spec.replicas = 2;
  if (kind === "StatefulSet") Object.assign(spec, { serviceName: name, podManagementPolicy: "Parallel" });
  return { apiVersion: "apps/v1", kind, metadata: { name, namespace: w.namespace }, spec: { ...spec, ...w.spec } };
}

export interface TaskTokenRequest {
  agent: string;
  /** The CRD action ("scale"). */
  action: string;
  target: TaskTarget;
  approvers?: string[];
  /** The PoA's replica bound (default 10). */
  maxReplicas?: number;
  /** The task's payload: the token then binds its change (con.change_sha256; required from MEDIUM up). */
  payload?: unknown;
}

/** A PoA for one task, valid for 5 minutes, signed by the key the stack's broker trusts. */
export function mintTaskToken(stack: Pick<Stack, "mint">, r: TaskTokenRequest): Promise<string> {
  return stack.mint({
    agent: r.agent,
    action: r.action,
    target: { kind: r.target.kind, namespace: r.target.namespace, name: r.target.name },
    approvers: r.approvers,
    maxReplicas: r.maxReplicas ?? 10,
    ttlSeconds: 300,
    payload: (r.payload ?? undefined) as Record<string, unknown> | undefined,
  });
}
