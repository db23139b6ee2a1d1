// The same-run limit: the least API work a task strictly needs, in a process of its own, measured
// side by side with the operator on the same control plane. Not a copy of the operator's design:
// no broker call (the broker's cost is the broker scenario's), no admission webhooks, no Events,
// no intermediate statuses, no dry run, no GET before the write, no polling.
//
// It learns of tasks and of its targets' state from watches (a LIST when it starts, then WATCHes
// on AgentTasks, Deployments and ConfigMaps of its namespace), and per task it sends:
//   1. ONE merge PATCH of the target AS the namespace's executor (Impersonate-User, as the
//      operator writes targets), carrying the change and the at-most-once marker the product
//      stamps (capabilities/lib/action/marker.ts: markerMetadata, i.e. the marker annotations and
//      the resourceVersion precondition of the target as last seen; a 409 costs a GET and a retry,
//      counted). scale: spec.replicas; update-config of a ConfigMap: data (null for a removed key).
//   2. for a Deployment, nothing until its watch shows the rollout done by the product's rule
//      (capabilities/lib/kube/rollout: observedGeneration >= generation, replicas updated and
//      available); a ConfigMap has no rollout.
//   3. ONE merge PATCH of the task's status: phase Completed (Failed with the error otherwise).
// With the operator's concurrency (`workers` tasks worked on at once; a task waiting for its
// rollout gives its slot back and gets one first when the rollout is done, as the operator's work
// queue does) and one task per target at a time, handed to the next task in arrival order.
import type { KubeObject, VerifyResult } from "../../capabilities/lib/action";
import { resourcePath } from "../../capabilities/lib/kube/resources";
import { rolloutStatus } from "../../capabilities/lib/kube/rollout";
import { Api, type Method } from "../api";
import { patchBody, Semaphore, TargetFifo, type Task } from "./parts";
import type { FromLimit, LimitInit, LimitStats, ToLimit } from "./protocol";

export const LIMIT_USER_AGENT = "atb-bench-limit/0.1";
/** A rollout not done after this long fails its task. */
const ROLLOUT_TIMEOUT_MS = 300_000;
const TARGET_KINDS = ["Deployment", "ConfigMap"] as const;

interface List<T> {
  metadata: { resourceVersion: string };
  items: T[];
}

/** resourceVersions are etcd revisions here: the higher one is the later state of the object. */
const newer = (a: KubeObject, b: KubeObject | undefined): boolean =>
  !b || Number(a.metadata.resourceVersion) >= Number(b.metadata.resourceVersion);

class Limit {
  private readonly sem: Semaphore;
  private readonly fifo = new TargetFifo();
  /** The targets as last seen (watch events and the answers to our own writes), by "kind/name". */
  private readonly targets = new Map<string, KubeObject>();
  /** Called after every change of a target in the cache (rollout waits). */
  private readonly onTarget = new Map<string, () => void>();
  private readonly seen = new Set<string>();
  private readonly stops: (() => void)[] = [];
  readonly stats: LimitStats = { tasks: 0, requests: {}, conflicts: 0 };

  constructor(
    private readonly api: Api,
    private readonly init: LimitInit,
    private readonly send: (m: FromLimit) => void,
  ) {
    this.sem = new Semaphore(init.workers);
  }

  private async call<T>(method: Method, path: string, body?: unknown, asExecutor = false) {
    // <namespace>/<plural>[/<name>[/<subresource>]]: a GET without a name is a list.
    const [, plural, name, sub] = path.split("?")[0].split("/namespaces/")[1]?.split("/") ?? [];
    const verb = method === "GET" ? (name ? "get" : "list") : method.toLowerCase();
    const key = `${verb} ${plural}${sub ? `/${sub}` : ""}${asExecutor ? " (as executor)" : ""}`;
    this.stats.requests[key] = (this.stats.requests[key] ?? 0) + 1;
    const headers: Record<string, string> = asExecutor ? { "impersonate-user": this.init.executor } : {};
    const type = method === "PATCH" ? "application/merge-patch+json" : "application/json";
    return this.api.send<T>(method, path, body, { contentType: type, headers });
  }

  private async list<T>(path: string): Promise<List<T>> {
    const r = await this.call<List<T>>("GET", path);
    if (r.status !== 200) throw new Error(`list ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  }

  /** LISTs, then WATCHes: the tasks and both target kinds of the namespace. */
  async start(): Promise<void> {
    const ns = this.init.namespace;
    for (const kind of TARGET_KINDS) {
      const path = resourcePath(kind, ns);
      const relist = async () => {
        const l = await this.list<KubeObject>(path);
        for (const o of l.items) this.remember(kind, o);
        return l.metadata.resourceVersion;
      };
      const rv = await relist();
      this.stats.requests["watch " + path.split("/").pop()] = 1;
      this.stops.push(
        this.api.watch<KubeObject>(
          path,
          rv,
          (type, o) => {
            if (type === "DELETED") this.targets.delete(`${kind}/${o.metadata.name}`);
            else this.remember(kind, o);
          },
          relist,
        ),
      );
    }
    const tasks = resourcePath("AgentTask", ns);
    const relistTasks = async () => {
      const l = await this.list<Task>(tasks);
      for (const t of l.items) this.offer(t);
      return l.metadata.resourceVersion;
    };
    const rv = await relistTasks();
    this.stats.requests["watch agenttasks"] = 1;
    this.stops.push(
      this.api.watch<Task>(
        tasks,
        rv,
        (type, t) => {
          if (type !== "DELETED") this.offer(t);
        },
        relistTasks,
      ),
    );
  }

  stop(): void {
    for (const s of this.stops) s();
  }

  private remember(kind: string, o: KubeObject): void {
    const key = `${kind}/${o.metadata.name}`;
    if (!newer(o, this.targets.get(key))) return;
    this.targets.set(key, o);
    this.onTarget.get(key)?.();
  }

  /** A task not seen before and without a status is new: work on it. */
  private offer(t: Task): void {
    if (t.status?.phase || this.seen.has(t.metadata.uid)) return;
    this.seen.add(t.metadata.uid);
    void this.run(t).then(
      phase => this.send({ type: "done", name: t.metadata.name, phase }),
      (err: unknown) =>
        this.send({ type: "done", name: t.metadata.name, phase: "Error", error: String(err).slice(0, 500) }),
    );
  }

  async run(task: Task): Promise<string> {
    const { kind, name } = task.spec.target;
    const key = `${kind}/${name}`;
    let slot = false;
    const take = async (urgent = false) => {
      await this.sem.take(urgent);
      slot = true;
    };
    const give = () => {
      if (slot) this.sem.give();
      slot = false;
    };
    await take();
    if (!this.fifo.tryAcquire(key)) {
      give();
      await this.fifo.acquire(key);
      await take(true);
    }
    let phase = "Completed";
    let message: string;
    try {
      const written = await this.apply(task, key);
      if (kind === "Deployment") {
        give();
        try {
          message = await this.rollout(key, written.metadata.generation ?? 0);
        } finally {
          await take(true);
        }
      } else message = `${kind} ${name} updated`;
    } catch (err) {
      phase = "Failed";
      message = String(err instanceof Error ? err.message : err).slice(0, 500);
    }
    try {
      await this.writeStatus(task, phase, message);
    } finally {
      this.fifo.release(key);
      give();
    }
    this.stats.tasks++;
    if (phase !== "Completed") throw new Error(message);
    return phase;
  }

  /** The one write of the target, as the executor; on 409 (a stale cache) read it and write again. */
  private async apply(task: Task, key: string): Promise<KubeObject> {
    const { kind, name, namespace } = task.spec.target;
    const path = resourcePath(kind, namespace, name);
    let target = this.targets.get(key);
    for (let attempt = 0; attempt < 4; attempt++) {
      if (!target) {
        const r = await this.call<KubeObject>("GET", path, undefined, true);
        if (r.status !== 200) throw new Error(`GET ${kind} ${name}: HTTP ${r.status}`);
        this.remember(kind, r.body);
        target = r.body;
      }
      const r = await this.call<KubeObject>("PATCH", path, patchBody(task, target), true);
      if (r.status === 200) {
        this.remember(kind, r.body);
        return r.body;
      }
      if (r.status !== 409)
        throw new Error(`PATCH ${kind} ${name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      this.stats.conflicts++;
      target = undefined;
    }
    throw new Error(`PATCH ${kind} ${name}: 4 conflicts in a row`);
  }

  /** Resolves when the watched target of `key` at `generation` or later is rolled out. */
  private rollout(key: string, generation: number): Promise<string> {
    const kind = key.slice(0, key.indexOf("/"));
    return new Promise((resolve, reject) => {
      const finish = (f: () => void) => {
        clearTimeout(timer);
        this.onTarget.delete(key);
        f();
      };
      const check = () => {
        const o = this.targets.get(key);
        if (!o || (o.metadata.generation ?? 0) < generation) return;
        const s: VerifyResult = rolloutStatus(kind, o);
        if (s.state === "done") finish(() => resolve(s.message));
        else if (s.state === "failed") finish(() => reject(new Error(s.message)));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`rollout of ${key} not done after ${ROLLOUT_TIMEOUT_MS / 1000}s`))),
        ROLLOUT_TIMEOUT_MS,
      );
      this.onTarget.set(key, check);
      check();
    });
  }

  /** The one status write: the terminal phase. */
  private async writeStatus(task: Task, phase: string, message: string): Promise<void> {
    const m = task.metadata;
    const path = resourcePath("AgentTask", m.namespace, m.name, "status");
    const status = { phase, message, observedGeneration: m.generation ?? 1, finishedAt: new Date().toISOString() };
    const r = await this.call("PATCH", path, { status });
    if (r.status !== 200)
      throw new Error(`status of ${m.name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  }
}

function main(): void {
  let limit: Limit | undefined;
  let api: Api | undefined;
  const send = (m: FromLimit) => process.send!(m);
  process.on("message", (msg: ToLimit) => {
    if (msg.type === "init") {
      void (async () => {
        api = Api.open(msg.kubeconfig, { userAgent: LIMIT_USER_AGENT });
        limit = new Limit(api, msg, send);
        await limit.start();
        send({ type: "ready" });
      })().catch((err: unknown) => {
        console.error(`[limit] start failed: ${String(err)}`);
        process.exit(1);
      });
    } else if (msg.type === "stats") {
      send({ type: "stats", stats: limit?.stats ?? { tasks: 0, requests: {}, conflicts: 0 } });
    } else if (msg.type === "exit") {
      limit?.stop();
      void (api?.close() ?? Promise.resolve()).finally(() => process.exit(0));
    }
  });
  process.on("disconnect", () => process.exit(0));
}

main();
