// GIVEN hostile input from an agent (any JSON value as payload, or a broken spec), WHEN any
// action's validate() runs at admission, THEN it never throws and always returns a list of
// strings, and it never echoes a long value back.
import fc from "fast-check";
import { PeprValidateRequest } from "pepr";
import { LABEL_ACTION } from "../../../crds/agenttask";
import type { AgentTaskSpec } from "../../../crds/agenttask";
import type { ActionModule } from "../../../capabilities/lib/action";
import { ACTION_MODULES as MODULES, type Action } from "../../../capabilities/registry";
import { config, spec } from "./fake";

const cfg = config();

function check(m: ActionModule, s: unknown): void {
  const errors = m.validate(s as AgentTaskSpec, cfg);
  expect(Array.isArray(errors)).toBe(true);
  for (const e of errors) expect(typeof e).toBe("string");
}

describe.each(MODULES.map(m => [m.action, m] as const))("%s validate()", (_name, m) => {
  test("never throws on any payload", () => {
    fc.assert(
      fc.property(fc.jsonValue(), payload => check(m, { ...spec(m.action, m.kinds[0]), payload })),
      { numRuns: 300 },
    );
  });

  test("never throws on payloads shaped like its own fields", () => {
    const field = fc.constantFrom(...MODULES.flatMap(x => Object.keys(x.payload.fields)), "__proto__");
    fc.assert(
      fc.property(fc.dictionary(field, fc.anything({ maxDepth: 3 })), payload =>
        check(m, { ...spec(m.action, m.kinds[0]), payload }),
      ),
      { numRuns: 300 },
    );
  });

  test("never throws on a missing or broken spec", () => {
    for (const s of [undefined, null, {}, { payload: null }, { payload: [] }, { target: null, payload: {} }])
      check(m, s);
  });

  test("does not echo a planted secret-looking value in its messages", () => {
    const secret = "S3cr3t-value-that-must-not-leak-0123456789";
    const payloads = [
      { replicas: secret },
      { data: { k: 1, "bad key": secret } },
      { image: `${secret} x` },
      { patch: secret },
    ];
    for (const payload of payloads) {
      const errors = m.validate({ ...spec(m.action, m.kinds[0]), payload }, cfg);
      expect(errors.join(" ")).not.toContain(secret);
    }
  });
});

// GIVEN each action's Pepr capability, WHEN a task is admitted, THEN its one Validate binding
// (CREATE, filtered on the action label) denies an invalid payload with 422 and the messages,
// and approves a valid one.
describe("each action's admission binding", () => {
  const valid: Record<Action, Record<string, unknown> | undefined> = {
    scale: { replicas: 1 },
    restart: undefined,
    "update-config": { data: { a: "b" } },
    deploy: { image: "nginx:1.28" },
    rollback: {},
    patch: { patch: [{ op: "remove", path: "/spec/x" }] },
  };
  const request = (m: ActionModule, payload: unknown) =>
    new PeprValidateRequest({
      operation: "CREATE",
      object: { metadata: { name: "t", namespace: "shop" }, spec: { ...spec(m.action, m.kinds[0]), payload } },
    } as never);

  test.each(MODULES.map(m => [m.action, m] as const))("%s", async (_name, m) => {
    expect(m.capability.name).toBe(`agenttask-${m.action}`);
    const [binding, ...rest] = m.capability.bindings;
    expect(rest).toEqual([]);
    expect(binding).toMatchObject({
      event: "CREATE",
      isValidate: true,
      filters: { labels: { [LABEL_ACTION]: m.action } },
    });
    const deny = await binding.validateCallback!(request(m, { nonsense: true }) as never);
    expect(deny).toMatchObject({ allowed: false, statusCode: 422 });
    expect(deny.statusMessage).toContain(`spec.payload.nonsense: not a field of action ${m.action}`);
    expect(await binding.validateCallback!(request(m, valid[m.action as Action]) as never)).toMatchObject({
      allowed: true,
    });
  });
});
