// The atb-mcp tools: what an agent may do through MCP is what its kubeconfig may do with
// AgentTasks. The server creates, reads and lists tasks with the kubeconfig it was started with;
// the cluster's RBAC, the operator's webhooks and the broker decide, never this server. A PoA
// token or attestation given to submit_change goes into the task and nowhere else: it is never
// logged, and never part of a result or an error (task views leave spec.poaToken and
// spec.attestations out; error messages have them cut out).
import { randomBytes } from "node:crypto";
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { Condition } from "../../crds/agenttask";
import { plan } from "../typescript/plan";
import { apiMessage, GROUP, PLURAL, VERSION, waitForTask, type TaskObject } from "../typescript/wait";
import { codeNext, codeTable, explainTask, reasonTable, type ReasonEntry } from "../cli/explain";
import type { TaskView } from "../cli/task";
import { changeSchema, listSchema, readCrd, taskRefSchema, validate, type CrdShapes, type JsonSchema } from "./schema";

export interface ToolResult {
  [key: string]: unknown;
  content: { type: "text"; text: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

export interface ToolDef {
  name: string;
  title: string;
  description: string;
  inputSchema: JsonSchema;
}

/**
 * crds/agenttask.ts's TERMINAL_PHASES (tests/unit/mcp.test.ts keeps them equal): that module is not
 * imported at run time, since it loads Pepr, whose logger must not write on the stdio transport.
 */
export const TERMINAL_PHASES: readonly string[] = ["Completed", "Denied", "Failed", "Planned"];

/** An input error: reported as a tool error naming the field. */
class InputError extends Error {}

const ok = (data: Record<string, unknown>): ToolResult => ({
  content: [{ type: "text", text: JSON.stringify(data, null, 2) }],
  structuredContent: data,
});

const toolError = (message: string): ToolResult => ({ content: [{ type: "text", text: message }], isError: true });

/** The reason that says most about where the task stands: a False condition's, else Succeeded's, else the latest. */
export function mainReason(status: { conditions?: Condition[] } | undefined): string | undefined {
  const conditions: Condition[] = status?.conditions ?? [];
  const failed = conditions.find(c => c.status === "False");
  if (failed) return failed.reason;
  const succeeded = conditions.find(c => c.type === "Succeeded" && c.status === "True");
  if (succeeded) return succeeded.reason;
  return [...conditions].sort((a, b) => b.lastTransitionTime.localeCompare(a.lastTransitionTime))[0]?.reason;
}

/** A task as tools show it: no token, no attestations, no payload values (its field names only). */
export function taskView(t: TaskObject): Record<string, unknown> {
  const s = t.status ?? {};
  const spec = t.spec;
  const view: Record<string, unknown> = {
    name: t.metadata?.name,
    namespace: t.metadata?.namespace,
    agentId: spec?.agentId,
    mode: spec?.mode ?? "Apply",
    action: spec?.action,
    target: spec?.target,
    payloadFields: Object.keys(spec?.payload ?? {}),
    phase: s.phase ?? "Pending",
    reason: mainReason(s),
    message: s.message,
    riskTier: s.atbResult?.riskTier,
    policyReason: s.atbResult?.reason,
    requestId: s.atbResult?.requestId,
    createdAt: t.metadata?.creationTimestamp,
    startedAt: s.startedAt,
    finishedAt: s.finishedAt,
    executedAs: s.executedAs,
    plan: s.plan,
    approvals: (s as { approvals?: unknown }).approvals,
    conditions: s.conditions?.map(c => ({ type: c.type, status: c.status, reason: c.reason, message: c.message })),
  };
  return Object.fromEntries(Object.entries(view).filter(([, v]) => v !== undefined));
}

/** `<prefix>-<target>-<5 random>` within 63 characters. */
function taskName(prefix: string, target: string): string {
  const base = `${prefix}-${target}`
    .toLowerCase()
    .slice(0, 57)
    .replace(/[-.]+$/, "");
  const suffix = [...randomBytes(5)].map(b => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
  return `${base}-${suffix}`;
}

interface ChangeArgs {
  name?: string;
  agentId: string;
  action: string;
  target: { kind: string; name: string; namespace: string };
  payload?: Record<string, unknown>;
  poaToken?: string;
  attestations?: string[];
  ttlSecondsAfterFinished?: number;
  waitSeconds?: number;
}

export class AtbTools {
  readonly crd: CrdShapes;
  readonly defs: ToolDef[];
  private readonly api: CustomObjectsApi;

  constructor(private readonly kc: KubeConfig) {
    this.crd = readCrd();
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.defs = [
      {
        name: "plan_change",
        title: "Plan a change",
        description:
          "Ask the ATB operator what a change would do, before asking for a PoA token: creates an AgentTask in plan mode (no token, nothing is written) and returns, once it is Planned, the change digest a token for exactly this change must carry (con.change_sha256), the risk tier, the approvals the policy would need and a diff of the target (Secret data redacted). The task is created in the target's namespace with the kubeconfig this server runs with.",
        inputSchema: changeSchema(this.crd, false),
      },
      {
        name: "submit_change",
        title: "Submit a change",
        description:
          "Create an AgentTask with the agent's PoA token (and approver attestations, if any) and wait up to waitSeconds for its outcome. Returns the phase (Completed, Denied, Failed, AwaitingApproval when the policy needs approvals, or the phase so far), the reason, the policy's reason and the broker's request id. The token is never returned or logged.",
        inputSchema: changeSchema(this.crd, true),
      },
      {
        name: "get_task",
        title: "Get a task",
        description:
          "Read one AgentTask: phase, reason, message, risk tier, request id, plan and approvals, conditions. Never the token or payload values.",
        inputSchema: taskRefSchema(this.crd),
      },
      {
        name: "list_tasks",
        title: "List tasks",
        description: "List AgentTasks, newest first, optionally of one namespace, one agent or one phase.",
        inputSchema: listSchema(this.crd),
      },
      {
        name: "explain_task",
        title: "Explain a task",
        description:
          "Explain where an AgentTask stands: a short sentence for each of its reasons and for the policy's code.",
        inputSchema: taskRefSchema(this.crd),
      },
    ];
  }

  /** Runs a tool; every failure is a tool error (isError) with the secrets of the call cut out. */
  async call(name: string, args: Record<string, unknown> | undefined): Promise<ToolResult> {
    const input = args ?? {};
    const secrets = [
      typeof input.poaToken === "string" ? input.poaToken : "",
      ...(Array.isArray(input.attestations)
        ? input.attestations.filter((a): a is string => typeof a === "string")
        : []),
    ].filter(s => s.length > 0);
    const clean = (text: string) => secrets.reduce((t, s) => t.split(s).join("[REDACTED]"), text);
    const def = this.defs.find(d => d.name === name);
    if (!def)
      return toolError(
        `unknown tool ${JSON.stringify(name).slice(0, 80)} (tools: ${this.defs.map(d => d.name).join(", ")})`,
      );
    const errors = validate(def.inputSchema, input);
    if (errors.length > 0) return toolError(clean(`invalid arguments for ${name}: ${errors.join("; ")}`));
    try {
      switch (name) {
        case "plan_change":
          return await this.planChange(input as unknown as ChangeArgs);
        case "submit_change":
          return await this.submitChange(input as unknown as ChangeArgs);
        case "get_task":
          return ok(taskView(await this.get(input.namespace as string, input.name as string)));
        case "list_tasks":
          return await this.list(input);
        default:
          return this.explain(await this.get(input.namespace as string, input.name as string));
      }
    } catch (err) {
      return toolError(clean(err instanceof InputError || err instanceof Error ? err.message : String(err)));
    }
  }

  private async get(namespace: string, name: string): Promise<TaskObject> {
    try {
      return (await this.api.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
      })) as TaskObject;
    } catch (err) {
      throw new Error(`reading AgentTask ${namespace}/${name}: ${apiMessage(err)}`);
    }
  }

  private async planChange(a: ChangeArgs): Promise<ToolResult> {
    if (!this.crd.hasMode)
      throw new InputError("plan_change: this AgentTask CRD has no spec.mode, so the operator has no plan mode");
    const name = a.name ?? taskName(`plan-${a.action}`, a.target.name);
    const r = await plan(
      {
        name,
        namespace: a.target.namespace,
        agentId: a.agentId,
        action: a.action as never,
        target: a.target as never,
        payload: a.payload,
      },
      { kubeconfig: this.kc, timeoutMs: (a.waitSeconds ?? 60) * 1000, pollMs: 1_000 },
    );
    return ok({
      name: r.name,
      namespace: r.namespace,
      phase: r.phase,
      changeSha256: r.plan.changeSha256,
      riskTier: r.plan.riskTier,
      approvalsRequired: r.plan.approvalsRequired,
      diff: r.plan.diff,
      diffTruncated: r.plan.diffTruncated,
    });
  }

  private async submitChange(a: ChangeArgs): Promise<ToolResult> {
    const namespace = a.target.namespace;
    const name = a.name ?? taskName(a.action, a.target.name);
    const spec: Record<string, unknown> = {
      agentId: a.agentId,
      poaToken: a.poaToken,
      action: a.action,
      target: a.target,
      payload: a.payload ?? {},
    };
    if (a.attestations?.length) spec.attestations = a.attestations;
    if (a.ttlSecondsAfterFinished !== undefined) spec.ttlSecondsAfterFinished = a.ttlSecondsAfterFinished;
    let created: TaskObject;
    try {
      created = (await this.api.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: "AgentTask", metadata: { name, namespace }, spec },
        fieldManager: "atb-mcp",
      })) as TaskObject;
    } catch (err) {
      throw new Error(`the API server rejected AgentTask ${namespace}/${name}: ${apiMessage(err)}`);
    }
    const stops = [...TERMINAL_PHASES, "AwaitingApproval"];
    const { task, timedOut } = await waitForTask(
      this.kc,
      { name, namespace },
      {
        until: t => stops.includes(t.status?.phase ?? ""),
        timeoutMs: (a.waitSeconds ?? 60) * 1000,
        pollMs: 1_000,
        initial: created,
      },
    );
    const s = task.status ?? {};
    const result: Record<string, unknown> = {
      name,
      namespace,
      phase: s.phase ?? "Pending",
      finished: TERMINAL_PHASES.includes(s.phase ?? ""),
      waitedOut: timedOut,
      reason: mainReason(s),
      policyReason: s.atbResult?.reason,
      riskTier: s.atbResult?.riskTier,
      requestId: s.atbResult?.requestId,
      message: s.message,
    };
    return ok(Object.fromEntries(Object.entries(result).filter(([, v]) => v !== undefined)));
  }

  private async list(input: Record<string, unknown>): Promise<ToolResult> {
    const namespace = input.namespace as string | undefined;
    let items: TaskObject[];
    try {
      const res = (
        namespace
          ? await this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })
          : await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
      ) as { items?: TaskObject[] };
      items = res.items ?? [];
    } catch (err) {
      throw new Error(`listing AgentTasks${namespace ? ` in ${namespace}` : ""}: ${apiMessage(err)}`);
    }
    const tasks = items
      .filter(t => input.agentId === undefined || t.spec?.agentId === input.agentId)
      .filter(t => input.phase === undefined || (t.status?.phase ?? "Pending") === input.phase)
      .sort((x, y) => (y.metadata?.creationTimestamp ?? "").localeCompare(x.metadata?.creationTimestamp ?? ""))
      .slice(0, (input.limit as number | undefined) ?? 50)
      .map(t => ({
        name: t.metadata?.name,
        namespace: t.metadata?.namespace,
        action: t.spec?.action,
        target: t.spec?.target ? `${t.spec.target.kind}/${t.spec.target.namespace}/${t.spec.target.name}` : undefined,
        agentId: t.spec?.agentId,
        phase: t.status?.phase ?? "Pending",
        reason: mainReason(t.status),
        riskTier: t.status?.atbResult?.riskTier,
        createdAt: t.metadata?.creationTimestamp,
      }));
    return ok({ count: tasks.length, tasks });
  }

  private explain(t: TaskObject): ToolResult {
    return ok(explainView(t));
  }
}

let tables: { reasons: Map<string, ReasonEntry>; codes: Map<string, string> } | undefined;

/**
 * explain_task's answer: the atb CLI's explanation (clients/cli/explain.ts: one sentence, the next
 * step, the details; meanings from docs/reasons.md and docs/authorization.md) and the meaning of
 * each condition's reason and of the policy's code.
 */
export function explainView(t: TaskObject): Record<string, unknown> {
  tables ??= { reasons: reasonTable(), codes: codeTable() };
  const { reasons, codes } = tables;
  const s = t.status ?? {};
  const e = explainTask(t as TaskView, tables);
  const code = s.atbResult?.reason;
  const view: Record<string, unknown> = {
    name: t.metadata?.name,
    namespace: t.metadata?.namespace,
    phase: s.phase ?? "Pending",
    sentence: e.sentence,
    next: e.next,
    details: e.details,
    reasons: (s.conditions ?? []).map(c => ({
      condition: `${c.type}=${c.status}`,
      reason: c.reason,
      meaning: reasons.get(c.reason)?.meaning ?? "(not in docs/reasons.md)",
    })),
    policyReason: code
      ? { code, meaning: codes.get(code) ?? "(not in docs/authorization.md)", next: codeNext(code) }
      : undefined,
  };
  return Object.fromEntries(Object.entries(view).filter(([, v]) => v !== undefined));
}
