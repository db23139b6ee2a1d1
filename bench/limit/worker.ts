// The same-run limit: a plain client, in its own process like the operator, that does the API work
// of one LOW scale task without the operator's machinery (no Pepr, no watch, no work queue, no
// sweep): the same requests in the same order, built by the same product code (KubeClient, the
// status writer, the scale module's plan and verify, the broker client), with the same number of
// concurrent workers and one task at a time per target. Waiters for a target are handed the target
// directly when it is released. It learns about new tasks from the benchmark (IPC), not a watch.
//
// Per task: GET task; status PATCH Pending + Event; (target free) status PATCH Processing + Event;
// GET target; dry-run PATCH target; broker decide; status PATCH Executing + Event; GET target;
// PATCH target; status PATCH Executing/Applied + Event; verify: GET target (marker) + GET target
// (rollout), and while waiting every pollMs: GET task + the two GETs; status PATCH Completed + Event.
import { createWriteStream } from "node:fs";
import { ANNOTATION_REQUESTER, type AgentTask } from "../../crds/agenttask";
import type { KubeObject, TaskContext } from "../../capabilities/lib/action";
import { decideRequest, decisionTransition } from "../../capabilities/lib/pipeline";
import { requesterNotRecorded } from "../../capabilities/lib/pipeline/transitions";
import { parseRequester } from "../../capabilities/lib/requester";
import {
  BROKER_CLIENT_DEFAULTS,
  createBrokerClient,
  poaExpiry,
  type BrokerClient,
} from "../../capabilities/lib/broker/client";
import { parseConfig } from "../../capabilities/lib/config";
import { KubeClient, KubeError, resourcePath } from "../../capabilities/lib/kube";
import { createLogger, type Logger } from "../../capabilities/lib/logger";
import { appliedTasks, isApplied } from "../../capabilities/lib/action/marker";
import { createStatusWriter, type StatusWriter } from "../../capabilities/lib/status/writer";
import type { Transition } from "../../capabilities/lib/status/conditions";
import { ScaleAction } from "../../capabilities/scale";
import { KubeConfig } from "@kubernetes/client-node";
import { sleep } from "../measure";
import type { FromLimit, LimitInit, ToLimit } from "./protocol";

/** Worker slots; like the operator's work queue, work under way (`urgent`) goes before new tasks. */
class Semaphore {
  private waiting: (() => void)[] = [];
  private urgent: (() => void)[] = [];
  constructor(private free: number) {}
  async take(urgent = false): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>(r => (urgent ? this.urgent : this.waiting).push(r));
  }
  give(): void {
    const next = this.urgent.shift() ?? this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** One task per target; release hands the target to the next waiter at once. */
class TargetFifo {
  private readonly held = new Map<string, (() => void)[]>();
  tryAcquire(key: string): boolean {
    if (this.held.has(key)) return false;
    this.held.set(key, []);
    return true;
  }
  acquire(key: string): Promise<void> {
    if (this.tryAcquire(key)) return Promise.resolve();
    return new Promise(r => this.held.get(key)!.push(r));
  }
  release(key: string): void {
    const q = this.held.get(key);
    const next = q?.shift();
    if (next) next();
    else this.held.delete(key);
  }
}

interface LimitDeps {
  kube: KubeClient;
  broker: BrokerClient;
  status: StatusWriter;
  log: Logger;
  init: LimitInit;
}

class Limit {
  private readonly sem: Semaphore;
  private readonly fifo = new TargetFifo();
  private readonly config = parseConfig({});
  private readonly kube: KubeClient;
  private readonly broker: BrokerClient;
  private readonly status: StatusWriter;
  private readonly log: Logger;
  private readonly init: LimitInit;

  constructor(d: LimitDeps) {
    ({ kube: this.kube, broker: this.broker, status: this.status, log: this.log, init: this.init } = d);
    this.sem = new Semaphore(d.init.workers);
  }

  async run(namespace: string, name: string): Promise<string> {
    await this.sem.take();
    let targetKey: string | undefined;
    try {
      let task = (await this.kube.get<AgentTask>(resourcePath("AgentTask", namespace, name)))!;
      task = await this.to(task, {
        phase: "Pending",
        reason: "Queued",
        message: "Task received; waiting for a worker",
      });
      const t = task.spec!.target;
      targetKey = `${t.kind}/${t.namespace}/${t.name}`;
      if (!this.fifo.tryAcquire(targetKey)) {
        this.sem.give();
        await this.fifo.acquire(targetKey);
        await this.sem.take(true);
        task = (await this.kube.get<AgentTask>(resourcePath("AgentTask", namespace, name)))!;
      }
      task = await this.to(task, {
        phase: "Processing",
        reason: "Authorizing",
        message: "Authorizing with ATB",
        conditions: [
          { type: "Authorized", status: "Unknown", reason: "Authorizing", message: "Asking the ATB broker" },
        ],
      });
      return await this.authorizeAndApply(task);
    } finally {
      if (targetKey) this.fifo.release(targetKey);
      this.sem.give();
    }
  }

  private to(task: AgentTask, t: Transition): Promise<AgentTask> {
    return this.status.transition(task, t);
  }

  private ctx(task: AgentTask): TaskContext {
    return { task, spec: task.spec!, uid: task.metadata!.uid!, kube: this.kube, config: this.config, log: this.log };
  }

  private getTarget(ctx: TaskContext): Promise<KubeObject | undefined> {
    const t = ctx.spec.target;
    return this.kube.get<KubeObject>(resourcePath(t.kind, t.namespace, t.name));
  }

  private async authorizeAndApply(task: AgentTask): Promise<string> {
    const ctx = this.ctx(task);
    const requester = parseRequester(task.metadata?.annotations?.[ANNOTATION_REQUESTER]);
    if (!requester) {
      await this.to(task, requesterNotRecorded());
      return "Denied";
    }
    let plan = await ScaleAction.plan(ctx, await this.getTarget(ctx));
    await this.kube.request(plan.write, true);
    const m = task.metadata!;
    const exp = poaExpiry(ctx.spec.poaToken);
    const decision = await this.broker.decide(decideRequest(task, plan, requester), {
      deadline: exp,
      requestIdBase: `${m.uid}.0`,
    });
    // The same transitions as the pipeline (capabilities/lib/pipeline/).
    const next = decisionTransition(decision);
    if (!decision.allowed) {
      await this.to(task, next);
      return "Denied";
    }
    task = await this.to(task, next);
    for (let attempt = 0; attempt < 4; attempt++) {
      const target = await this.getTarget(ctx);
      if (isApplied(target, ctx.uid)) break;
      if (attempt > 0) plan = await ScaleAction.plan(ctx, target);
      try {
        await this.kube.request(plan.write);
        break;
      } catch (err) {
        if (!(err instanceof KubeError && err.status === 409)) throw err;
      }
    }
    const message = "change applied; waiting for it to take effect";
    task = await this.to(task, {
      phase: "Executing",
      reason: "Applied",
      message,
      conditions: [{ type: "Executed", status: "True", reason: "Applied", message }],
    });
    return this.verify(task);
  }

  private async verify(task: AgentTask): Promise<string> {
    const m = task.metadata!;
    for (;;) {
      const ctx = this.ctx(task);
      appliedTasks(await this.getTarget(ctx)); // the pipeline's "superseded by a later task" check
      const r = await ScaleAction.verify(ctx);
      if (r.state === "done") {
        await this.to(task, {
          phase: "Completed",
          reason: "Completed",
          message: r.message,
          conditions: [{ type: "Succeeded", status: "True", reason: "Completed", message: r.message }],
        });
        return "Completed";
      }
      if (r.state === "failed") throw new Error(`verify failed: ${r.message}`);
      this.sem.give();
      await sleep(this.init.pollMs);
      await this.sem.take(true);
      task = (await this.kube.get<AgentTask>(resourcePath("AgentTask", m.namespace!, m.name!)))!;
    }
  }
}

async function main(): Promise<void> {
  let limit: Limit | undefined;
  let kube: KubeClient | undefined;
  let broker: BrokerClient | undefined;
  const send = (m: FromLimit) => process.send!(m);
  process.on("message", (msg: ToLimit) => {
    if (msg.type === "init") {
      void (async () => {
        const kc = new KubeConfig();
        kc.loadFromFile(msg.kubeconfig);
        kube = await KubeClient.fromEnvironment({ qps: msg.qps, kubeconfig: kc });
        const log = createLogger("info", "bench-limit", createWriteStream(msg.logFile, { flags: "a" }));
        broker = createBrokerClient(
          {
            brokerUrl: msg.brokerUrl,
            tls: msg.tls,
            insecure: false,
            ...BROKER_CLIENT_DEFAULTS,
          },
          log,
        );
        const status = createStatusWriter({ kube, log });
        limit = new Limit({ kube, broker, status, log, init: msg });
        send({ type: "ready" });
      })();
    } else if (msg.type === "task") {
      limit!.run(msg.namespace, msg.name).then(
        phase => send({ type: "done", name: msg.name, phase }),
        (err: unknown) => send({ type: "done", name: msg.name, phase: "Error", error: String(err).slice(0, 500) }),
      );
    } else if (msg.type === "stats") {
      send({ type: "stats", requests: kube?.counts.requests ?? 0, writes: kube?.counts.writes ?? 0 });
    } else if (msg.type === "exit") {
      void Promise.all([kube?.close(), broker?.close()]).finally(() => process.exit(0));
    }
  });
  process.on("disconnect", () => process.exit(0));
}

void main();
