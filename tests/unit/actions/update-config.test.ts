// update-config: key rules, a Secret's values by reference only (read from the source Secret when
// the change is planned, base64 copied as it is), ConfigMap values inline only, removal by
// merge-patch null, and no value ever in params, context or messages.
import { canonicalChange } from "../../../capabilities/change";
import { bytesDigest, valueDigest } from "../../../capabilities/lib/change-digest";
import { AtbError } from "../../../capabilities/lib/errors";
import { resourcePath } from "../../../capabilities/lib/kube";
import { mismatchedKeys, UpdateConfigAction } from "../../../capabilities/update-config";
import { REFERENCE_FORM } from "../../../capabilities/update-config/ref";
import type { KubeObject } from "../../../capabilities/lib/action";
import { config, ctx, FakeKube, NS, spec } from "./fake";

const SECRET_VALUE = "hunter2-do-not-leak";
const b64 = (v: string | Buffer): string => Buffer.from(v).toString("base64");
const ref = (name: string, key: string) => ({ valueFrom: { secretKeyRef: { name, key } } });
/** The fake with its get() recorded in `requests` too (the plain fake records request() only). */
function reads(kube: FakeKube): FakeKube {
  const get = kube.get.bind(kube);
  kube.get = <T>(path: string): Promise<T | undefined> => {
    kube.requests.push({ method: "GET", path });
    return get<T>(path);
  };
  return kube;
}
/** A source Secret as the API server returns it: values base64 in data. */
const source = (name: string, values: Record<string, string | Buffer>): KubeObject => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace: NS, resourceVersion: "3" },
  type: "Opaque",
  data: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, b64(v)])),
});

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
    expect(UpdateConfigAction.validate(spec("update-config", "ConfigMap", big), config())).toEqual([
      "spec.payload.data: keys and values must total at most 1048576 bytes (got 1200002)",
    ]);
  });
});

describe("update-config validate(): a Secret's values by reference only", () => {
  const secret = (payload: Record<string, unknown>) =>
    UpdateConfigAction.validate(spec("update-config", "Secret", payload), config());
  const configMap = (payload: Record<string, unknown>) =>
    UpdateConfigAction.validate(spec("update-config", "ConfigMap", payload), config());

  test("references to keys of Secrets in the namespace, and removals, are accepted", () => {
    expect(secret({ data: { password: ref("db-creds", "password"), "tls.key": ref("a.b-c", "x_y.z") } })).toEqual([]);
    expect(secret({ remove: ["old"] })).toEqual([]);
    expect(secret({ data: { password: ref("db-creds", "password") }, remove: ["old"] })).toEqual([]);
  });

  test("an inline value is refused with a message that names the field and shows the reference form, never the value", () => {
    const errors = secret({ data: { password: SECRET_VALUE, ok: ref("src", "k") } });
    expect(errors).toEqual([
      `spec.payload.data["password"]: a Secret's values are given by reference, never inline (an inline value would be stored in the AgentTask, which is not a Secret): use ${REFERENCE_FORM}`,
    ]);
    expect(REFERENCE_FORM).toBe(
      `{"valueFrom": {"secretKeyRef": {"name": "<a Secret in the target's namespace>", "key": "<its key>"}}}`,
    );
    expect(errors.join(" ")).not.toContain(SECRET_VALUE);
    // Whatever the inline value's type.
    expect(secret({ data: { n: 5 } })).toEqual([
      expect.stringMatching(/^spec\.payload\.data\["n"\]: a Secret's values are given by reference/),
    ]);
  });

  test.each([
    [
      "another member beside valueFrom",
      { valueFrom: { secretKeyRef: { name: "s", key: "k" } }, value: "x" },
      [`spec.payload.data["p"].value: not a field of a Secret reference (allowed: valueFrom)`],
    ],
    [
      "a ConfigMap reference (not a Secret's)",
      { valueFrom: { configMapKeyRef: { name: "s", key: "k" } } },
      [
        `spec.payload.data["p"].valueFrom.configMapKeyRef: not a field of a Secret reference (allowed: secretKeyRef)`,
        `spec.payload.data["p"].valueFrom.secretKeyRef: must be ${REFERENCE_FORM}`,
      ],
    ],
    ["no valueFrom", {}, [`spec.payload.data["p"].valueFrom: must be ${REFERENCE_FORM}`]],
    [
      "optional (a missing source is never skipped)",
      { valueFrom: { secretKeyRef: { name: "s", key: "k", optional: true } } },
      [
        `spec.payload.data["p"].valueFrom.secretKeyRef.optional: not a field of a Secret reference (allowed: name, key)`,
      ],
    ],
    [
      "no name and no key",
      { valueFrom: { secretKeyRef: {} } },
      [
        'spec.payload.data["p"].valueFrom.secretKeyRef.name: is required (a string: the source Secret\'s name)',
        'spec.payload.data["p"].valueFrom.secretKeyRef.key: is required (a string: the source Secret\'s key)',
      ],
    ],
    [
      "a name that is not a DNS subdomain",
      ref("Bad_Name", "k"),
      [
        "spec.payload.data[\"p\"].valueFrom.secretKeyRef.name: must be a lowercase RFC 1123 subdomain (lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character)",
      ],
    ],
    [
      "a name longer than 253 characters",
      ref("a".repeat(254), "k"),
      ['spec.payload.data["p"].valueFrom.secretKeyRef.name: must be 1 to 253 characters'],
    ],
    [
      "a key that is not a Secret key",
      ref("s", "a/b"),
      ["spec.payload.data[\"p\"].valueFrom.secretKeyRef.key: must consist of alphanumeric characters, '-', '_' or '.'"],
    ],
    [
      "a key of '..'",
      ref("s", ".."),
      ["spec.payload.data[\"p\"].valueFrom.secretKeyRef.key: must not be '.' or '..' or start with '..'"],
    ],
    [
      "a key longer than 253 characters",
      ref("s", "k".repeat(254)),
      ['spec.payload.data["p"].valueFrom.secretKeyRef.key: must be 1 to 253 characters'],
    ],
  ])("a reference with %s is refused", (_name, value, errors) => {
    expect(secret({ data: { p: value } })).toEqual(errors);
  });

  test("a reference for a ConfigMap is refused: it would copy a Secret's value into a ConfigMap", () => {
    expect(configMap({ data: { dsn: ref("db-creds", "dsn") } })).toEqual([
      `spec.payload.data["dsn"]: must be a string: a ConfigMap's values are given inline, a reference to a Secret is refused (it would copy the Secret's value into a ConfigMap, which is not secret)`,
    ]);
  });

  test("a data map that is not a map names what a Secret takes", () => {
    expect(secret({ data: "password=x" })).toEqual([
      "spec.payload.data: must be a map of keys to references to a Secret's keys",
      "spec.payload: data or remove must name at least one key",
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
  test("Secret: each referenced value read from its source (one GET per source), base64 copied, removed keys null, only keys, digests and sizes for the broker", async () => {
    const s = spec("update-config", "Secret", {
      data: { password: ref("db-creds", "pw"), user: ref("db-creds", "name"), cert: ref("tls", "tls.crt") },
      remove: ["old", "absent"],
    });
    const binary = Buffer.from([0, 255, 1, 128, 10]); // not UTF-8: copied as bytes
    const kube = new FakeKube()
      .put("Secret", source("db-creds", { pw: SECRET_VALUE, name: "admin" }))
      .put("Secret", source("tls", { "tls.crt": binary }));
    const t = target("Secret", { user: "b2xk", old: "eA==" }, { type: "Opaque" });
    const plan = await UpdateConfigAction.plan(ctx(s, reads(kube)), t);
    const body = plan.write.body as { data: Record<string, string | null>; metadata: { resourceVersion: string } };
    expect(body.data).toEqual({ password: b64(SECRET_VALUE), user: "YWRtaW4=", cert: b64(binary), old: null });
    expect(body.metadata.resourceVersion).toBe("7");
    expect(plan.write.patchType).toBe("merge");
    expect(kube.requests.map(r => `${r.method} ${r.path}`)).toEqual([
      `GET ${resourcePath("Secret", NS, "db-creds")}`,
      `GET ${resourcePath("Secret", NS, "tls")}`,
    ]);
    // The canonical change: each value as the SHA-256 of its bytes, the same as for the value inline.
    const valueDigests = { password: valueDigest(SECRET_VALUE), user: valueDigest("admin"), cert: bytesDigest(binary) };
    expect(plan.params).toEqual({ data: valueDigests, remove: ["old", "absent"] });
    expect(plan.params).toEqual(canonicalChange(s, { valueDigests }));
    expect(plan.context).toMatchObject({
      valueSizes: { password: 19, user: 5, cert: 5 },
      keysAdded: ["password", "cert"],
      keysOverwritten: ["user"],
      keysRemovedExisting: ["old"],
      secretType: "Opaque",
    });
    const visible = JSON.stringify([plan.params, plan.context]);
    expect(visible).not.toContain(SECRET_VALUE);
    expect(visible).not.toContain(b64(SECRET_VALUE));
  });

  test("Secret: a referenced value digests to the same change as the same value given inline", async () => {
    const s = spec("update-config", "Secret", { data: { password: ref("src", "pw") } });
    const kube = new FakeKube().put("Secret", source("src", { pw: SECRET_VALUE }));
    const plan = await UpdateConfigAction.plan(ctx(s, kube), target("Secret", {}));
    expect(plan.params).toEqual(canonicalChange({ ...s, payload: { data: { password: SECRET_VALUE } } }));
  });

  test("Secret: a key of the target itself is copied without a second GET", async () => {
    const s = spec("update-config", "Secret", { data: { "password.new": ref("web", "password") } });
    const kube = reads(new FakeKube());
    const plan = await UpdateConfigAction.plan(ctx(s, kube), target("Secret", { password: b64(SECRET_VALUE) }));
    expect((plan.write.body as { data: Record<string, string> }).data).toEqual({ "password.new": b64(SECRET_VALUE) });
    expect(kube.requests).toEqual([]);
  });

  test.each([
    [
      "the source Secret does not exist",
      { password: ref("gone", "pw") },
      `spec.payload.data["password"].valueFrom.secretKeyRef: Secret ${NS}/gone does not exist`,
    ],
    [
      "the source has no such key",
      { password: ref("src", "nope") },
      `spec.payload.data["password"].valueFrom.secretKeyRef: Secret ${NS}/src has no key "nope"`,
    ],
    [
      "two references are missing",
      { a: ref("gone", "x"), b: ref("src", "pw"), c: ref("src", "y") },
      `spec.payload.data["a"].valueFrom.secretKeyRef: Secret ${NS}/gone does not exist; spec.payload.data["c"].valueFrom.secretKeyRef: Secret ${NS}/src has no key "y"`,
    ],
  ])(
    "Failed SecretRefNotFound when %s, naming the field; nothing planned, no value shown",
    async (_n, data, message) => {
      const s = spec("update-config", "Secret", { data });
      const kube = new FakeKube().put("Secret", source("src", { pw: SECRET_VALUE }));
      const err = await UpdateConfigAction.plan(ctx(s, kube), target("Secret", {})).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AtbError);
      expect(err).toMatchObject({ kind: "SECRET_REF_NOT_FOUND", reason: "SecretRefNotFound", message });
      expect(String((err as Error).message)).not.toContain(SECRET_VALUE);
    },
  );

  test("Secret: the referenced values count towards the 1 MiB bound", async () => {
    const s = spec("update-config", "Secret", { data: { a: ref("src", "a"), b: ref("src", "b") } });
    const kube = new FakeKube().put("Secret", source("src", { a: "x".repeat(600_000), b: "y".repeat(600_000) }));
    await expect(UpdateConfigAction.plan(ctx(s, kube), target("Secret", {}))).rejects.toMatchObject({
      kind: "TASK_INVALID",
      message:
        "spec.payload.data: keys and values must total at most 1048576 bytes (got 1200002 with the referenced values)",
    });
  });

  test("defence in depth: a reference for a ConfigMap, or a malformed one for a Secret, reads and plans nothing", async () => {
    const kube = reads(new FakeKube().put("Secret", source("src", { pw: SECRET_VALUE })));
    const cm = spec("update-config", "ConfigMap", { data: { dsn: ref("src", "pw") } });
    await expect(UpdateConfigAction.plan(ctx(cm, kube), target("ConfigMap", {}))).rejects.toMatchObject({
      kind: "TASK_INVALID",
      message: expect.stringMatching(/^spec\.payload\.data\["dsn"\]: must be a string: a ConfigMap's values/),
    });
    const bad = spec("update-config", "Secret", { data: { p: { valueFrom: { secretKeyRef: { name: "src" } } } } });
    await expect(UpdateConfigAction.plan(ctx(bad, kube), target("Secret", {}))).rejects.toMatchObject({
      kind: "TASK_INVALID",
    });
    expect(kube.requests).toEqual([]);
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
    const s = spec("update-config", "Secret", { data: { a: ref("src", "b") } });
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

  test("Secret by reference: done when the target holds the source's value; failed, naming keys only, when either changed", async () => {
    const kube = new FakeKube();
    const s = spec("update-config", "Secret", { data: { password: ref("src", "pw") } });
    kube.put("Secret", source("src", { pw: SECRET_VALUE }));
    kube.put("Secret", target("Secret", { password: b64(SECRET_VALUE) }));
    expect((await UpdateConfigAction.verify(ctx(s, kube))).state).toBe("done");
    kube.put("Secret", source("src", { pw: "rotated" }));
    const r = await UpdateConfigAction.verify(ctx(s, kube));
    expect(r).toEqual({
      state: "failed",
      reason: "TargetChanged",
      message:
        "Secret web: keys password are not as requested (changed by someone else after the write, or their source Secret)",
    });
    expect(JSON.stringify(r)).not.toContain(SECRET_VALUE);
  });

  test("Secret by reference: a source gone after the write (or a key of the target renamed by the task) only has to be there", async () => {
    const kube = new FakeKube();
    // A rename: the task copies the target's own "old" key to "new" and removes "old".
    const rename = spec("update-config", "Secret", { data: { new: ref("web", "old") }, remove: ["old"] });
    const t = target("Secret", { old: b64(SECRET_VALUE) });
    const plan = await UpdateConfigAction.plan(ctx(rename, kube), t);
    expect((plan.write.body as { data: Record<string, string | null> }).data).toEqual({
      new: b64(SECRET_VALUE),
      old: null,
    });
    kube.put("Secret", target("Secret", { new: b64(SECRET_VALUE) }));
    expect(await UpdateConfigAction.verify(ctx(rename, kube))).toEqual({
      state: "done",
      message: "Secret web updated",
    });
    // A source deleted once its value was written.
    const copy = spec("update-config", "Secret", { data: { password: ref("src", "pw") } });
    kube.put("Secret", target("Secret", { password: b64(SECRET_VALUE) }));
    expect((await UpdateConfigAction.verify(ctx(copy, kube))).state).toBe("done");
    // ... but the key must still be there.
    kube.put("Secret", target("Secret", {}));
    expect(await UpdateConfigAction.verify(ctx(copy, kube))).toMatchObject({
      state: "failed",
      reason: "TargetChanged",
      message: expect.stringContaining("keys password are not as requested"),
    });
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
