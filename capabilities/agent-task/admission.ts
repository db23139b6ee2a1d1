// Pure admission rules shared by every action: each returns messages that name the field and
// the rule. Payload rules belong to the action capabilities; the kinds each action supports come
// from its module in the registry.
import { isDeepStrictEqual } from "node:util";
import { ANNOTATION_REQUESTER, LABEL_SHARD, type AgentTask, type AgentTaskSpec } from "../../crds/agenttask";
import type { ActionRegistry } from "../lib/action";
import type { OperatorConfig } from "../lib/config";
import { REQUESTER_LIMITS, requesterAnnotation, type AdmissionUser } from "../lib/requester";
import { scopeRefusal, targetRefusal } from "../lib/scope";
import { shardOf } from "../lib/shard";

const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const SPIFFE = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)+$/;

/** A short, printable rendering of any value for a message (String() throws on some objects). */
export function show(v: unknown, max = 40): string {
  if (typeof v === "string") return v.slice(0, max);
  try {
    return (JSON.stringify(v) ?? typeof v).slice(0, max);
  } catch {
    return typeof v;
  }
}

/** A label value for the agent: the SPIFFE path's last segment, sanitised to label rules. */
export function agentLabel(agentId: unknown): string | undefined {
  if (typeof agentId !== "string") return undefined;
  const last = agentId.split("/").filter(Boolean).pop() ?? "";
  const clean = last
    .replace(/[^A-Za-z0-9._-]/g, "-")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  return clean || undefined;
}

/** The action is one the registry lists, and the target kind one that action supports. */
function actionErrors(spec: AgentTaskSpec, actions: ActionRegistry): string[] {
  const action = spec.action as unknown;
  if (typeof action !== "string" || !Object.prototype.hasOwnProperty.call(actions, action)) {
    return [
      `spec.action: "${show(action)}" is not an action this operator supports (${Object.keys(actions).join(", ")})`,
    ];
  }
  const kinds = actions[action].kinds;
  if (kinds.includes(spec.target?.kind)) return [];
  return [
    `spec.target.kind: ${show(spec.target?.kind)} is not supported by action ${action} (supported: ${kinds.join(", ")})`,
  ];
}

function identityErrors(spec: AgentTaskSpec): string[] {
  const errors: string[] = [];
  if (typeof spec.agentId !== "string" || !SPIFFE.test(spec.agentId)) {
    errors.push("spec.agentId: must be a SPIFFE ID with a path (spiffe://<trust-domain>/<path>)");
  }
  const mode = spec.mode as unknown;
  if (mode !== undefined && mode !== "Apply" && mode !== "Plan") {
    errors.push(`spec.mode: "${show(mode)}" is not a mode (Apply or Plan)`);
  }
  // A Plan task needs no token; one given is ignored (never checked, sent or shown).
  if (mode !== "Plan" && (typeof spec.poaToken !== "string" || !JWS.test(spec.poaToken))) {
    errors.push(
      "spec.poaToken: must be a compact JWS (three base64url segments separated by dots); it is required unless spec.mode is Plan",
    );
  }
  errors.push(...attestationErrors(spec.attestations));
  return errors;
}

/** Attestations are compact JWS like the token, and like it never echoed in a message. */
function attestationErrors(list: unknown): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.length > 16)
    return ["spec.attestations: must be a list of at most 16 compact JWS strings"];
  const bad = list.findIndex(a => typeof a !== "string" || a.length > 8192 || !JWS.test(a));
  return bad < 0
    ? []
    : [`spec.attestations[${bad}]: must be a compact JWS of at most 8192 characters (three base64url segments)`];
}

function namespaceErrors(spec: AgentTaskSpec, ns: string | undefined, config: Readonly<OperatorConfig>): string[] {
  const errors: string[] = [];
  if (spec.target?.namespace !== ns && !config.allowCrossNamespace) {
    errors.push(
      `spec.target.namespace: must equal the task's namespace "${ns}"; cross-namespace targets are disabled (ATB_ALLOW_CROSS_NAMESPACE=false)`,
    );
  }
  // The ValidatingAdmissionPolicy (crds/agenttask-scope.yaml) refuses these too, with the same
  // words, also where Pepr's webhooks never run (kube-system, pepr-system).
  const refusal = ns ? scopeRefusal(ns, config) : undefined;
  if (refusal) errors.push(refusal);
  const target = spec.target?.namespace;
  const protectedTarget = typeof target === "string" && target !== ns ? targetRefusal(target, config) : undefined;
  if (protectedTarget) errors.push(protectedTarget);
  return errors;
}

export function commonErrors(
  task: AgentTask | undefined,
  actions: ActionRegistry,
  config: Readonly<OperatorConfig>,
): string[] {
  const spec = task?.spec;
  if (!spec) return ["spec: is required"];
  return [
    ...actionErrors(spec, actions),
    ...identityErrors(spec),
    ...namespaceErrors(spec, task?.metadata?.namespace, config),
  ];
}

export function immutableErrors(old: AgentTask | undefined, next: AgentTask | undefined): string[] {
  if (!old?.spec) return [];
  return isDeepStrictEqual(old.spec, next?.spec)
    ? []
    : ["spec: is immutable after creation; create a new AgentTask instead"];
}

const REQUESTER_FIELD = `metadata.annotations[${ANNOTATION_REQUESTER}]`;

/** The refusals of the requester annotation (the scope policy's CEL says the first two in the same words). */
export const REQUESTER_MESSAGES = {
  userSet: `${REQUESTER_FIELD}: set by the admission webhook only; remove it`,
  changed: `${REQUESTER_FIELD}: set by the admission webhook at creation; it never changes`,
  unrecordable: `${REQUESTER_FIELD}: the creating identity cannot be recorded: the username must be 1 to ${REQUESTER_LIMITS.usernameChars} characters`,
  missing: `${REQUESTER_FIELD}: missing: the operator's mutating webhook did not record the creating identity (is its MutatingWebhookConfiguration installed?)`,
} as const;

const requesterOn = (task: AgentTask | undefined): string | undefined =>
  task?.metadata?.annotations?.[ANNOTATION_REQUESTER];

/**
 * The requester annotation (capabilities/lib/requester.ts): at creation exactly what the mutating
 * webhook stamps for the creating user, so a value the user wrote is refused (the webhook stamps
 * only where there is none); on update unchanged, removal included.
 */
export function requesterErrors(
  operation: string,
  user: AdmissionUser | undefined,
  old: AgentTask | undefined,
  next: AgentTask | undefined,
): string[] {
  const actual = requesterOn(next);
  if (operation === "UPDATE") return actual === requesterOn(old) ? [] : [REQUESTER_MESSAGES.changed];
  const expected = requesterAnnotation(user);
  if (expected === undefined) return [REQUESTER_MESSAGES.unrecordable];
  if (actual === undefined) return [REQUESTER_MESSAGES.missing];
  return actual === expected ? [] : [REQUESTER_MESSAGES.userSet];
}

const SHARD_FIELD = `metadata.labels[${LABEL_SHARD}]`;

/** The refusals of the routing label the operator owns (lib/shard.ts). */
export const LABEL_MESSAGES = {
  shardSet: (shards: number) =>
    `${SHARD_FIELD}: set by the admission webhook from the task's target (ATB_SHARDS=${shards}); remove it`,
  shardChanged: `${SHARD_FIELD}: set by the admission webhook at creation; it never changes`,
} as const;

const labelOn = (task: AgentTask | undefined, key: string): string | undefined => task?.metadata?.labels?.[key];

/**
 * What the mutating webhook writes into the label it owns. At creation, whatever the user sent:
 * the shard from the target's hash. On update, the label as stored when the update dropped it (a
 * second server-side apply that never owned it drops it, as with the requester annotation).
 */
export function stampedLabels(
  operation: string,
  old: AgentTask | undefined,
  next: AgentTask | undefined,
  config: Pick<OperatorConfig, "shards">,
): Record<string, string> {
  if (operation === "CREATE") return { [LABEL_SHARD]: shardOf(next, config.shards) };
  const storedShard = labelOn(old, LABEL_SHARD);
  return storedShard !== undefined && labelOn(next, LABEL_SHARD) === undefined ? { [LABEL_SHARD]: storedShard } : {};
}

/**
 * The shard label after mutation: at creation the target's hash; later unchanged (not added,
 * changed or removed: a task never moves between shards, so two watchers never work on it).
 */
export function labelErrors(
  operation: string,
  old: AgentTask | undefined,
  next: AgentTask | undefined,
  config: Pick<OperatorConfig, "shards">,
): string[] {
  const shard = labelOn(next, LABEL_SHARD);
  if (operation === "CREATE")
    return shard === shardOf(next, config.shards) ? [] : [LABEL_MESSAGES.shardSet(config.shards)];
  if (operation === "UPDATE" && shard !== labelOn(old, LABEL_SHARD)) return [LABEL_MESSAGES.shardChanged];
  return [];
}
