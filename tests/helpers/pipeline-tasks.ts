// What the end-to-end tests of the six actions share when they go through the whole product
// (AgentTask → admission webhooks → pipeline → broker with a minted PoA → action → verify): one
// stack per test file, tokens approved as the policy's tier for the action demands, workloads
// with real rollout history, and the checks every file ends with (at most once, no leaks).
import { createWriteStream, readFileSync } from "node:fs";
import { createServer, request, type Server } from "node:https";
import { join } from "node:path";
import { startBroker } from "../../broker/server";
import { createLogger } from "../../capabilities/lib/logger";
import { ACTION_MODULES, type Action } from "../../capabilities/registry";
import type { ClusterState } from "../../tools/controlplane/cluster";
import { agentTask, mintTaskToken, workload } from "../../tools/objects";
import { LOCAL_ADMIN_BINDING, writeDataWithBinding } from "../../tools/requester-binding";
import { startStack, type Stack, type StackOptions } from "../../tools/stack";
import { operatorWrites } from "./audit";
import { eventually, Kube } from "./kube";
import { scanForSecrets } from "./secrets";

export const AGENT = "spiffe://atb.example.com/agent/release-agent";
export type { Action };
export type Kind = "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "ConfigMap" | "Secret" | "Service";
export type Workload = "Deployment" | "StatefulSet" | "DaemonSet";

/** The policy's default tier per action (each action's module); scale is LOW for changes within 2×. */
export const TIER = Object.fromEntries(
  ACTION_MODULES.map(m => {
    if (m.tier === "CRITICAL") throw new Error(`action ${m.action}: no approvers here satisfy a CRITICAL tier`);
    return [m.action, m.tier];
  }),
) as Record<Action, "LOW" | "MEDIUM" | "HIGH">;
/** Approvers that satisfy each tier: none, one who is not the agent, two distinct ones. */
export const APPROVERS = { LOW: [], MEDIUM: ["alice@example.com"], HIGH: ["alice@example.com", "bob@example.com"] };

export interface TaskRequest {
  action: Action;
  kind: Kind;
  /** The target's name (in the harness's namespace). */
  target: string;
  payload?: unknown;
  approvers?: string[];
}

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message?: string;
}

export interface Task {
  metadata: { name: string; uid: string; creationTimestamp: string; labels?: Record<string, string> };
  spec: { action: Action; target: { kind: Kind; name: string; namespace: string } };
  status?: {
    phase?: string;
    message?: string;
    atbResult?: { allowed?: boolean; riskTier?: string; reason?: string; requestId?: string };
    conditions?: Condition[];
    finishedAt?: string;
  };
}

export interface Obj {
  metadata: {
    name: string;
    uid: string;
    generation?: number;
    resourceVersion: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { uid: string }[];
    managedFields?: { manager: string; operation: string }[];
  };
  spec?: Record<string, unknown> & { replicas?: number; template?: Template };
  status?: Record<string, unknown>;
  data?: Record<string, string>;
  revision?: number;
}

export interface Template {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: { name: string; image: string }[]; nodeSelector?: Record<string, string> };
}

export const images = (t: Template | undefined): string[] => (t?.spec.containers ?? []).map(c => c.image);
/** The pod template a ControllerRevision records (its data is a patch of the workload's spec). */
export const revisionTemplate = (cr: Obj): Template =>
  (cr.data as unknown as { spec: { template: Template } }).spec.template;
export const revisionOf = (o: Obj): number =>
  typeof o.revision === "number"
    ? o.revision
    : Number(o.metadata.annotations?.["deployment.kubernetes.io/revision"] ?? 0);
export const executed = (t: Task): boolean =>
  t.status?.conditions?.some(c => c.type === "Executed" && c.status === "True") ?? false;

export class Harness {
  stack!: Stack;
  kube!: Kube;
  /** Every token minted in this file and every Secret value written: none may leak. */
  readonly secrets: string[] = [];

  constructor(
    readonly cluster: ClusterState,
    readonly ns: string,
    readonly workDir: string,
  ) {}

  async start(operatorEnv: Record<string, string> = {}, more: Partial<StackOptions> = {}): Promise<void> {
    this.stack = await startStack({
      cluster: this.cluster,
      workDir: join(this.cluster.dataDir, this.workDir),
      namespaces: [this.ns],
      operatorEnv,
      ...more,
    });
    this.kube = new Kube(this.stack.bin, this.cluster.kubeconfig);
    this.kube.namespace(this.ns);
  }

  async stop(): Promise<void> {
    await this.stack?.stop();
  }

  /** A PoA for action on kind/name, approved as the tier requires unless approvers are given;
   * given the task's payload, it binds the task's change (con.change_sha256). */
  async token(
    action: Action,
    kind: Kind,
    name: string,
    { approvers = APPROVERS[TIER[action]], payload }: { approvers?: string[]; payload?: unknown } = {},
  ): Promise<string> {
    const token = await mintTaskToken(this.stack, {
      agent: AGENT,
      action,
      target: { kind, name, namespace: this.ns },
      approvers,
      payload,
    });
    this.secrets.push(token);
    return token;
  }

  task(name: string, r: TaskRequest, token: string): object {
    return agentTask({
      name,
      namespace: this.ns,
      agentId: AGENT,
      poaToken: token,
      action: r.action,
      target: { kind: r.kind, name: r.target, namespace: this.ns },
      payload: r.payload,
    });
  }

  /** Mints a token (approved as the tier requires unless r.approvers says otherwise), creates the
   * task (admission must accept it) and waits for a terminal phase. */
  async run(name: string, r: TaskRequest): Promise<Task> {
    const token = await this.token(r.action, r.kind, r.target, { approvers: r.approvers, payload: r.payload ?? {} });
    const created = this.kube.create(this.task(name, r, token));
    if (!created.ok) throw new Error(`creating task ${name} failed: ${created.stderr.trim()}`);
    return this.terminal(name);
  }

  /** Waits until the task is in one of `phases` (default: a terminal phase). */
  terminal(name: string, timeoutMs = 180_000, phases = ["Completed", "Denied", "Failed"]): Promise<Task> {
    return eventually(`task ${name} in ${phases.join("|")}`, timeoutMs, () => {
      const t = this.kube.get<Task>("agenttask", name, this.ns);
      return phases.includes(t.status?.phase ?? "") ? t : undefined;
    });
  }

  /** Like run(), but returns as soon as the task waits for approvals (or ends). */
  async runUntilWaiting(name: string, r: TaskRequest): Promise<Task> {
    const token = await this.token(r.action, r.kind, r.target, { approvers: r.approvers, payload: r.payload ?? {} });
    const created = this.kube.create(this.task(name, r, token));
    if (!created.ok) throw new Error(`creating task ${name} failed: ${created.stderr.trim()}`);
    return this.terminal(name, 180_000, ["AwaitingApproval", "Completed", "Denied", "Failed"]);
  }

  get(kind: string, name: string): Obj {
    return this.kube.get<Obj>(kind, name, this.ns);
  }

  exists(kind: string, name: string): boolean {
    return this.kube.try(["get", kind, name, "-n", this.ns]).ok;
  }

  create(obj: object): void {
    const r = this.kube.create(obj);
    if (!r.ok) throw new Error(`create failed: ${r.stderr.trim()}`);
  }

  workload(kind: Workload | "ReplicaSet", name: string, image: string, extra: Record<string, unknown> = {}): object {
    return workload({ kind, name, namespace: this.ns, image, spec: extra });
  }

  /** Creates a workload and waits until the controllers finished its first rollout. */
  async ready(
    kind: Workload | "ReplicaSet",
    name: string,
    image = "nginx:1.27",
    extra: Record<string, unknown> = {},
  ): Promise<Obj> {
    this.create(this.workload(kind, name, image, extra));
    return this.rolledOut(kind, name);
  }

  /** Waits for `kubectl rollout status` (ReplicaSets: every replica ready). */
  async rolledOut(kind: Workload | "ReplicaSet", name: string): Promise<Obj> {
    if (kind === "ReplicaSet") {
      return eventually(`${kind} ${name} ready`, 120_000, () => {
        const o = this.get(kind, name);
        return o.status?.readyReplicas === o.spec?.replicas && o.status?.observedGeneration === o.metadata.generation
          ? o
          : undefined;
      });
    }
    await eventually(
      `${kind} ${name} rolled out`,
      150_000,
      () =>
        this.kube.try(["rollout", "status", `${kind.toLowerCase()}/${name}`, "-n", this.ns, "--timeout=20s"]).ok ||
        undefined,
    );
    return this.get(kind, name);
  }

  /**
   * Waits until the controllers stopped writing the object (the same resourceVersion on reads
   * 2 s apart). A patch applies only to the version the broker judged: a late status write by a
   * controller between the decision and the write would rightly fail the task.
   */
  async quiet(kind: string, name: string): Promise<Obj> {
    let last = this.get(kind, name);
    for (let i = 0; i < 60; i++) {
      await sleep(2_000);
      const o = this.get(kind, name);
      if (o.metadata.resourceVersion === last.metadata.resourceVersion) return o;
      last = o;
    }
    throw new Error(`${kind} ${name} kept changing for 120 s`);
  }

  /** ReplicaSets or ControllerRevisions the controllers made for `owner`, oldest revision first. */
  owned(kind: "ReplicaSet" | "ControllerRevision", owner: Obj): Obj[] {
    const list = JSON.parse(this.kube.run(["get", kind.toLowerCase(), "-n", this.ns, "-o", "json"])) as {
      items: Obj[];
    };
    return list.items
      .filter(i => i.metadata.ownerReferences?.some(r => r.uid === owner.metadata.uid))
      .sort((a, b) => revisionOf(a) - revisionOf(b));
  }

  tasks(): Task[] {
    return (JSON.parse(this.kube.run(["get", "agenttasks", "-n", this.ns, "-o", "json"])) as { items: Task[] }).items;
  }

  /** The operator's successful writes to each object of this namespace (not to tasks), from the API server's audit log. */
  targetWrites(): Map<string, number> {
    const byName = new Map<string, number>();
    const all = operatorWrites(
      this.cluster.dataDir,
      e => e.objectRef?.namespace === this.ns && !e.objectRef.resource?.startsWith("agenttasks"),
    );
    for (const [key, n] of all) {
      const name = key.split("/").pop()!;
      byName.set(name, (byName.get(name) ?? 0) + n);
    }
    return byName;
  }

  brokerLines(): number {
    return readFileSync(this.stack.auditFile, "utf8").split("\n").filter(Boolean).length;
  }

  /** Everything a leak could end up in: operator and broker logs, the broker's audit, events,
   * and the tasks as stored minus the two fields that hold the agent's input by design
   * (spec.poaToken, and spec.payload.data of update-config). */
  leakSurfaces(): string[] {
    const tasks = JSON.parse(this.kube.run(["get", "agenttasks", "-n", this.ns, "-o", "json"])) as {
      items: { spec: { poaToken?: string; payload?: { data?: unknown } } }[];
    };
    for (const t of tasks.items) {
      delete t.spec.poaToken;
      if (t.spec.payload) delete t.spec.payload.data;
    }
    return [
      this.stack.operator.logs(),
      readFileSync(join(this.cluster.dataDir, this.workDir, "broker.log"), "utf8"),
      readFileSync(this.stack.auditFile, "utf8"),
      this.kube.run(["get", "events", "-n", this.ns, "-o", "json"]),
      JSON.stringify(tasks),
    ];
  }
}

/**
 * At most once, on the API server's own record: every object of the namespace was written by the
 * operator exactly once per task whose change was applied (Executed=True) and never otherwise;
 * after a restart of the operator, finished and waiting tasks cost no write and no broker call.
 */
export async function checkAtMostOnce(h: Harness): Promise<void> {
  const tasks = h.tasks();
  expect(tasks.length).toBeGreaterThan(0);
  // Settled: finished, or waiting for approvals (which a restart must not decide again either).
  expect(
    tasks.filter(t => !["Completed", "Denied", "Failed", "AwaitingApproval"].includes(t.status?.phase ?? "")),
  ).toEqual([]);
  const expected = new Map<string, number>();
  for (const t of tasks) if (executed(t)) expected.set(t.spec.target.name, (expected.get(t.spec.target.name) ?? 0) + 1);
  const writes = h.targetWrites();
  for (const [name, n] of writes) expect({ name, writes: n }).toEqual({ name, writes: expected.get(name) ?? 0 });
  for (const [name, n] of expected) expect({ name, writes: writes.get(name) ?? 0 }).toEqual({ name, writes: n });
  expect(expected.size).toBeGreaterThan(0);
  const calls = h.brokerLines();
  await h.stack.restartOperator();
  await sleep(6_000); // the initial LIST, the ADDED events and at least one sweep (every 5 s)
  expect(h.targetWrites()).toEqual(writes);
  expect(h.brokerLines()).toBe(calls);
  const after = h.tasks();
  expect(after.map(t => [t.metadata.name, t.status?.phase])).toEqual(
    tasks.map(t => [t.metadata.name, t.status?.phase]),
  );
}

/** No minted token and no Secret value written in the file appears in logs, audit, events or task statuses. */
export function checkNoLeaks(h: Harness): void {
  expect(h.secrets.length).toBeGreaterThan(3);
  expect(scanForSecrets(h.leakSurfaces(), h.secrets)).toEqual([]);
}

/**
 * Puts a relay on the broker's address, in front of a broker of its own: each decision is
 * forwarded, and `hold` runs after the broker decided and before the operator gets the answer.
 */
export async function holdDecisions(
  h: Harness,
  hold: (decision: { allowed?: boolean; request_id?: string }) => Promise<void>,
): Promise<() => Promise<void>> {
  const m = h.stack.material;
  await h.stack.stopBroker();
  const log = createLogger(
    "info",
    "broker",
    createWriteStream(join(h.cluster.dataDir, h.workDir, "broker.log"), { flags: "a" }),
  );
  const broker = await startBroker({
    port: 0,
    tls: { certFile: m.server.cert, keyFile: m.server.key, clientCaFile: m.ca.cert },
    // The dev minter's key: its leg approval blocks count, as under the stack's own broker.
    poa: { publicKeyFiles: [m.poaPublicKey], preset: "dev" },
    audit: h.stack.auditFile,
    logger: log,
    // The tasks are created with the admin kubeconfig, as under the stack's own broker.
    dataFile: writeDataWithBinding(
      join(__dirname, "..", "..", "policies", "data.json"),
      [LOCAL_ADMIN_BINDING],
      join(h.cluster.dataDir, h.workDir, "held-broker-data.json"),
    ),
  });
  const client = { cert: readFileSync(m.client.cert), key: readFileSync(m.client.key), ca: readFileSync(m.ca.cert) };
  const relay: Server = createServer(
    {
      cert: readFileSync(m.server.cert),
      key: readFileSync(m.server.key),
      ca: client.ca,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const body: Buffer[] = [];
      req.on("data", (c: Buffer) => body.push(c));
      req.on("end", () => {
        const up = request(
          { host: "127.0.0.1", port: broker.port, path: req.url, method: req.method, headers: req.headers, ...client },
          answer => {
            const out: Buffer[] = [];
            answer.on("data", (c: Buffer) => out.push(c));
            answer.on("end", () => {
              const text = Buffer.concat(out);
              // Only decisions are held: the token preflight (/api/v1/verify) comes before the plan.
              // A failed hold shows in the test's assertions on the target; the answer goes out regardless.
              const decision = req.url === "/api/v1/decide";
              void Promise.resolve()
                .then(() => (decision ? hold(JSON.parse(text.toString("utf8")) as { allowed?: boolean }) : undefined))
                .catch(() => undefined)
                .then(() => {
                  res.writeHead(answer.statusCode ?? 502, answer.headers);
                  res.end(text);
                });
            });
          },
        );
        up.on("error", () => res.destroy());
        up.end(Buffer.concat(body));
      });
    },
  );
  await new Promise<void>((resolve, reject) =>
    relay.once("error", reject).listen(h.stack.brokerPort, "127.0.0.1", resolve),
  );
  return async () => {
    relay.closeAllConnections();
    await new Promise(r => relay.close(r));
    await broker.stop();
    await h.stack.startBroker();
  };
}

export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));
