// The MCP tools' input schemas, derived from the AgentTask CRD (crds/agenttask.yaml) rather than
// copied: the action enum, the target kinds, the agentId/target patterns and bounds, the payload
// fields with their types and bounds. Which kinds and payload fields each action takes come from
// the parts of the CRD that `npm run generate` writes from the action registry: the kind rule
// (`self.action == 'scale' && self.target.kind in [...]`), the required-fields rules and each
// payload field's description prefix (`scale: ...`, `restart, deploy: ...`, `every action: ...`).
// (The registry itself is not imported: loading the capabilities starts Pepr's logger on stdout,
// which is the MCP stdio transport's channel.)
//
// validate() checks a tool call's arguments against the same schema and names the field and the
// rule in each message; it never quotes a value. The API server and the operator's webhooks check
// the task again when it is created: their word is final.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";

export type JsonSchema = Record<string, unknown>;

type Required = { all: string[] } | { any: string[] } | { one: string[] };

export interface ActionShape {
  kinds: string[];
  /** Payload fields the action takes (every action's shared ones included). */
  fields: string[];
  required?: Required;
}

export interface CrdShapes {
  spec: JsonSchema;
  actions: Record<string, ActionShape>;
  /** spec.mode exists in the CRD (plan mode). */
  hasMode: boolean;
  /** status.phase's enum. */
  phases: string[];
}

export const CRD_FILE = join(__dirname, "..", "..", "crds", "agenttask.yaml");

/** A CRD schema as plain JSON Schema: x-kubernetes-* keys dropped, "default" kept. */
function toJsonSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toJsonSchema);
  if (s === null || typeof s !== "object") return s;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(s as JsonSchema)) {
    if (k.startsWith("x-kubernetes-")) continue;
    out[k] =
      k === "properties"
        ? Object.fromEntries(Object.entries(v as JsonSchema).map(([p, ps]) => [p, toJsonSchema(ps)]))
        : toJsonSchema(v);
  }
  return out;
}

function fieldsOf(test: string): string[] {
  return [...test.matchAll(/has\(self\.payload\.([A-Za-z0-9_]+)\)/g)].map(m => m[1]!);
}

/** Reads the CRD's spec schema and the per-action parts. */
export function readCrd(file = CRD_FILE): CrdShapes {
  const crd = load(readFileSync(file, "utf8")) as {
    spec: {
      versions: { schema: { openAPIV3Schema: { properties: { spec: JsonSchema; status: JsonSchema } } } }[];
    };
  };
  const status = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.status as {
    properties: { phase: { enum: string[] } };
  };
  const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec as JsonSchema & {
    properties: Record<string, JsonSchema>;
    "x-kubernetes-validations"?: { rule: string }[];
  };
  const actionNames = (spec.properties.action!.enum as string[]) ?? [];
  const allKinds = ((spec.properties.target!.properties as Record<string, JsonSchema>).kind!.enum as string[]) ?? [];
  const payloadProps = (spec.properties.payload!.properties ?? {}) as Record<string, JsonSchema>;
  const actions: Record<string, ActionShape> = {};
  for (const a of actionNames) actions[a] = { kinds: [], fields: [] };
  for (const { rule } of spec["x-kubernetes-validations"] ?? []) {
    for (const m of rule.matchAll(/\(self\.action == '([^']+)' && self\.target\.kind in \[([^\]]*)\]\)/g)) {
      const shape = actions[m[1]!];
      if (shape) shape.kinds = [...m[2]!.matchAll(/'([^']+)'/g)].map(k => k[1]!);
    }
    const req = /^self\.action != '([^']+)' \|\| \(has\(self\.payload\) && (.*)\)$/s.exec(rule.trim());
    if (req && actions[req[1]!]) {
      const test = req[2]!;
      const names = fieldsOf(test);
      actions[req[1]!]!.required = /\) != has\(|exists_one/.test(test)
        ? { one: names }
        : / \|\| /.test(test)
          ? { any: names }
          : { all: names };
    }
  }
  for (const [field, schema] of Object.entries(payloadProps)) {
    const m = /^([a-z, -]+?|every action): /.exec(String(schema.description ?? ""));
    const users = !m ? actionNames : m[1] === "every action" ? actionNames : m[1]!.split(", ");
    for (const a of users) actions[a]?.fields.push(field);
  }
  for (const shape of Object.values(actions)) if (shape.kinds.length === 0) shape.kinds = [...allKinds];
  return {
    spec: toJsonSchema(spec) as JsonSchema,
    actions,
    hasMode: "mode" in spec.properties,
    phases: status.properties.phase.enum,
  };
}

const NAME_SCHEMA: JsonSchema = {
  type: "string",
  maxLength: 63,
  pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
  description:
    "Name of the AgentTask (default: generated from the action and the target). Tasks are immutable: a new name for every change.",
};

const WAIT_SCHEMA: JsonSchema = {
  type: "integer",
  minimum: 0,
  maximum: 600,
  default: 60,
  description:
    "How long to wait for the outcome, in seconds (default 60): the call returns then with the phase so far.",
};

/** The input schema of plan_change (submit: false) or submit_change (submit: true). */
export function changeSchema(crd: CrdShapes, submit: boolean): JsonSchema {
  const p = crd.spec.properties as Record<string, JsonSchema>;
  const properties: Record<string, JsonSchema> = {
    name: NAME_SCHEMA,
    agentId: p.agentId!,
    action: p.action!,
    target: { ...p.target!, additionalProperties: false },
    payload: {
      ...p.payload!,
      description:
        "The action's parameters. Which fields each action takes: " +
        Object.entries(crd.actions)
          .map(([a, s]) => `${a}: ${s.fields.join(", ") || "none"}`)
          .join("; "),
    },
  };
  const required = ["agentId", "action", "target"];
  if (submit) {
    properties.poaToken = p.poaToken!;
    if (p.attestations) properties.attestations = p.attestations;
    required.push("poaToken");
  }
  if (p.ttlSecondsAfterFinished) properties.ttlSecondsAfterFinished = p.ttlSecondsAfterFinished;
  properties.waitSeconds = WAIT_SCHEMA;
  const allOf = Object.entries(crd.actions).map(([action, shape]) => {
    const payload: JsonSchema = {
      type: "object",
      additionalProperties: false,
      properties: Object.fromEntries(
        shape.fields.map(f => [f, (p.payload!.properties as Record<string, JsonSchema>)[f]!]),
      ),
    };
    if (shape.required && "all" in shape.required) payload.required = shape.required.all;
    if (shape.required && "any" in shape.required) payload.anyOf = shape.required.any.map(f => ({ required: [f] }));
    if (shape.required && "one" in shape.required) payload.oneOf = shape.required.one.map(f => ({ required: [f] }));
    return {
      if: { properties: { action: { const: action } }, required: ["action"] },
      then: {
        properties: { target: { properties: { kind: { enum: shape.kinds } } }, payload },
        ...(shape.required ? { required: ["payload"] } : {}),
      },
    };
  });
  return { type: "object", additionalProperties: false, properties, required, allOf };
}

/** The input schema of get_task and explain_task. */
export function taskRefSchema(crd: CrdShapes): JsonSchema {
  const target = (crd.spec.properties as Record<string, JsonSchema>).target!.properties as Record<string, JsonSchema>;
  return {
    type: "object",
    additionalProperties: false,
    properties: {
      namespace: { ...target.namespace!, description: "Namespace of the AgentTask (its target's namespace)." },
      name: { ...target.name!, description: "Name of the AgentTask." },
    },
    required: ["namespace", "name"],
  };
}

/** The input schema of list_tasks. */
export function listSchema(crd: CrdShapes): JsonSchema {
  const p = crd.spec.properties as Record<string, JsonSchema>;
  const target = p.target!.properties as Record<string, JsonSchema>;
  return {
    type: "object",
    additionalProperties: false,
    properties: {
      namespace: {
        ...target.namespace!,
        description: "Namespace to list (default: every namespace the kubeconfig may list).",
      },
      agentId: { ...p.agentId!, description: "Only tasks of this agent (spec.agentId)." },
      phase: { type: "string", enum: crd.phases, description: "Only tasks in this phase." },
      limit: {
        type: "integer",
        minimum: 1,
        maximum: 500,
        default: 50,
        description: "At most this many tasks, newest first.",
      },
    },
  };
}

const TYPE_OF: Record<string, (v: unknown) => boolean> = {
  string: v => typeof v === "string",
  integer: v => Number.isInteger(v),
  number: v => typeof v === "number" && Number.isFinite(v),
  boolean: v => typeof v === "boolean",
  object: v => v !== null && typeof v === "object" && !Array.isArray(v),
  array: v => Array.isArray(v),
};

const list = (xs: readonly unknown[]) => xs.map(x => String(x)).join(", ");

/**
 * Checks a value against the subset of JSON Schema the CRD uses (type, enum, const, pattern,
 * lengths, bounds, items, properties, required, additionalProperties; allOf with if/then). Each
 * message names the field (`target.kind`) and the rule, never the value.
 */
export function validate(schema: JsonSchema, value: unknown, path = ""): string[] {
  const at = path || "(arguments)";
  const type = schema.type as string | undefined;
  if (type && !TYPE_OF[type]!(value)) return [`${at}: must be ${article(type)} ${type}`];
  const errors: string[] = [];
  if (Array.isArray(schema.enum) && !schema.enum.includes(value))
    errors.push(`${at}: must be one of ${list(schema.enum)}`);
  if ("const" in schema && schema.const !== value) errors.push(`${at}: must be ${String(schema.const)}`);
  if (typeof value === "string") errors.push(...stringRules(schema, value, at));
  if (typeof value === "number") errors.push(...numberRules(schema, value, at));
  if (Array.isArray(value)) errors.push(...arrayRules(schema, value, path));
  if (TYPE_OF.object!(value)) errors.push(...objectRules(schema, value as Record<string, unknown>, path));
  for (const c of (schema.allOf as { if?: JsonSchema; then?: JsonSchema }[] | undefined) ?? []) {
    if (c.if && c.then && validate(c.if, value, path).length === 0) {
      const seen = new Set(errors);
      errors.push(
        ...qualify(
          validate(c.then, value, path).filter(e => !seen.has(e)),
          c.if,
        ),
      );
    }
  }
  return errors;
}

const article = (type: string) => (type === "integer" || type === "object" || type === "array" ? "an" : "a");

function stringRules(schema: JsonSchema, value: string, at: string): string[] {
  const errors: string[] = [];
  const { minLength, maxLength, pattern } = schema as { minLength?: number; maxLength?: number; pattern?: string };
  if (minLength !== undefined && value.length < minLength)
    errors.push(`${at}: must have at least ${minLength} character${minLength === 1 ? "" : "s"}`);
  if (maxLength !== undefined && value.length > maxLength)
    errors.push(`${at}: must have at most ${maxLength} characters`);
  else if (pattern !== undefined && !new RegExp(pattern, "u").test(value)) errors.push(`${at}: must match ${pattern}`);
  return errors;
}

function numberRules(schema: JsonSchema, value: number, at: string): string[] {
  const { minimum, maximum } = schema as { minimum?: number; maximum?: number };
  return [
    ...(minimum !== undefined && value < minimum ? [`${at}: must be at least ${minimum}`] : []),
    ...(maximum !== undefined && value > maximum ? [`${at}: must be at most ${maximum}`] : []),
  ];
}

function arrayRules(schema: JsonSchema, value: unknown[], path: string): string[] {
  const { maxItems, items } = schema as { maxItems?: number; items?: JsonSchema };
  const errors =
    maxItems !== undefined && value.length > maxItems ? [`${path}: must have at most ${maxItems} items`] : [];
  if (items) value.forEach((v, i) => errors.push(...validate(items, v, `${path}[${i}]`)));
  return errors;
}

const requiredOf = (schemas: JsonSchema[]) => list(schemas.flatMap(s => (s.required as string[] | undefined) ?? []));

function objectRules(schema: JsonSchema, obj: Record<string, unknown>, path: string): string[] {
  const errors: string[] = [];
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const sub = (k: string) => (path ? `${path}.${k}` : k);
  for (const r of (schema.required as string[] | undefined) ?? [])
    if (obj[r] === undefined) errors.push(`${sub(r)}: is required`);
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (props[k]) errors.push(...validate(props[k], v, sub(k)));
    else if (schema.additionalProperties === false)
      // The agent's key, escaped and shortened: never a raw value in a message.
      errors.push(
        `${JSON.stringify(sub(k)).slice(1, -1).slice(0, 120)}: not a known field (known: ${list(Object.keys(props)) || "none"})`,
      );
  }
  const at = path || "(arguments)";
  const anyOf = schema.anyOf as JsonSchema[] | undefined;
  if (anyOf && !anyOf.some(s => validate(s, obj, path).length === 0))
    errors.push(`${at}: needs at least one of ${requiredOf(anyOf)}`);
  const oneOf = schema.oneOf as JsonSchema[] | undefined;
  if (oneOf && oneOf.filter(s => validate(s, obj, path).length === 0).length !== 1)
    errors.push(`${at}: needs exactly one of ${requiredOf(oneOf)}`);
  return errors;
}

/** Adds "for action X" to the messages of an if/then branch keyed on the action. */
function qualify(errors: string[], cond: JsonSchema): string[] {
  const action =
    ((cond.properties as Record<string, JsonSchema> | undefined)?.action?.const as string | undefined) ?? "";
  return action ? errors.map(e => `${e} for action ${action}`) : errors;
}
