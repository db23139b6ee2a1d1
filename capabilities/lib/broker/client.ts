// The operator's ATB broker client: composes the transport (undici over mTLS), the result layer
// (fail-closed parsing) and the retry decorator (jittered backoff bounded by a deadline that the
// caller keeps before the PoA's exp). decide() resolves to a Decision (allow or deny) or throws
// an AtbError; nothing else. The token goes into the request body and nowhere else.
import type { Logger } from "../logger";
import { AtbError } from "../errors";
import type { Requester } from "../requester";
import { validateBrokerClientConfig, type BrokerClientConfig } from "./config";
import { createTransport, type BrokerTransport } from "./transport";
import { interpretResponse, type Decision, type RawAnswer } from "./response";
import { withRetry, systemClock, type AttemptOf, type RetryClock } from "./retry";
import { interpretPlanResponse, PLAN_PATH, planBody, type PlanAnswer, type PlanRequest } from "./plan";

export type { Decision, RiskTier } from "./response";
export type { BrokerClientConfig } from "./config";
export { validateBrokerClientConfig, BROKER_CLIENT_DEFAULTS } from "./config";
export type { PlanAnswer, PlanRequest, ApprovalsRequired } from "./plan";
export { PLAN_PATH } from "./plan";

export const DECIDE_PATH = "/api/v1/decide";
/** The token check before anything is read from the target (docs/authorization.md, "Preflight"). */
export const VERIFY_PATH = "/api/v1/verify";

export interface DecideTarget {
  kind: string;
  name: string;
  namespace: string;
}

export interface DecideRequest {
  /** k8s.<Kind>.<action>, e.g. k8s.Deployment.scale (see brokerAction in lib/action). */
  action: string;
  /** The PoA JWT. Sent in the body only; never logged. */
  token: string;
  /** spec.agentId (the agent's SPIFFE ID); the broker checks it equals the PoA's sub. */
  agentId: string;
  /**
   * The Kubernetes identity that created the task, as the admission webhook recorded it (sent as
   * `requester`); the broker's policy checks that it may act as agentId (requester_mismatch).
   */
  requester: Requester;
  target: DecideTarget;
  /** What will be applied (e.g. {replicas: 5}). */
  params: Record<string, unknown>;
  /** What the operator observed: task {uid,name,namespace}, current {replicas,image,revision,...}. */
  context: Record<string, unknown>;
  /** Approver attestations from the task (spec.attestations), sent as they are; never logged. */
  attestations?: string[];
}

/**
 * The preflight: the token and what it is bound to (signature, lifetime, sub, act, target, jti),
 * asked before the operator reads, dry-runs or evaluates anything on the target. An allow means
 * only "this token may be used for this action on this target"; the decision follows.
 */
export type VerifyRequest = Omit<DecideRequest, "params">;

export interface DecideOptions {
  /** Give up by then; the caller never sets it past the PoA's exp (see poaExpiry). */
  deadline: Date;
  /** Derived from the task (e.g. its uid and generation); attempts send `<base>-a<n>`. */
  requestIdBase: string;
}

export interface BrokerClient {
  decide(request: DecideRequest, options: DecideOptions): Promise<Decision>;
  verify(request: VerifyRequest, options: DecideOptions): Promise<Decision>;
  /** A Plan task's question (no token): the tier and approvals the policy would need; never an allow. */
  plan(request: PlanRequest, options: DecideOptions): Promise<PlanAnswer>;
  close(): Promise<void>;
}

/**
 * The PoA's exp as a Date, decoded WITHOUT verifying the signature (the broker verifies). Used
 * only to bound the retry deadline. Throws TASK_INVALID (never quoting the token) when the
 * token is not a JWT with a numeric exp.
 */
export function poaExpiry(token: string): Date {
  const parts = token.split(".");
  let exp: unknown;
  try {
    if (parts.length !== 3) throw new Error("not three segments");
    exp = (JSON.parse(Buffer.from(parts[1] ?? "", "base64url").toString("utf8")) as { exp?: unknown }).exp;
  } catch {
    throw new AtbError("TASK_INVALID", "the PoA token is not a decodable JWT");
  }
  if (typeof exp !== "number" || !Number.isFinite(exp))
    throw new AtbError("TASK_INVALID", "the PoA token has no numeric exp claim");
  return new Date(exp * 1000);
}

/** Keeps request ids header-safe and bounded whatever the caller derives them from. */
export function safeRequestIdBase(base: string): string {
  const cleaned = base.replace(/[^A-Za-z0-9._:-]/g, "_").slice(0, 100);
  return cleaned || "atb";
}

function warnInsecure(logger: Logger, when: string): void {
  logger.warn(
    `ATB_INSECURE=true: the broker's server certificate is NOT verified (${when}); never use this in production`,
    {
      insecure: true,
    },
  );
}

function bodyOf(request: DecideRequest | VerifyRequest): string {
  return JSON.stringify({
    action: request.action,
    token: request.token,
    agent_id: request.agentId,
    requester: request.requester,
    target: request.target,
    ...("params" in request ? { params: request.params } : {}),
    context: request.context,
    ...("attestations" in request && request.attestations?.length ? { attestations: request.attestations } : {}),
  });
}

const decision = (request: DecideRequest | VerifyRequest) => ({
  body: bodyOf(request),
  interpret: interpretResponse,
});

/** Creates the client: one keep-alive pool per client; call close() on shutdown. */
export function createBrokerClient(
  config: BrokerClientConfig,
  logger: Logger,
  clock: RetryClock = systemClock,
): BrokerClient {
  const cfg = validateBrokerClientConfig(config);
  const log = logger.child({ subsystem: "broker-client" });
  const transport: BrokerTransport = createTransport({
    brokerUrl: cfg.brokerUrl,
    tls: cfg.tls,
    insecure: cfg.insecure,
    connectTimeoutMs: cfg.attemptTimeoutMs,
    connections: cfg.connections,
  });
  if (cfg.insecure) warnInsecure(log, "client created");

  async function call<T extends Decision | PlanAnswer>(
    path: string,
    request: DecideRequest | VerifyRequest | PlanRequest,
    options: DecideOptions,
    how: { body: string; interpret: (answer: RawAnswer, requestId: string, nowMs: number) => AttemptOf<T> },
  ): Promise<T> {
    if (cfg.insecure) warnInsecure(log, "decision requested");
    const base = safeRequestIdBase(options.requestIdBase);
    const body = how.body;
    const attempt = async (n: number, timeoutMs: number): Promise<AttemptOf<T>> => {
      const requestId = `${base}-a${n}`;
      // winston runs the whole format chain (redaction, JSON) even for filtered levels: check first.
      if (log.isDebugEnabled())
        log.debug("broker attempt", { requestId, attempt: n, timeoutMs, action: request.action });
      try {
        const answer = await transport.post(path, body, requestId, timeoutMs);
        return how.interpret(answer, requestId, clock.now());
      } catch (err) {
        if (err instanceof AtbError) return { ok: false, error: err };
        throw err;
      }
    };
    const onRetry = (n: number, delayMs: number, error: AtbError): void =>
      void log.warn("broker attempt failed, retrying", {
        requestId: `${base}-a${n}`,
        attempt: n,
        delayMs,
        code: error.code,
        error: error.message,
      });
    try {
      const decision = await withRetry<T>(attempt, cfg, options.deadline.getTime(), { clock, onRetry });
      log.info(path === VERIFY_PATH ? "broker preflight" : path === PLAN_PATH ? "broker plan" : "broker decision", {
        requestId: decision.requestId,
        action: request.action,
        allowed: "allowed" in decision ? decision.allowed : false,
        riskTier: decision.riskTier,
        reason: decision.reason,
      });
      return decision;
    } catch (err) {
      if (err instanceof AtbError)
        log.warn("broker decision failed", {
          requestIdBase: base,
          action: request.action,
          code: err.code,
          error: err.message,
        });
      throw err;
    }
  }

  return {
    decide: (request, options) => call<Decision>(DECIDE_PATH, request, options, decision(request)),
    verify: (request, options) => call<Decision>(VERIFY_PATH, request, options, decision(request)),
    plan: (request, options) =>
      call<PlanAnswer>(PLAN_PATH, request, options, { body: planBody(request), interpret: interpretPlanResponse }),
    close: () => transport.close(),
  };
}
