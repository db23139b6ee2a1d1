// The operator's error catalog: every failure the pipeline can meet has a stable code, a
// CamelCase reason for conditions, and a retryable flag. Adapters convert foreign errors
// (kubernetes-fluent-client's plain objects, undici's UND_ERR_*) into these at the boundary;
// only the pipeline decides between retry and terminal failure.

export const ErrorCodes = {
  /** The broker could not be reached or answered 408/429/5xx; worth retrying. */
  BROKER_UNAVAILABLE: { code: "AT_ERR_BROKER_UNAVAILABLE", reason: "BrokerUnavailable", retryable: true },
  /** The broker did not answer within the per-attempt timeout. */
  BROKER_TIMEOUT: { code: "AT_ERR_BROKER_TIMEOUT", reason: "BrokerTimeout", retryable: true },
  /** The broker refused the operator itself (401/403): a certificate or trust problem. */
  BROKER_UNAUTHORIZED: { code: "AT_ERR_BROKER_UNAUTHORIZED", reason: "BrokerUnauthorized", retryable: false },
  /** The broker rejected the request as malformed (400/422). */
  BROKER_BAD_REQUEST: { code: "AT_ERR_BROKER_BAD_REQUEST", reason: "BrokerBadRequest", retryable: false },
  /** The broker answered something that is not a well-formed decision. */
  BROKER_MALFORMED: { code: "AT_ERR_BROKER_MALFORMED", reason: "BrokerMalformedResponse", retryable: false },
  /** Retries were exhausted or the PoA expired before a decision was reached. */
  BROKER_DEADLINE: { code: "AT_ERR_BROKER_DEADLINE", reason: "BrokerDeadlineExceeded", retryable: false },
  /** The broker's server certificate is not trusted (wrong CA, wrong name, expired): configuration. */
  BROKER_TLS_UNTRUSTED: { code: "AT_ERR_BROKER_TLS_UNTRUSTED", reason: "BrokerTLSUntrusted", retryable: false },
  /** TLS material for the broker could not be loaded. */
  BROKER_TLS_CONFIG: { code: "AT_ERR_BROKER_TLS_CONFIG", reason: "BrokerTLSConfig", retryable: false },
  /** Operator configuration is invalid. */
  CONFIG_INVALID: { code: "AT_ERR_CONFIG_INVALID", reason: "ConfigInvalid", retryable: false },
  /** The Kubernetes API answered with a transient failure (conflict, 429, 5xx, network). */
  KUBE_TRANSIENT: { code: "AT_ERR_KUBE_TRANSIENT", reason: "KubeTransient", retryable: true },
  /** The Kubernetes API refused the request for good (404, 403, 422, ...). */
  KUBE_REJECTED: { code: "AT_ERR_KUBE_REJECTED", reason: "KubeRejected", retryable: false },
  /** The target object does not exist. */
  TARGET_NOT_FOUND: { code: "AT_ERR_TARGET_NOT_FOUND", reason: "TargetNotFound", retryable: false },
  /** The task's namespace has no executor ServiceAccount for the operator to act as. */
  EXECUTOR_MISSING: { code: "AT_ERR_EXECUTOR_MISSING", reason: "ExecutorMissing", retryable: false },
  /** Kubernetes RBAC does not let the executor (or the operator impersonating it) make this request. */
  EXECUTOR_FORBIDDEN: { code: "AT_ERR_EXECUTOR_FORBIDDEN", reason: "ExecutorForbidden", retryable: false },
  /** The task's spec is invalid for its action (defence in depth behind admission). */
  TASK_INVALID: { code: "AT_ERR_TASK_INVALID", reason: "InvalidTask", retryable: false },
  /** A Secret value given by reference names a source Secret or key that does not exist. */
  SECRET_REF_NOT_FOUND: { code: "AT_ERR_SECRET_REF_NOT_FOUND", reason: "SecretRefNotFound", retryable: false },
} as const;

export type ErrorKind = keyof typeof ErrorCodes;

export class AtbError extends Error {
  readonly code: string;
  readonly reason: string;
  readonly retryable: boolean;

  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    const entry = ErrorCodes[kind];
    this.name = "AtbError";
    this.code = entry.code;
    this.reason = entry.reason;
    this.retryable = options?.retryable ?? entry.retryable;
  }
}

/** A message for any thrown value, without assuming it is an Error. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}
