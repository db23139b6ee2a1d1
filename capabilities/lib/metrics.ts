// The operator's Prometheus metrics on their own prom-client registry and HTTP port (Pepr's
// /metrics serves only Pepr's registry), plus liveness and readiness endpoints. Label values are
// bounded: actions, phases, tiers and stable reason codes only; never a name, token or value.
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { PHASES } from "../../crds/agenttask";

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly tasksTotal = new Counter({
    name: "atb_operator_tasks_total",
    help: "Tasks that reached a terminal phase",
    labelNames: ["action", "phase"],
    registers: [this.registry],
  });
  readonly tasksAllowed = new Counter({
    name: "atb_operator_tasks_allowed",
    help: "Tasks authorized by ATB",
    labelNames: ["action", "risk_tier"],
    registers: [this.registry],
  });
  readonly tasksDenied = new Counter({
    name: "atb_operator_tasks_denied",
    help: "Tasks denied by ATB",
    labelNames: ["action", "risk_tier", "reason"],
    registers: [this.registry],
  });
  readonly tasksFailed = new Counter({
    name: "atb_operator_tasks_failed",
    help: "Tasks that failed (authorization error or execution)",
    labelNames: ["action", "reason"],
    registers: [this.registry],
  });
  readonly processingSeconds = new Histogram({
    name: "atb_operator_processing_seconds",
    help: "Task processing duration, creation to terminal phase",
    labelNames: ["action", "phase"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
    registers: [this.registry],
  });
  readonly brokerSeconds = new Histogram({
    name: "atb_operator_broker_request_seconds",
    help: "Broker decide calls as seen by the operator (all attempts of one decision)",
    labelNames: ["outcome"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly brokerErrors = new Counter({
    name: "atb_operator_broker_errors_total",
    help: "Broker calls that ended in an error, by stable code",
    labelNames: ["code"],
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: "atb_operator_retries_total",
    help: "Task retries scheduled, by reason",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly tasksByPhase = new Gauge({
    name: "atb_operator_tasks",
    help: "Tasks by phase: open phases as of the last sweep, finished ones as of the last sweep that listed them",
    labelNames: ["phase"],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: "atb_operator_queue_depth",
    help: "Tasks waiting for a worker",
    registers: [this.registry],
  });
  readonly eventErrors = new Counter({
    name: "atb_operator_event_errors_total",
    help: "Kubernetes Events that could not be recorded",
    registers: [this.registry],
  });
  readonly tasksDeleted = new Counter({
    name: "atb_operator_tasks_deleted_total",
    help: "Finished tasks the operator deleted, by why (ttl: spec.ttlSecondsAfterFinished passed)",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly taskDeleteErrors = new Counter({
    name: "atb_operator_task_delete_errors_total",
    help: "Deletions of finished tasks that failed (retried by the next sweep), by why and error class",
    labelNames: ["reason", "code"],
    registers: [this.registry],
  });
  readonly watchEvents = new Counter({
    name: "atb_operator_watch_events_total",
    help: "Objects Pepr's watch delivered to the operator, by kind (finished tasks are not watched)",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly sweeps = new Counter({
    name: "atb_operator_sweeps_total",
    help: "Periodic sweeps of non-terminal tasks",
    labelNames: ["result"],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "atb_operator_" });
    for (const phase of PHASES) this.tasksByPhase.set({ phase }, 0);
    this.tasksDeleted.inc({ reason: "ttl" }, 0);
    for (const kind of ["AgentTask", "AgentTaskApproval"]) this.watchEvents.inc({ kind }, 0);
  }
}

export interface HealthSource {
  /** Liveness: the process's loop is turning. */
  live(): boolean;
  /** Readiness: watches and the sweep are working; a reason when not. */
  ready(): { ok: boolean; reason: string };
}

/** Serves /metrics, /healthz and /readyz over plain HTTP on host:port. */
export function serveMetrics(
  metrics: OperatorMetrics,
  health: HealthSource,
  host: string,
  port: number,
): Promise<Server> {
  const server = createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (url === "/metrics") {
      metrics.registry.metrics().then(
        text => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500).end();
        },
      );
      return;
    }
    if (url === "/healthz") {
      const ok = health.live();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok" : "not live");
      return;
    }
    if (url === "/readyz") {
      const r = health.ready();
      res.writeHead(r.ok ? 200 : 503, { "content-type": "text/plain" }).end(r.ok ? "ok" : r.reason);
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
