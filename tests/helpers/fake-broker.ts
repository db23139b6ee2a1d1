// A scripted stand-in for the operator's ATB broker client (`BrokerClient`): each decide() call
// takes the next scripted answer (a Decision, allow or deny, or a thrown AtbError of any kind in
// the catalog), falling back to a default answer, and every call is recorded with its request
// and options so tests can check what the broker was asked, when, and with which token.
import type {
  BrokerClient,
  DecideOptions,
  DecideRequest,
  Decision,
  PlanAnswer,
  PlanRequest,
  RiskTier,
  VerifyRequest,
} from "../../capabilities/lib/broker/client";
import { AtbError, type ErrorKind } from "../../capabilities/lib/errors";

/** One scripted answer: a decision, an error to throw, or a function of the request. */
export type BrokerAnswer = Decision | AtbError | ((req: DecideRequest, n: number) => Decision | AtbError);

export interface BrokerCall {
  /** 1-based call number. */
  n: number;
  request: DecideRequest;
  options: DecideOptions;
  /** What the call answered: "allow", "deny", or the error's code. */
  outcome: string;
  /** The value of `stamp()` when the call was made (e.g. the API server's audit length, to order calls and writes). */
  stamp: number;
}

let counter = 0;

export function allow(riskTier: RiskTier = "LOW", reason = "policy allows"): Decision {
  counter++;
  return {
    allowed: true,
    riskTier,
    reason,
    requestId: `req-${counter}`,
    evaluateMs: 1.5,
    decisionId: `dec-${counter}`,
    policyRevision: "rev-1",
  };
}

export function deny(reason = "target_mismatch", riskTier: RiskTier = "LOW"): Decision {
  counter++;
  return { allowed: false, riskTier, reason, requestId: `req-${counter}`, evaluateMs: 0.7 };
}

/** A broker client failure of the given catalog kind; BROKER_DEADLINE takes the last attempt's error as cause. */
export function brokerError(kind: ErrorKind, cause?: AtbError): AtbError {
  return new AtbError(kind, `simulated ${kind}`, cause ? { cause } : undefined);
}

/** A plan answer: the tier and the approvals the policy would need (by default what approvals.rego asks of the tier). */
export function planned(riskTier: RiskTier = "LOW", approvals?: PlanAnswer["approvalsRequired"]): PlanAnswer {
  counter++;
  const count = { LOW: 0, MEDIUM: 1, HIGH: 2, CRITICAL: 2 }[riskTier];
  return {
    riskTier,
    approvalsRequired: approvals ?? (riskTier === "CRITICAL" ? { count, roles: ["executive"] } : { count }),
    reason: "plan_only",
    requestId: `req-${counter}`,
  };
}

/** One plan call (a Plan task's question, no token). */
export interface PlanCall {
  n: number;
  request: PlanRequest;
  outcome: string;
  stamp: number;
}

/** One preflight (token check) call. */
export interface PreflightCall {
  n: number;
  request: VerifyRequest;
  outcome: string;
  stamp: number;
}

export class FakeBroker implements BrokerClient {
  /** decide() calls only; the preflights are in `preflights`. */
  readonly calls: BrokerCall[] = [];
  readonly preflights: PreflightCall[] = [];
  readonly plans: PlanCall[] = [];
  /** Answers every plan call (default: LOW, no approvals). */
  planDefault: (req: PlanRequest) => PlanAnswer | AtbError = () => planned();
  private readonly preflightScript: (Decision | AtbError)[] = [];
  /** Answers every preflight the script does not cover (default: the token is good). */
  preflightDefault: (req: VerifyRequest) => Decision | AtbError = () => allow("LOW", "token verified");
  closed = false;
  /** Stamps each call (see BrokerCall.stamp); tests set it to a clock of their choice. */
  stamp: () => number = () => 0;
  private readonly script: BrokerAnswer[] = [];

  /** `otherwise` answers every call the script does not cover (default: allow LOW). */
  constructor(private otherwise: BrokerAnswer = () => allow()) {}

  /** Queues answers for the next calls, in order. */
  answer(...answers: BrokerAnswer[]): this {
    this.script.push(...answers);
    return this;
  }

  /** Replaces the default answer. */
  byDefault(answer: BrokerAnswer): this {
    this.otherwise = answer;
    return this;
  }

  async decide(request: DecideRequest, options: DecideOptions): Promise<Decision> {
    await Promise.resolve();
    const n = this.calls.length + 1;
    const stamp = this.stamp();
    const scripted = this.script.shift() ?? this.otherwise;
    const result = typeof scripted === "function" ? scripted(request, n) : scripted;
    const outcome = result instanceof AtbError ? result.code : result.allowed ? "allow" : "deny";
    this.calls.push({ n, request: structuredClone(request), options: { ...options }, outcome, stamp });
    if (result instanceof AtbError) throw result;
    return { ...result };
  }

  /** Queues answers for the next preflights, in order. */
  answerPreflight(...answers: (Decision | AtbError)[]): this {
    this.preflightScript.push(...answers);
    return this;
  }

  async verify(request: VerifyRequest, _options: DecideOptions): Promise<Decision> {
    await Promise.resolve();
    const result = this.preflightScript.shift() ?? this.preflightDefault(request);
    const outcome = result instanceof AtbError ? result.code : result.allowed ? "allow" : "deny";
    this.preflights.push({
      n: this.preflights.length + 1,
      request: structuredClone(request),
      outcome,
      stamp: this.stamp(),
    });
    if (result instanceof AtbError) throw result;
    return { ...result };
  }

  async plan(request: PlanRequest, _options: DecideOptions): Promise<PlanAnswer> {
    await Promise.resolve();
    const result = this.planDefault(request);
    const outcome = result instanceof AtbError ? result.code : "plan";
    this.plans.push({ n: this.plans.length + 1, request: structuredClone(request), outcome, stamp: this.stamp() });
    if (result instanceof AtbError) throw result;
    return { ...result };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Calls made for the task with this uid (read from the decide request's context). */
  callsFor(uid: string): BrokerCall[] {
    return this.calls.filter(c => (c.request.context.task as { uid?: string } | undefined)?.uid === uid);
  }
}
