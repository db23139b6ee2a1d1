// Failures of Kubernetes API calls as the project's errors: the HTTP status and the API server's
// own Status reason and message, classified once (transient, not found, rejected).
import { AtbError } from "../errors";

export interface KubeStatusBody {
  kind?: string;
  reason?: string;
  message?: string;
  code?: number;
}

/** A failed API call: HTTP status and the API server's Status reason and message. */
export class KubeError extends AtbError {
  constructor(
    readonly status: number,
    readonly apiReason: string,
    message: string,
  ) {
    super(
      isTransient(status, apiReason) ? "KUBE_TRANSIENT" : status === 404 ? "TARGET_NOT_FOUND" : "KUBE_REJECTED",
      message,
    );
    this.name = "KubeError";
  }
}

export function isTransient(status: number, apiReason: string): boolean {
  if (status === 0 || status === 429 || status >= 500) return true;
  return status === 409 && apiReason === "Conflict";
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeError && err.status === 404;
}
