// Holder binding at admission: GIVEN an admission request's userInfo WHEN a task is created THEN the
// mutating webhook records exactly that identity in atb.siemens.com/requester (bounded, without
// `extra`), the validating webhook refuses any other value and, on update, any change or removal;
// the pipeline accepts only the webhook's own form of the annotation.
import fc from "fast-check";
import { PeprMutateRequest, PeprValidateRequest, type Capability } from "pepr";
import { agentTaskCapability } from "../../capabilities/agent-task";
import { REQUESTER_MESSAGES, requesterErrors } from "../../capabilities/agent-task/admission";
import { parseConfig } from "../../capabilities/lib/config";
import {
  parseRequester,
  REQUESTER_LIMITS,
  requesterAnnotation,
  requesterOf,
  requesterText,
  type AdmissionUser,
} from "../../capabilities/lib/requester";
import { actions } from "../../capabilities/registry";
import { ANNOTATION_REQUESTER, type AgentTask } from "../../crds/agenttask";

const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
const SA_A: AdmissionUser = {
  username: "system:serviceaccount:shop:agent-a",
  uid: "0b5b6a0e-1c1f-4f3e-9a55-1d2f3c4b5a69",
  groups: ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"],
};
const ADMIN: AdmissionUser = { username: "atb-admin", groups: ["system:masters", "system:authenticated"] };
const A_TEXT =
  '{"username":"system:serviceaccount:shop:agent-a","uid":"0b5b6a0e-1c1f-4f3e-9a55-1d2f3c4b5a69","groups":["system:serviceaccounts","system:serviceaccounts:shop","system:authenticated"]}';

function task(annotation?: string): AgentTask {
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: {
      name: "t",
      namespace: "shop",
      ...(annotation === undefined ? {} : { annotations: { [ANNOTATION_REQUESTER]: annotation } }),
    },
    spec: {
      agentId: "spiffe://atb.example.com/ns/shop/sa/agent-a",
      poaToken: TOKEN,
      action: "scale",
      target: { kind: "Deployment", name: "w", namespace: "shop" },
      payload: { replicas: 1 },
    },
  } as unknown as AgentTask;
}

describe("the record (capabilities/lib/requester.ts)", () => {
  test("is compact JSON of username, uid and groups, in that order; extra is not kept", () => {
    expect(
      requesterAnnotation({ ...SA_A, extra: { "authentication.kubernetes.io/pod-name": ["p"] } } as AdmissionUser),
    ).toBe(A_TEXT);
    expect(requesterAnnotation(ADMIN)).toBe(
      '{"username":"atb-admin","groups":["system:masters","system:authenticated"]}',
    );
    expect(requesterAnnotation({ username: "bob", uid: "" })).toBe('{"username":"bob","groups":[]}');
  });

  test("is bounded: a username beyond its bound is not recorded; groups and uid beyond theirs are left out", () => {
    expect(requesterAnnotation({ username: "u".repeat(REQUESTER_LIMITS.usernameChars) })).toBeDefined();
    expect(requesterAnnotation({ username: "u".repeat(REQUESTER_LIMITS.usernameChars + 1) })).toBeUndefined();
    expect(requesterAnnotation({})).toBeUndefined();
    expect(requesterAnnotation({ username: "" })).toBeUndefined();
    expect(requesterAnnotation(undefined)).toBeUndefined();
    const many = Array.from({ length: 100 }, (_, i) => `g${i}`);
    const long = "g".repeat(REQUESTER_LIMITS.groupChars + 1);
    const r = requesterOf({
      username: "bob",
      uid: "x".repeat(REQUESTER_LIMITS.uidChars + 1),
      groups: [long, ...many],
    })!;
    expect(r).toEqual({ username: "bob", groups: many.slice(0, REQUESTER_LIMITS.groups) });
    expect(requesterText(r).length).toBeLessThan(1024);
  });

  test("reads back exactly what the webhook writes, for any identity", () => {
    const user = fc.record(
      {
        username: fc.string({ maxLength: 600 }),
        uid: fc.string({ maxLength: 200 }),
        groups: fc.array(fc.string({ maxLength: 300 }), { maxLength: 80 }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(user, u => {
        const text = requesterAnnotation(u);
        expect(text === undefined ? undefined : parseRequester(text)).toEqual(requesterOf(u));
      }),
    );
  });

  test.each([
    ["missing", undefined],
    ["not JSON", "atb-admin"],
    ["another key order", '{"groups":[],"username":"bob"}'],
    ["spaces", '{"username": "bob","groups":[]}'],
    ["an extra key", '{"username":"bob","groups":[],"extra":{}}'],
    ["no groups", '{"username":"bob"}'],
    ["an empty username", '{"username":"","groups":[]}'],
    ["an empty uid", '{"username":"bob","uid":"","groups":[]}'],
    ["a group that is not a string", '{"username":"bob","groups":[1]}'],
    ["an array", '["bob"]'],
    ["too many groups", JSON.stringify({ username: "bob", groups: Array(65).fill("g") })],
  ])("is not accepted when %s", (_what, text) => {
    expect(parseRequester(text)).toBeUndefined();
  });
});

describe("the validating webhook's rule (requesterErrors)", () => {
  test("at creation, exactly what the mutating webhook stamps for the creating user", () => {
    expect(requesterErrors("CREATE", SA_A, undefined, task(A_TEXT))).toEqual([]);
    expect(requesterErrors("CREATE", SA_A, undefined, task(requesterAnnotation(ADMIN)))).toEqual([
      REQUESTER_MESSAGES.userSet,
    ]);
    expect(requesterErrors("CREATE", ADMIN, undefined, task(A_TEXT))).toEqual([REQUESTER_MESSAGES.userSet]);
    expect(requesterErrors("CREATE", SA_A, undefined, task(A_TEXT.replace(":", ": ")))).toEqual([
      REQUESTER_MESSAGES.userSet,
    ]);
    expect(requesterErrors("CREATE", SA_A, undefined, task(""))).toEqual([REQUESTER_MESSAGES.userSet]);
    expect(requesterErrors("CREATE", SA_A, undefined, task())).toEqual([REQUESTER_MESSAGES.missing]);
    expect(requesterErrors("CREATE", { username: "" }, undefined, task())).toEqual([REQUESTER_MESSAGES.unrecordable]);
  });

  test("on update, unchanged: a change, a removal or a late addition is refused", () => {
    expect(requesterErrors("UPDATE", ADMIN, task(A_TEXT), task(A_TEXT))).toEqual([]);
    expect(requesterErrors("UPDATE", ADMIN, task(), task())).toEqual([]);
    expect(requesterErrors("UPDATE", SA_A, task(A_TEXT), task(requesterAnnotation(ADMIN)))).toEqual([
      REQUESTER_MESSAGES.changed,
    ]);
    expect(requesterErrors("UPDATE", SA_A, task(A_TEXT), task())).toEqual([REQUESTER_MESSAGES.changed]);
    expect(requesterErrors("UPDATE", SA_A, task(), task(A_TEXT))).toEqual([REQUESTER_MESSAGES.changed]);
  });

  test("the messages name the field and the rule", () => {
    expect(REQUESTER_MESSAGES.userSet).toBe(
      "metadata.annotations[atb.siemens.com/requester]: set by the admission webhook only; remove it",
    );
    expect(REQUESTER_MESSAGES.changed).toBe(
      "metadata.annotations[atb.siemens.com/requester]: set by the admission webhook at creation; it never changes",
    );
  });
});

describe("the agenttask capability's webhooks", () => {
  let cap: Capability;
  beforeAll(() => {
    cap = agentTaskCapability({ actions, config: parseConfig({}) });
  });

  const review = (operation: "CREATE" | "UPDATE", object: AgentTask, user: AdmissionUser, oldObject?: AgentTask) =>
    ({
      uid: "r-1",
      kind: { group: "atb.siemens.com", version: "v1alpha1", kind: "AgentTask" },
      resource: { group: "atb.siemens.com", version: "v1alpha1", resource: "agenttasks" },
      name: "t",
      namespace: "shop",
      operation,
      userInfo: user,
      object,
      ...(oldObject ? { oldObject } : {}),
    }) as never;

  async function mutate(operation: "CREATE" | "UPDATE", object: AgentTask, user: AdmissionUser, old?: AgentTask) {
    const req = new PeprMutateRequest<AgentTask>(review(operation, object, user, old));
    for (const b of cap.bindings) if (b.mutateCallback) await b.mutateCallback(req as never);
    return req.Raw;
  }

  async function validate(operation: "CREATE" | "UPDATE", object: AgentTask, user: AdmissionUser, old?: AgentTask) {
    const req = new PeprValidateRequest<AgentTask>(review(operation, object, user, old));
    const results = [];
    for (const b of cap.bindings) if (b.validateCallback) results.push(await b.validateCallback(req as never));
    return results;
  }

  test("GIVEN a creation THEN the mutating webhook stamps the creating user, and validation passes", async () => {
    const stamped = await mutate("CREATE", task(), SA_A);
    expect(stamped.metadata?.annotations?.[ANNOTATION_REQUESTER]).toBe(A_TEXT);
    expect(await validate("CREATE", stamped, SA_A)).toEqual([{ allowed: true }]);
  });

  test("GIVEN a creation with the annotation set by the user THEN it is kept as written and refused", async () => {
    const forged = requesterAnnotation(ADMIN)!;
    const mutated = await mutate("CREATE", task(forged), SA_A);
    expect(mutated.metadata?.annotations?.[ANNOTATION_REQUESTER]).toBe(forged);
    const [answer] = await validate("CREATE", mutated, SA_A);
    expect(answer).toMatchObject({ allowed: false, statusCode: 422 });
    expect(answer.statusMessage).toContain(REQUESTER_MESSAGES.userSet);
  });

  test("GIVEN an update THEN the mutating webhook keeps the annotation (a removal is put back), and a change is refused", async () => {
    const stored = task(A_TEXT);
    const changed = task(requesterAnnotation(ADMIN));
    expect((await mutate("UPDATE", changed, ADMIN, stored)).metadata?.annotations?.[ANNOTATION_REQUESTER]).toBe(
      requesterAnnotation(ADMIN),
    );
    // A removal (a second server-side apply that never owned the annotation) is put back as stored.
    const restored = await mutate("UPDATE", task(), ADMIN, stored);
    expect(restored.metadata?.annotations?.[ANNOTATION_REQUESTER]).toBe(A_TEXT);
    expect(await validate("UPDATE", restored, ADMIN, stored)).toEqual([{ allowed: true }]);
    // A task stored without a record (created where no webhook ran) does not get one later.
    expect((await mutate("UPDATE", task(), ADMIN, task())).metadata?.annotations).toBeUndefined();
    const [refused] = await validate("UPDATE", changed, ADMIN, stored);
    expect(refused).toMatchObject({ allowed: false, statusMessage: REQUESTER_MESSAGES.changed });
    expect(await validate("UPDATE", task(A_TEXT), ADMIN, stored)).toEqual([{ allowed: true }]);
  });
});
