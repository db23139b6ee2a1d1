// update-config: key rules, Secret values base64-encoded, removal by merge-patch null, and no
// value ever in params, context or messages.
import { canonicalChange } from "../../../capabilities/change";
import { valueDigest } from "../../../capabilities/lib/change-digest";
import { mismatchedKeys, UpdateConfigAction } from "../../../capabilities/update-config";
import type { KubeObject } from "../../../capabilities/lib/action";
import { config, ctx, FakeKube, NS, spec } from "./fake";

const SECRET_VALUE = "hunter2-do-not-leak";

describe("update-config validate()", () => {
  test.each([
    [{ data: { LOG_LEVEL: "debug", "app.conf": "x", "a-b_c": "" } }, []],
    [{ remove: ["old"] }, []],
    [
      { data: { "bad key": "v" } },
      [`spec.payload.data["bad key"]: key must consist of alphanumeric characters, '-', '_' or '.'`],
    ],
    [{ data: { "..x": "v" } }, [`spec.payload.data["..x"]: key must not be '.' or '..' or start with '..'`]],
    [{ data: { ["k".repeat(254)]: "v" } }, [expect.stringMatching(/key must be 1 to 253 characters$/)]],
    [{ data: { k: 5 } }, [`spec.payload.data["k"]: value must be a string`]],
    [
      { data: ["k"] },
      [
        "spec.payload.data: must be a map of string keys to string values",
        "spec.payload: data or remove must name at least one key",
      ],
    ],
    [{ data: { a: "1" }, remove: ["a"] }, [`spec.payload.remove[0]: key "a" is also set in spec.payload.data`]],
    [
      { remove: "a" },
      ["spec.payload.remove: must be a list of keys", "spec.payload: data or remove must name at least one key"],
    ],
    [{ remove: [7] }, ["spec.payload.remove[0]: key must be a string"]],
    [{ data: {}, remove: [] }, ["spec.payload: data or remove must name at least one key"]],
    [
      { data: { a: "1" }, values: {} },
      ["spec.payload.values: not a field of action update-config (allowed: data, remove, reason)"],
    ],
  ])("%p → %p", (payload, errors) => {
    expect(UpdateConfigAction.validate(spec("update-config", "ConfigMap", payload), config())).toEqual(errors);
  });

  test("the total size is bounded", () => {
    const big = { data: { a: "x".repeat(600_000), b: "y".repeat(600_000) } };
    expect(UpdateConfigAction.validate(spec("update-config", "Secret", big), config())).toEqual([
      "spec.payload.data: keys and values must total at most 1048576 bytes (got 1200002)",
    ]);
  });
});

function target(
  kind: "ConfigMap" | "Secret",
  data: Record<string, string>,
  extra: Partial<KubeObject> = {},
): KubeObject {
  return { apiVersion: "v1", kind, metadata: { name: "web", namespace: NS, resourceVersion: "7" }, data, ...extra };
}

describe("update-config plan()", () => {
  test("Secret: values base64 in data, removed keys null, only keys, value digests and sizes for the broker", async () => {
    const s = spec("update-config", "Secret", {
      data: { password: SECRET_VALUE, user: "admin" },
      remove: ["old", "absent"],
    });
    const t = target("Secret", { user: "b2xk", old: "eA==" }, { type: "Opaque" });
    const plan = await UpdateConfigAction.plan(ctx(s, new FakeKube()), t);
    const body = plan.write.body as { data: Record<string, string | null>; metadata: { resourceVersion: string } };
    expect(body.data).toEqual({ password: Buffer.from(SECRET_VALUE).toString("base64"), user: "YWRtaW4=", old: null });
    expect(body.metadata.resourceVersion).toBe("7");
    expect(plan.write.patchType).toBe("merge");
    // The canonical change: each value as the SHA-256 of the agent's text (not of the base64).
    expect(plan.params).toEqual({
      data: { password: valueDigest(SECRET_VALUE), user: valueDigest("admin") },
      remove: ["old", "absent"],
    });
    expect(plan.params).toEqual(canonicalChange(s));
    expect(plan.context).toMatchObject({
      valueSizes: { password: 19, user: 5 },
      keysAdded: ["password"],
      keysOverwritten: ["user"],
      keysRemovedExisting: ["old"],
      secretType: "Opaque",
    });
    const visible = JSON.stringify([plan.params, plan.context]);
    expect(visible).not.toContain(SECRET_VALUE);
    expect(visible).not.toContain(Buffer.from(SECRET_VALUE).toString("base64"));
  });

  test("ConfigMap: values as they are, values kept out of params too", async () => {
    const s = spec("update-config", "ConfigMap", { data: { dsn: SECRET_VALUE } });
    const plan = await UpdateConfigAction.plan(ctx(s, new FakeKube()), target("ConfigMap", {}));
    expect((plan.write.body as { data: Record<string, string> }).data).toEqual({ dsn: SECRET_VALUE });
    expect(JSON.stringify([plan.params, plan.context])).not.toContain(SECRET_VALUE);
  });

  test("an immutable ConfigMap is refused before anything is sent", async () => {
    const s = spec("update-config", "ConfigMap", { data: { a: "b" } });
    await expect(
      UpdateConfigAction.plan(ctx(s, new FakeKube()), target("ConfigMap", {}, { immutable: true })),
    ).rejects.toMatchObject({
      kind: "TASK_INVALID",
    });
  });

  test("a missing target is TARGET_NOT_FOUND", async () => {
    const s = spec("update-config", "Secret", { data: { a: "b" } });
    await expect(UpdateConfigAction.plan(ctx(s, new FakeKube()), undefined)).rejects.toMatchObject({
      kind: "TARGET_NOT_FOUND",
    });
  });
});

describe("update-config verify", () => {
  test("compares stored values without reporting them", () => {
    const change = { data: { password: SECRET_VALUE }, remove: ["old"] };
    const ok = target("Secret", { password: Buffer.from(SECRET_VALUE).toString("base64") });
    expect(mismatchedKeys("Secret", ok, change)).toEqual([]);
    expect(mismatchedKeys("Secret", target("Secret", { password: "eA==", old: "eA==" }), change)).toEqual([
      "password",
      "old",
    ]);
  });

  test("done after the write; failed when someone changed a key since", async () => {
    const kube = new FakeKube();
    const s = spec("update-config", "ConfigMap", { data: { a: SECRET_VALUE } });
    kube.put("ConfigMap", target("ConfigMap", { a: SECRET_VALUE }));
    expect((await UpdateConfigAction.verify(ctx(s, kube))).state).toBe("done");
    kube.put("ConfigMap", target("ConfigMap", { a: "other" }));
    const r = await UpdateConfigAction.verify(ctx(s, kube));
    expect(r).toMatchObject({ state: "failed", reason: "TargetChanged" });
    expect(JSON.stringify(r)).not.toContain(SECRET_VALUE);
  });
});
