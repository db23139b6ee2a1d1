// May the task's creator see the target? A Plan task shows the target's YAML (before and after),
// so its plan is made only for a requester who may `get` the target. The operator asks the API
// server with a SubjectAccessReview (its own identity: the ClusterRole grants create on
// subjectaccessreviews) for the requester as the admission webhook recorded it (username, uid,
// groups), before anything about the target is read: a refusal says nothing about the target.
// Fail closed: only `status.allowed: true` (and not `denied`) is an allow.
import type { AgentTaskTarget } from "../../../crds/agenttask";
import { AtbError } from "../errors";
import { KubeError, RESOURCES, type KubeApi } from "../kube";
import type { Requester } from "../requester";
import { onceMoreIfForbidden } from "./executor";

export const SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

export interface AccessAnswer {
  allowed: boolean;
}

export interface AccessReview {
  /** Whether `requester` may get `target` (RBAC and any other authorizer of the API server). */
  mayGet(requester: Requester, target: AgentTaskTarget): Promise<AccessAnswer>;
}

interface SarStatus {
  status?: { allowed?: unknown; denied?: unknown };
}

/** The SubjectAccessReview body for `get` on the target, as `requester`. */
export function accessReviewBody(requester: Requester, target: AgentTaskTarget): Record<string, unknown> {
  const r = RESOURCES[target.kind];
  if (!r) throw new AtbError("TASK_INVALID", `spec.target.kind: ${target.kind} is not supported`);
  return {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SubjectAccessReview",
    spec: {
      user: requester.username,
      ...(requester.uid ? { uid: requester.uid } : {}),
      groups: requester.groups,
      resourceAttributes: {
        namespace: target.namespace,
        verb: "get",
        group: r.group,
        version: r.version,
        resource: r.plural,
        name: target.name,
      },
    },
  };
}

/** SubjectAccessReviews made with the operator's own identity. */
export class SubjectAccessReviews implements AccessReview {
  constructor(
    private readonly kube: KubeApi,
    private readonly sleep?: (ms: number) => Promise<void>,
  ) {}

  async mayGet(requester: Requester, target: AgentTaskTarget): Promise<AccessAnswer> {
    const body = accessReviewBody(requester, target);
    let answer: SarStatus;
    try {
      answer = await onceMoreIfForbidden(
        () => this.kube.request<SarStatus>({ method: "POST", path: SAR_PATH, body }),
        this.sleep,
      );
    } catch (err) {
      if (err instanceof KubeError && err.status === 403)
        throw new AtbError(
          "KUBE_REJECTED",
          `the operator may not ask the API server who may read the target (its ClusterRole must grant create on ` +
            `subjectaccessreviews.authorization.k8s.io); nothing was read; API server: ${err.message}`,
          { cause: err },
        );
      throw err;
    }
    return { allowed: answer?.status?.allowed === true && answer.status.denied !== true };
  }
}
