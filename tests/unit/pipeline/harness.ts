// What the pipeline's unit tests share: a world of an in-memory API server (tests/helpers/
// fake-kube.ts), a scripted broker, an injectable clock and the real status writer, metrics and
// actions (scale, update-config) plus a test-only "probe" action for the cases the real ones cannot
// produce; builders for targets, tokens and tasks; and a runner that keeps reconciling a task the
// way the work queue does (honouring requeueAfterMs by moving the clock, never sleeping).
import { Writable } from "node:stream";
import type { AgentTask, AgentTaskSpec } from "../../../crds/agenttask";
import { ANNOTATION_APPLIED_BY, ANNOTATION_REQUESTER } from "../../../crds/agenttask";
import type { KubeObject, Plan, Planned, TaskContext, VerifyResult } from "../../../capabilities/lib/action";
import { markerAnnotations } from "../../../capabilities/lib/action/marker";
import { parseConfig, type OperatorConfig } from "../../../capabilities/lib/config";
import { AtbError } from "../../../capabilities/lib/errors";
import { resourcePath } from "../../../capabilities/lib/kube";
import { ObjectWatches } from "../../../capabilities/lib/kube/object-watch";
import { createLogger } from "../../../capabilities/lib/logger";
import { OperatorMetrics } from "../../../capabilities/lib/metrics";
import { Pipeline, type PipelineDeps } from "../../../capabilities/lib/pipeline";
import { createStatusWriter } from "../../../capabilities/lib/status/writer";
import { requesterText, type Requester } from "../../../capabilities/lib/requester";
import { ScaleAction } from "../../../capabilities/scale";
import { UpdateConfigAction } from "../../../capabilities/update-config";
import { FakeBroker } from "../../helpers/fake-broker";
import { FakeKube, withExecutors, type AuditEntry, type FakeKubeOptions } from "../../helpers/fake-kube";

export const NS = "shop";
export const AGENT = "spiffe://atb.example.com/agent/test";
/** Who creates the tasks (the requester annotation the webhook writes): any identity; the fake broker binds nothing. */
export const REQUESTER: Requester = {
  username: "system:serviceaccount:shop:agent",
  uid: "u-1",
  groups: ["system:authenticated"],
};
/** A task's metadata as the webhook leaves it: the requester annotation for REQUESTER. */
export const requesterMetadata = (): { annotations: Record<string, string> } => ({
  annotations: { [ANNOTATION_REQUESTER]: requesterText(REQUESTER) },
});
export const T0 = Date.parse("2026-05-01T10:00:00Z");

/** Short backoffs, small bounds: every number a test reasons about. */
export const ENV = {
  LOG_LEVEL: "error",
  ATB_TASK_MAX_ATTEMPTS: "3",
  ATB_TASK_BACKOFF_MS: "100",
  ATB_TASK_MAX_BACKOFF_MS: "400",
  ATB_TASK_DEADLINE_SECONDS: "600",
  ATB_ROLLOUT_TIMEOUT_SECONDS: "120",
};

export class Clock {
  constructor(public t = T0) {}
  readonly now = (): Date => new Date(this.t);
  advance(ms: number): void {
    this.t += ms;
  }
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");

/** A JWT-shaped PoA whose exp the pipeline can read (the broker, faked, verifies nothing). */
export function token(expMs: number): string {
  return `${b64({ alg: "ES256", typ: "JWT" })}.${b64({ sub: AGENT, exp: Math.floor(expMs / 1000) })}.c2ln`;
}

// ---- the probe action ----

export interface ProbeScript {
  /** Plans the change on the target; default: set annotation probe/value to payload.value. */
  plan?: (ctx: TaskContext, target: KubeObject | undefined, n: number) => Planned | Promise<Planned>;
  verify?: (ctx: TaskContext, n: number) => VerifyResult | Promise<VerifyResult>;
}

export const PROBE_ANNOTATION = "probe.example.com/value";

/** The probe's default plan: one merge patch (change + marker) under the observed resourceVersion. */
export function probePlan(ctx: TaskContext, target: KubeObject | undefined, retryOnConflict = false): Plan {
  const t = ctx.spec.target;
  if (!target) throw new AtbError("TARGET_NOT_FOUND", `${t.kind} ${t.namespace}/${t.name} does not exist`);
  const value = String(ctx.spec.payload?.value ?? "x");
  return {
    params: { value },
    context: { current: target.metadata.annotations?.[PROBE_ANNOTATION] ?? null },
    write: {
      method: "PATCH",
      path: resourcePath(t.kind, t.namespace, t.name),
      patchType: "merge",
      body: {
        metadata: {
          resourceVersion: target.metadata.resourceVersion,
          annotations: { ...markerAnnotations(target, ctx.uid), [PROBE_ANNOTATION]: value },
        },
      },
    },
    retryOnConflict,
  };
}

export interface Probe {
  module: PipelineDeps["actions"][string];
  calls: { plan: number; verify: number };
}

/**
 * A test-only action registered as "patch" (the name a task must carry to reach it). It borrows
 * the real scale module's declarations (tier, schema, capability) and overrides what it does.
 */
export function probe(script: ProbeScript = {}): Probe {
  const calls = { plan: 0, verify: 0 };
  const module = {
    ...ScaleAction,
    action: "patch",
    kinds: ["Deployment", "ConfigMap"],
    validate: () => [],
    plan: async (ctx: TaskContext, target: KubeObject | undefined) => {
      calls.plan++;
      return script.plan ? script.plan(ctx, target, calls.plan) : probePlan(ctx, target);
    },
    verify: async (ctx: TaskContext) => {
      calls.verify++;
      return script.verify ? script.verify(ctx, calls.verify) : { state: "done" as const, message: "probe done" };
    },
  } as unknown as Probe["module"];
  return { module, calls };
}

// ---- the world ----

export interface World {
  clock: Clock;
  kube: FakeKube;
  broker: FakeBroker;
  metrics: OperatorMetrics;
  config: Readonly<OperatorConfig>;
  /** Keys the pipeline woke (a waiter handed its target). */
  wakes: string[];
  /** Every transition the pipelines logged (stored ones only: carried ones are logged with the write that stores them). */
  transitions: { name: string; phase: string; reason: string; detail: string }[];
  /** The current operator process. */
  pipeline: Pipeline;
  /** The current process's rollout watches (WorldOptions.watches); close them at the end of a test. */
  watches?: ObjectWatches;
  /** A new process over the same API server: empty memory, new locks. */
  restart(): Pipeline;
  actions: PipelineDeps["actions"];
}

export interface WorldOptions {
  env?: Record<string, string>;
  kube?: FakeKubeOptions;
  probe?: Probe;
  /** Build the pipeline without a wake callback (its default). */
  noWake?: boolean;
  /** More action modules by name (e.g. the real deploy), over scale, update-config and the probe. */
  actions?: Record<string, unknown>;
  /** Follow rollouts through the fake's watches (ObjectWatches) instead of polling. */
  watches?: boolean;
}

const quiet = (): ReturnType<typeof createLogger> =>
  createLogger("error", "test", new Writable({ write: (_c, _e, cb) => cb() }));

export function world(o: WorldOptions = {}): World {
  const clock = new Clock();
  const kube = withExecutors(new FakeKube({ now: clock.now, ...o.kube }), ["shop", "elsewhere", "kube-system"]);
  const broker = new FakeBroker();
  broker.stamp = () => kube.audit.length;
  const metrics = new OperatorMetrics();
  const config = parseConfig({ ...ENV, ...o.env });
  const log = quiet();
  const transitions: World["transitions"] = [];
  const info = log.info.bind(log);
  log.info = ((msg: unknown, meta?: Record<string, unknown>) => {
    if (msg === "transition" && meta)
      transitions.push({
        name: String(meta.name),
        phase: String(meta.phase),
        reason: String(meta.reason),
        detail: String(meta.detail),
      });
    return info(msg as string, meta);
  }) as typeof log.info;
  const actions = {
    scale: ScaleAction,
    "update-config": UpdateConfigAction,
    patch: (o.probe ?? probe()).module,
    ...o.actions,
  } as unknown as PipelineDeps["actions"];
  const wakes: string[] = [];
  const holder: { watches?: ObjectWatches } = {};
  const make = (): Pipeline =>
    new Pipeline({
      kube,
      broker,
      actions,
      config,
      log,
      metrics,
      status: createStatusWriter({ kube, log, now: clock.now, onEventError: () => metrics.eventErrors.inc() }),
      now: clock.now,
      sleep: async (ms: number) => clock.advance(ms),
      ...(o.noWake ? {} : { wake: (key: string) => void wakes.push(key) }),
      ...(o.watches ? { watches: (holder.watches = new ObjectWatches(kube, { lingerMs: 0 })) } : {}),
    });
  const w: World = {
    get watches() {
      return holder.watches;
    },
    clock,
    kube,
    broker,
    metrics,
    config,
    wakes,
    transitions,
    actions,
    pipeline: make(),
    restart: () => {
      kube.restart();
      w.pipeline = make();
      return w.pipeline;
    },
  };
  return w;
}

// ---- objects ----

export const deployPath = (name = "web", ns = NS): string => resourcePath("Deployment", ns, name);
export const configMapPath = (name = "flags", ns = NS): string => resourcePath("ConfigMap", ns, name);
export const taskPath = (name: string, ns = NS): string => resourcePath("AgentTask", ns, name);

/** A Deployment whose rollout is complete at `replicas`. */
export function deployment(w: World, name = "web", replicas = 2, ns = NS): KubeObject {
  w.kube.put(deployPath(name, ns), {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { labels: { app: name } },
    spec: { replicas, template: { spec: { containers: [{ name: "app", image: "nginx:1.27" }] } } },
  });
  return w.kube.completeRollout(deployPath(name, ns));
}

export function configMap(w: World, name = "flags", data: Record<string, string> = { a: "1" }): KubeObject {
  return w.kube.put(configMapPath(name), { apiVersion: "v1", kind: "ConfigMap", metadata: {}, data });
}

export interface TaskOptions {
  action?: string;
  kind?: AgentTaskSpec["target"]["kind"];
  target?: string;
  targetNamespace?: string;
  payload?: Record<string, unknown>;
  /** PoA exp, ms since the epoch; default five minutes from the clock. */
  exp?: number;
  poaToken?: string;
  agentId?: string;
  namespace?: string;
  status?: AgentTask["status"];
  /** The requester annotation's text (default: REQUESTER as the webhook writes it); null: none. */
  requester?: string | null;
}

const metadataWith = (requester: string | null | undefined): Record<string, unknown> =>
  requester === undefined
    ? requesterMetadata()
    : requester === null
      ? {}
      : { annotations: { [ANNOTATION_REQUESTER]: requester } };

/** Creates an AgentTask as the API server stores it after admission. Returns its key. */
export function submit(w: World, name: string, o: TaskOptions = {}): string {
  const ns = o.namespace ?? NS;
  const spec = {
    agentId: o.agentId ?? AGENT,
    poaToken: o.poaToken ?? token(o.exp ?? w.clock.t + 300_000),
    action: o.action ?? "scale",
    target: { kind: o.kind ?? "Deployment", name: o.target ?? "web", namespace: o.targetNamespace ?? ns },
    payload: o.payload ?? { replicas: 3 },
  } as AgentTaskSpec;
  w.kube.put(taskPath(name, ns), {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: metadataWith(o.requester),
    spec: spec as unknown as Record<string, unknown>,
    ...(o.status ? { status: o.status as Record<string, unknown> } : {}),
  });
  return `${ns}/${name}`;
}

export function task(w: World, key: string): AgentTask {
  const [ns, name] = key.split("/");
  const t = w.kube.read<AgentTask>(taskPath(name, ns));
  if (!t) throw new Error(`no task ${key}`);
  return t;
}

export const uidOf = (w: World, key: string): string => task(w, key).metadata!.uid!;

export const condition = (t: AgentTask, type: string) => t.status?.conditions?.find(c => c.type === type);

// ---- what happened ----

/** The phase:reason of every Event recorded for the task, in order (one per transition). */
export function trail(w: World, key: string): string[] {
  const name = key.split("/")[1];
  return w.transitions.filter(t => t.name === name).map(t => `${t.phase}:${t.reason}`);
}

/** The status writes of a task (PATCHes of its status subresource that the API server took). */
export function statusWrites(w: World, key: string): AuditEntry[] {
  const [ns, name] = key.split("/");
  return w.kube.audit.filter(
    e => e.method === "PATCH" && e.path === `${taskPath(name, ns)}/status` && Number(e.status) < 300,
  );
}

/** The Events recorded on a task, as `phase:reason`. */
export function events(w: World, key: string): string[] {
  const name = key.split("/")[1];
  return w.kube.audit
    .filter(e => e.method === "POST" && e.path.endsWith("/events") && e.status === 201)
    .map(e => e.body as { involvedObject: { name: string }; action: string; reason: string })
    .filter(b => b.involvedObject.name === name)
    .map(b => `${b.action}:${b.reason}`);
}

/** Whether an audited request is the write that applies task `uid` (a non-dry-run write carrying its marker). */
export function appliesTask(e: AuditEntry, uid: string): boolean {
  if (e.dryRun || e.method === "GET" || e.path.endsWith("/status")) return false;
  return JSON.stringify(e.body ?? null).includes(`"${ANNOTATION_APPLIED_BY}":"${uid}"`) || markerOp(e.body, uid);
}

function markerOp(body: unknown, uid: string): boolean {
  return (
    Array.isArray(body) &&
    body.some(op => {
      const o = op as { path?: string; value?: unknown };
      return o.path?.endsWith("applied-by-task") === true && o.value === uid;
    })
  );
}

/** Stored writes that applied task `uid` (a lost answer counts: the change was made). */
export const applyWrites = (w: World, uid: string): AuditEntry[] => w.kube.writes(e => appliesTask(e, uid));

/** Write attempts (stored or not) to a target path, dry runs excluded. */
export const targetAttempts = (w: World, path: string): AuditEntry[] =>
  w.kube.audit.filter(e => e.path === path && e.method !== "GET" && !e.dryRun);

// ---- the runner ----

export interface RunResult {
  calls: number;
  task: AgentTask;
  requeues: number[];
}

/**
 * Reconciles `key` until its task is terminal or `maxCalls` is reached, as the work queue would:
 * a requeue moves the clock by its delay; an answer without one (the task waits for the sweep or
 * a wake) moves it by `idleMs`. Runs `between` (e.g. the rollout controller) before each call.
 */
export async function drive(
  w: World,
  key: string,
  o: { maxCalls?: number; idleMs?: number; between?: () => void } = {},
): Promise<RunResult> {
  const requeues: number[] = [];
  let calls = 0;
  while (calls < (o.maxCalls ?? 50)) {
    o.between?.();
    const r = await w.pipeline.reconcile(key);
    calls++;
    const t = task(w, key);
    if (["Completed", "Denied", "Failed", "Planned"].includes(t.status?.phase ?? ""))
      return { calls, task: t, requeues };
    if (r.requeueAfterMs !== undefined) requeues.push(r.requeueAfterMs);
    w.clock.advance(r.requeueAfterMs ?? o.idleMs ?? 30_000);
  }
  return { calls, task: task(w, key), requeues };
}
