// The parts of crds/agenttask.yaml that come from the action registry: the action enum, the
// target kind enum, the CEL rules (which kinds each action supports, which payload fields it
// requires) and the payload field schemas. Each part is a list of YAML lines for one marked
// region of the file (./regions.ts puts them in place).
import { TARGET_KINDS } from "../../crds/agenttask";
import type { ActionModule, FieldSchema, RequiredFields } from "../../capabilities/lib/action";
import { entry, foldedLines, mapping, type YamlValue } from "./yaml";

/** Action names and payload fields appear unquoted in CEL: they must be plain identifiers. */
const ACTION_NAME = /^[a-z][a-z0-9-]*$/;
const FIELD_NAME = /^[a-z][A-Za-z0-9]*$/;

function check(modules: readonly ActionModule[]): void {
  for (const m of modules) {
    if (!ACTION_NAME.test(m.action)) throw new Error(`action name ${JSON.stringify(m.action)} is not [a-z][a-z0-9-]*`);
    if (m.kinds.length === 0) throw new Error(`action ${m.action} declares no target kinds`);
    const bad = Object.keys(m.payload.fields).find(f => !FIELD_NAME.test(f));
    if (bad) throw new Error(`payload field ${JSON.stringify(bad)} of action ${m.action} is not a CEL identifier`);
    const r = m.payload.required;
    const named = r ? ("all" in r ? r.all : "any" in r ? r.any : r.one) : [];
    const unknown = named.find(f => !Object.hasOwn(m.payload.fields, f));
    if (unknown) throw new Error(`action ${m.action} requires payload field ${unknown}, which it does not declare`);
  }
}

/** The kinds some action targets, in the order of TARGET_KINDS. */
export function usedKinds(modules: readonly ActionModule[]): string[] {
  return TARGET_KINDS.filter(k => modules.some(m => m.kinds.includes(k)));
}

const quoted = (xs: readonly string[]): string => xs.map(x => `'${x}'`).join(", ");
const has = (field: string): string => `has(self.payload.${field})`;

/** "a, b or c" */
function spoken(xs: readonly string[], last: string): string {
  return xs.length < 2 ? xs.join("") : `${xs.slice(0, -1).join(", ")} ${last} ${xs[xs.length - 1]}`;
}

/** Actions with the same kinds share one entry of the message: "restart, deploy: Deployment, ...". */
function kindGroups(modules: readonly ActionModule[]): string[] {
  const groups = new Map<string, string[]>();
  for (const m of modules) groups.set(m.kinds.join(", "), [...(groups.get(m.kinds.join(", ")) ?? []), m.action]);
  return [...groups].map(([kinds, actions]) => `${actions.join(", ")}: ${kinds}`);
}

function kindRule(modules: readonly ActionModule[], indent: string): string[] {
  const rule = modules.map(
    (m, i) =>
      `(self.action == '${m.action}' && self.target.kind in [${quoted(m.kinds)}])${i < modules.length - 1 ? " ||" : ""}`,
  );
  const groups = kindGroups(modules);
  const message = [
    "'kind ' + self.target.kind + ' is not supported by action ' + self.action + ' (' +",
    ...groups.map((g, i) => `'${g}${i < groups.length - 1 ? "; ' +" : ")'"}`),
  ];
  return [
    ...foldedLines(`${indent}- rule:`, rule, `${indent}  `),
    ...foldedLines(`${indent}  messageExpression:`, message, `${indent}  `),
    `${indent}  fieldPath: .target.kind`,
  ];
}

/** The CEL test that the required fields are set, and how the API server's message says it. */
function requiredTest(r: RequiredFields): { test: string; phrase: string } {
  if ("all" in r) {
    const names = r.all.map(f => `payload.${f}`);
    return { test: r.all.map(has).join(" && "), phrase: `${spoken(names, "and")} ${names.length > 1 ? "are" : "is"}` };
  }
  if ("any" in r) {
    return {
      test: `(${r.any.map(has).join(" || ")})`,
      phrase: `${spoken(
        r.any.map(f => `payload.${f}`),
        "or",
      )} is`,
    };
  }
  const test =
    r.one.length === 2 ? `(${has(r.one[0])} != ${has(r.one[1])})` : `[${r.one.map(has).join(", ")}].exists_one(h, h)`;
  return {
    test,
    phrase: `exactly one of ${spoken(
      r.one.map(f => `payload.${f}`),
      "or",
    )} is`,
  };
}

/** `- rule: ...` for one action's required fields (the rule on two lines when it is long). */
function requiredRule(action: string, r: RequiredFields, indent: string): string[] {
  const { test, phrase } = requiredTest(r);
  const parts = [`self.action != '${action}' ||`, `(has(self.payload) && ${test})`];
  const oneLine = `${indent}- rule: ${parts.join(" ")}`;
  return [
    ...(oneLine.length <= 120 ? [oneLine] : foldedLines(`${indent}- rule:`, parts, `${indent}  `)),
    ...entry("message", `${phrase} required for action ${action}`, `${indent}  `),
    ...entry("fieldPath", ".payload", `${indent}  `),
  ];
}

/** The rules of spec's x-kubernetes-validations that the registry decides, as list items. */
export function rules(modules: readonly ActionModule[], indent: string): string[] {
  check(modules);
  const payloadRules = modules.flatMap(m =>
    m.payload.required && m.payload.required.apiServer !== false
      ? requiredRule(m.action, m.payload.required, indent)
      : [],
  );
  return [...kindRule(modules, indent), ...payloadRules];
}

export function actionEnum(modules: readonly ActionModule[], indent: string): string[] {
  return entry(
    "enum",
    modules.map(m => m.action),
    indent,
  );
}

export function kindEnum(modules: readonly ActionModule[], indent: string): string[] {
  return entry("enum", usedKinds(modules), indent);
}

/** Each payload field once, its description prefixed with the actions that use it. */
export function payloadFields(modules: readonly ActionModule[], indent: string): string[] {
  check(modules);
  const fields = new Map<string, { schema: FieldSchema; actions: string[] }>();
  for (const m of modules) {
    for (const [name, schema] of Object.entries(m.payload.fields)) {
      const seen = fields.get(name);
      if (seen && JSON.stringify(seen.schema) !== JSON.stringify(schema)) {
        throw new Error(
          `payload field ${name}: actions ${seen.actions.join(", ")} and ${m.action} declare different schemas`,
        );
      }
      fields.set(name, { schema, actions: [...(seen?.actions ?? []), m.action] });
    }
  }
  const out: { [key: string]: YamlValue } = {};
  for (const [name, { schema, actions }] of fields) {
    const entries = Object.entries(schema).map(([k, v]) => [
      k,
      k === "description" ? `${actions.length === modules.length ? "every action" : actions.join(", ")}: ${v}` : v,
    ]);
    out[name] = Object.fromEntries(entries) as { [key: string]: YamlValue };
  }
  return mapping(out, indent);
}
