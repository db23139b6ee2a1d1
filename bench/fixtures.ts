// What the scenarios create: the namespaces, the Deployments and ConfigMaps the tasks target, LOW
// scale tasks and MEDIUM update-config tasks with freshly minted PoAs (created in a burst or at a
// fixed rate, then deleted), finished task statuses as the operator writes them, and decide
// requests for the broker path. The objects themselves come from tools/objects.ts, shared with
// the e2e tests.
import { randomUUID } from "node:crypto";
import type { DecideRequest } from "../capabilities/lib/broker/client";
import { agentTask, mintTaskToken, workload, type AgentTaskObject } from "../tools/objects";
import { LOCAL_ADMIN_USER } from "../tools/requester-binding";
import type { Stack } from "../tools/stack";
import type { Api } from "./api";
import { log } from "./log";
import { sleep } from "./measure";
import type { Tracker } from "./tracker";

/** The operator's namespace for the end-to-end runs. */
export const NS = "bench";
/** The limit's namespace: no webhooks, no operator. */
export const NS_LIMIT = "bench-limit";
/** The operator's namespace for the finished tasks of the restart scenario. */
export const NS_DONE = "bench-done";
export const AGENT = "spiffe://atb.example.com/agent/bench-agent";
/** The labels the mutating webhook adds to a scale task of AGENT. */
export const ADMISSION_LABELS = { "atb.siemens.com/action": "scale", "atb.siemens.com/agent": "bench-agent" };

export const tasksPath = (ns: string): string => `/apis/atb.siemens.com/v1alpha1/namespaces/${ns}/agenttasks`;

// ---------------------------------------------------------------------------------------------
// Deployments

export interface DeploymentSet {
  namespace: string;
  /** Named <prefix>-0 … <prefix>-<count-1>. */
  prefix: string;
  count: number;
  replicas: number;
}

/** Creates the Deployments and waits until every one is available. */
export async function createDeployments(api: Api, d: DeploymentSet): Promise<void> {
  await Promise.all(
    Array.from({ length: d.count }, (_, i) =>
      api.ok(
        "POST",
        `/apis/apps/v1/namespaces/${d.namespace}/deployments`,
        workload({
          kind: "Deployment",
          name: `${d.prefix}-${i}`,
          namespace: d.namespace,
          image: "nginx:1.27",
          spec: { replicas: d.replicas },
        }),
      ),
    ),
  );
  const deadline = Date.now() + 180_000;
  for (;;) {
    const list = await api.ok<{ items: { spec: { replicas: number }; status?: { availableReplicas?: number } }[] }>(
      "GET",
      `/apis/apps/v1/namespaces/${d.namespace}/deployments`,
    );
    const ready = list.items.filter(x => (x.status?.availableReplicas ?? 0) === x.spec.replicas).length;
    if (ready === d.count) return;
    if (Date.now() > deadline) throw new Error(`${d.namespace}: only ${ready} of ${d.count} deployments available`);
    await sleep(1000);
  }
}

/** Creates `count` ConfigMaps <prefix>-<i> with one key. */
export async function createConfigMaps(
  api: Api,
  d: Pick<DeploymentSet, "namespace" | "prefix" | "count">,
): Promise<void> {
  await inParallel(
    Array.from({ length: d.count }, (_, i) => i),
    16,
    async i => {
      await api.ok("POST", `/api/v1/namespaces/${d.namespace}/configmaps`, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: `${d.prefix}-${i}`, namespace: d.namespace },
        data: { [CONFIG_KEY]: "initial", other: "untouched" },
      });
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Tasks

export interface ScaleTaskSet {
  namespace: string;
  /** Tasks are named <prefix>-0 … <prefix>-<count-1>. */
  prefix: string;
  count: number;
  /** Task i targets <targetPrefix>-(i mod targets). */
  targets: number;
  targetPrefix: string;
  replicasOf: (i: number) => number;
  /** The PoA's replica bound: a task asking for more is denied by the broker. */
  maxReplicas: number;
}

/** LOW scale tasks, each with a PoA of its own for its target. */
export async function scaleTasks(stack: Stack, s: ScaleTaskSet): Promise<AgentTaskObject[]> {
  const out: AgentTaskObject[] = [];
  for (let i = 0; i < s.count; i++) {
    const target = { kind: "Deployment", name: `${s.targetPrefix}-${i % s.targets}`, namespace: s.namespace };
    const replicas = s.replicasOf(i);
    // Bound to its change (con.change_sha256), as a MEDIUM task's token must be.
    const payload = { replicas };
    const token = await mintTaskToken(stack, {
      agent: AGENT,
      action: "scale",
      target,
      maxReplicas: s.maxReplicas,
      payload,
    });
    out.push(
      agentTask({
        name: `${s.prefix}-${i}`,
        namespace: s.namespace,
        agentId: AGENT,
        poaToken: token,
        action: "scale",
        target,
        payload,
      }),
    );
  }
  return out;
}

/** The key the update-config tasks set. */
export const CONFIG_KEY = "setting";
/**
 * update-config is MEDIUM in the reference policy: one approver other than the agent, which the
 * stack's broker counts from the token's leg.approval (its "dev" trust preset), as the tests'
 * MEDIUM tokens carry it.
 */
export const CONFIG_APPROVERS = ["alice@example.com"];

export interface ConfigTaskSet {
  namespace: string;
  /** Tasks are named <prefix>-0 … <prefix>-<count-1>. */
  prefix: string;
  count: number;
  /** Task i targets the ConfigMap <targetPrefix>-(i mod targets). */
  targets: number;
  targetPrefix: string;
  /** The value task i writes (a different one each run, so every write changes the ConfigMap). */
  valueOf: (i: number) => string;
}

/** MEDIUM update-config tasks of ConfigMaps, each with a PoA of its own bound to its change and approved. */
export async function configTasks(stack: Stack, s: ConfigTaskSet): Promise<AgentTaskObject[]> {
  const out: AgentTaskObject[] = [];
  for (let i = 0; i < s.count; i++) {
    const target = { kind: "ConfigMap", name: `${s.targetPrefix}-${i % s.targets}`, namespace: s.namespace };
    const payload = { data: { [CONFIG_KEY]: s.valueOf(i) } };
    const token = await mintTaskToken(stack, {
      agent: AGENT,
      action: "update-config",
      target,
      approvers: CONFIG_APPROVERS,
      payload,
    });
    out.push(
      agentTask({
        name: `${s.prefix}-${i}`,
        namespace: s.namespace,
        agentId: AGENT,
        poaToken: token,
        action: "update-config",
        target,
        payload,
      }),
    );
  }
  return out;
}

export interface CreateOptions {
  /** Tasks per second; undefined: as fast as the API server accepts them (`concurrency` in flight). */
  rate: number | undefined;
  concurrency: number;
}

/** Creates the tasks, recording on the tracker when each was sent; returns how many creates failed. */
export async function createTasks(
  api: Api,
  tracker: Tracker,
  tasks: AgentTaskObject[],
  o: CreateOptions,
): Promise<number> {
  let errors = 0;
  const one = async (t: AgentTaskObject) => {
    const name = t.metadata.name;
    const e = tracker.entry(name);
    e.sentAt = Date.now();
    const r = await api.request("POST", tasksPath(t.metadata.namespace), t);
    if (r.status !== 201) {
      errors++;
      if (errors < 4) log(`create ${name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      e.doneAt = Date.now();
      e.terminal = "CreateFailed";
      return;
    }
    e.createdAt = Date.now();
  };
  if (o.rate === undefined) await inParallel(tasks, o.concurrency, one);
  else await atRate(tasks, o.rate, one);
  return errors;
}

/** Runs f over the items with `concurrency` calls in flight, in order. */
export async function inParallel<T>(items: T[], concurrency: number, f: (item: T, i: number) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await f(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Starts f for item i at i/rate seconds, whether or not the earlier calls have returned. */
async function atRate<T>(items: T[], rate: number, f: (item: T) => Promise<void>): Promise<void> {
  const t0 = Date.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < items.length; i++) {
    const wait = t0 + (i * 1000) / rate - Date.now();
    if (wait > 0) await sleep(wait);
    inflight.push(f(items[i]));
  }
  await Promise.all(inflight);
}

/** Deletes every task and Event of the namespace and waits until the tasks are gone. */
export async function deleteTasks(api: Api, namespace: string): Promise<void> {
  await api.ok("DELETE", tasksPath(namespace));
  await api.ok("DELETE", `/api/v1/namespaces/${namespace}/events`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const l = await api.ok<{ items: unknown[] }>("GET", `${tasksPath(namespace)}?limit=1`);
    if (l.items.length === 0) return;
    if (Date.now() > deadline) throw new Error(`tasks in ${namespace} not deleted`);
    await sleep(500);
  }
}

// ---------------------------------------------------------------------------------------------
// Finished statuses

/** A condition builder for statuses written at `at`. */
const conditionsAt = (at: string) => (type: string, status: string, reason: string, message: string) => ({
  type,
  status,
  reason,
  message,
  observedGeneration: 1,
  lastTransitionTime: at,
});

/** A finished task's status as the operator writes it (Completed, or Denied for every 10th). */
export function finishedStatus(i: number, at: string): object {
  const denied = i % 10 === 9;
  const condition = conditionsAt(at);
  const atbResult = {
    allowed: !denied,
    riskTier: "LOW",
    reason: denied ? "replicas_above_poa_limit" : "low_risk_within_constraints",
    requestId: `${randomUUID()}.0-a1`,
    evaluateMs: 1.2,
    decisionId: randomUUID(),
    policyRevision: "bench",
  };
  const common = { observedGeneration: 1, attempts: 0, startedAt: at, finishedAt: at, atbResult };
  if (denied) {
    const message = "ATB denied the action: replicas_above_poa_limit";
    return {
      phase: "Denied",
      message,
      ...common,
      conditions: [
        condition("Authorized", "False", "PolicyDenied", message),
        condition("Succeeded", "False", "PolicyDenied", message),
      ],
    };
  }
  const message = "Deployment done-1 has 1 ready replicas";
  return {
    phase: "Completed",
    message,
    ...common,
    conditions: [
      condition("Authorized", "True", "Authorized", "low_risk_within_constraints"),
      condition("Executed", "True", "Applied", "change applied; waiting for it to take effect"),
      condition("Succeeded", "True", "Completed", message),
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Broker path

/**
 * `count` decide requests for scale 2 → 3 of app-<i mod targets>, each with its own token bound to
 * its own task uid: the broker allows a token again for the same task, so a loop can cycle
 * through them.
 */
export async function decideRequests(stack: Stack, count: number, targets: number): Promise<DecideRequest[]> {
  const requests: DecideRequest[] = [];
  for (let i = 0; i < count; i++) {
    const target = { kind: "Deployment", name: `app-${i % targets}`, namespace: NS };
    const token = await mintTaskToken(stack, { agent: AGENT, action: "scale", target, payload: { replicas: 3 } });
    requests.push({
      action: "k8s.Deployment.scale",
      token,
      agentId: AGENT,
      // As the stack's admin kubeconfig is recorded; the stack's policy data binds it to AGENT.
      requester: { username: LOCAL_ADMIN_USER, groups: ["system:masters", "system:authenticated"] },
      target,
      params: { replicas: 3 },
      context: {
        current: { replicas: 2, readyReplicas: 2 },
        requested: { replicas: 3 },
        task: { uid: randomUUID(), name: `broker-bench-${i}`, namespace: NS },
      },
    });
  }
  return requests;
}
