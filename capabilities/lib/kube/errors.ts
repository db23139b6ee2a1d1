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

function isTransient(status: number, apiReason: string): boolean {
  if (status === 0 || status === 429 || status >= 500) return true;
  return status === 409 && apiReason === "Conflict";
}

/**
 * The API server's message without the whole object some errors quote: a JSON patch that does not
 * decode is refused with `patch: Invalid value: "{...the patched object...}": <why>`, managedFields,
 * env values and all. The object is left out (tasks show these messages); the why is kept.
 */
export function withoutObjectDump(message: string): string {
  return message.replace(/Invalid value: "\{(?:[^"\\]|\\.)*\}"/g, "Invalid value: (the patched object)");
}

/** A bounded label for a failed call (metrics): network, forbidden, conflict, throttled, server, other. */
export function errorClass(err: unknown): string {
  if (!(err instanceof KubeError)) return "other";
  if (err.status === 0) return "network";
  if (err.status === 403) return "forbidden";
  if (err.status === 409) return "conflict";
  if (err.status === 429) return "throttled";
  if (err.status >= 500) return "server";
  return "other";
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeError && err.status === 404;
}

/**
 * Whether the API server refused a field selector it cannot evaluate (400 "field label not
 * supported"): a custom resource's field that its CRD does not declare selectable, or a server
 * older than selectable fields.
 */
export function isUnsupportedFieldSelector(err: unknown): boolean {
  return err instanceof KubeError && err.status === 400 && /field label not supported/i.test(err.message);
}

/** The API server's message for a JSON patch that no longer applies (a failed `test` operation). */
const PATCH_NO_LONGER_APPLIES = /^the server rejected our request due to an error in our request$/;

/**
 * Whether a failed write means the object changed after it was read: the resourceVersion
 * precondition (409 Conflict), or a bare 422 (a JSON patch whose `test` precondition no longer
 * holds). A 422 with a field message is a rejection of the change itself, not a stale view.
 */
export function isStaleWrite(err: unknown): boolean {
  if (!(err instanceof KubeError)) return false;
  return err.status === 409 || (err.status === 422 && PATCH_NO_LONGER_APPLIES.test(err.message));
}
