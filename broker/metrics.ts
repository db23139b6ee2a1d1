// The reference broker's Prometheus metrics, in a registry of its own (never the global one, so
// several brokers can run in one test process). Labels are bounded: result, tier and the policy's
// stable reason codes; never tokens, agents or targets.
import { Counter, Histogram, Registry } from "prom-client";

export interface BrokerMetrics {
  registry: Registry;
  decisions: Counter<"result" | "risk_tier" | "reason">;
  evaluation: Histogram<"result">;
  request: Histogram<"result">;
}

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createBrokerMetrics(): BrokerMetrics {
  const registry = new Registry();
  return {
    registry,
    decisions: new Counter({
      name: "atb_broker_decisions_total",
      help: "Decide requests by result (allow, deny, error), risk tier and reason code",
      labelNames: ["result", "risk_tier", "reason"],
      registers: [registry],
    }),
    evaluation: new Histogram({
      name: "atb_broker_policy_evaluation_duration_seconds",
      help: "Time OPA took to evaluate the decision",
      labelNames: ["result"],
      buckets: BUCKETS,
      registers: [registry],
    }),
    request: new Histogram({
      name: "atb_broker_decide_duration_seconds",
      help: "Time from request body received to answer (verification, replay check, policy)",
      labelNames: ["result"],
      buckets: BUCKETS,
      registers: [registry],
    }),
  };
}
