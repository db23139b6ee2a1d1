// The canonical change of each action (capabilities/change.ts): what the operator sends as params
// and a PoA binds as con.change_sha256. Each form from the payload alone (a rollback's from the
// resolved revision), nothing observed, values of config data only as digests; the shared
// fixtures (tests/fixtures/change-digest/, which the Python, Go and npm run poa digests are checked
// against in tests/integration/change-digest-clients.test.ts) hold what this computes.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalChange, taskChangeDigest, templateHashOf, type ChangeResolution } from "../../capabilities/change";
import { canonicalJson, changeDigest, valueDigest } from "../../capabilities/lib/change-digest";
import { ACTIONS, actions } from "../../capabilities/registry";
import type { KubeObject } from "../../capabilities/lib/action";
import { ctx, FakeKube, NS, workload } from "./actions/fake";

const FIXTURES = join(__dirname, "..", "fixtures", "change-digest");

interface Fixture {
  description: string;
  action: string;
  kind: string;
  payload: Record<string, unknown>;
  resolved?: ChangeResolution;
  change: unknown;
  digest: string;
}

const fixtures = readdirSync(FIXTURES)
  .filter(f => f.endsWith(".json"))
  .sort()
  .map(f => [f, JSON.parse(readFileSync(join(FIXTURES, f), "utf8")) as Fixture] as const);

const spec = (action: string, payload?: Record<string, unknown>, kind = "Deployment") => ({
  action,
  target: { kind },
  payload,
});

describe("canonicalChange per action", () => {
  test.each([
    ["scale", spec("scale", { replicas: 5, reason: "traffic" }), { replicas: 5 }],
    ["restart", spec("restart", {}), { restart: true }],
    ["restart without payload", spec("restart"), { restart: true }],
    [
      "update-config",
      spec("update-config", { data: { b: "2", a: "x" }, remove: ["z", "y"] }, "ConfigMap"),
      { data: { a: valueDigest("x"), b: valueDigest("2") }, remove: ["z", "y"] },
    ],
    ["update-config, remove only", spec("update-config", { remove: ["k"] }), { data: {}, remove: ["k"] }],
    [
      "update-config, data only",
      spec("update-config", { data: { k: "" } }),
      { data: { k: valueDigest("") }, remove: [] },
    ],
    ["deploy image", spec("deploy", { image: "i:2", container: "app" }), { image: "i:2", container: "app" }],
    ["deploy image, no container", spec("deploy", { image: "i:2" }), { image: "i:2", container: null }],
    ["deploy manifest", spec("deploy", { manifest: { kind: "Deployment" } }), { manifest: { kind: "Deployment" } }],
    [
      "patch (array)",
      spec("patch", { patch: [{ op: "add", path: "/metadata/labels/a", value: "b" }] }),
      { patch: [{ op: "add", path: "/metadata/labels/a", value: "b" }] },
    ],
    [
      "patch (string)",
      spec("patch", { patch: '[{"op":"remove","path":"/metadata/labels/a"}]' }),
      { patch: [{ op: "remove", path: "/metadata/labels/a" }] },
    ],
    [
      "patch of ConfigMap data",
      spec(
        "patch",
        {
          patch: [
            { op: "add", path: "/data/k", value: "v" },
            { op: "add", path: "/data", value: {} },
          ],
        },
        "ConfigMap",
      ),
      {
        patch: [
          { op: "add", path: "/data/k", value: valueDigest("v") },
          { op: "add", path: "/data", value: changeDigest({}) },
        ],
      },
    ],
    [
      "patch of a Deployment's /data-like path keeps its value",
      spec("patch", { patch: [{ op: "add", path: "/data/k", value: "v" }] }),
      { patch: [{ op: "add", path: "/data/k", value: "v" }] },
    ],
  ])("%s", (_name, s, want) => {
    expect(canonicalChange(s)).toEqual(want);
    expect(taskChangeDigest(s)).toBe(changeDigest(want));
  });

  test("rollback: the resolved revision (default: the payload's) and the template hash", () => {
    expect(canonicalChange(spec("rollback", {}), { revision: 4, templateHash: "abc" })).toEqual({
      revision: 4,
      template_hash: "abc",
    });
    expect(canonicalChange(spec("rollback", { revision: 2 }), { templateHash: null })).toEqual({
      revision: 2,
      template_hash: null,
    });
    expect(() => canonicalChange(spec("rollback", {}), { templateHash: "abc" })).toThrow(/revision to restore/);
    expect(() => canonicalChange(spec("rollback", { revision: 2 }))).toThrow(/template hash/);
  });

  test("update-config of a Secret by reference: each value as the digest of the source's value, the same change as inline", () => {
    const ref = (name: string, key: string) => ({ valueFrom: { secretKeyRef: { name, key } } });
    const payload = { data: { password: ref("src", "pw"), user: ref("other", "name") }, remove: ["old"] };
    const valueDigests = { password: valueDigest("s3cr3t"), user: valueDigest("app") };
    const want = { data: valueDigests, remove: ["old"] };
    expect(canonicalChange(spec("update-config", payload, "Secret"), { valueDigests })).toEqual(want);
    // The same values given inline (as a ConfigMap takes them) make the same change: an agent or an
    // approver digests the value it put into the source Secret.
    const inline = spec("update-config", { data: { password: "s3cr3t", user: "app" }, remove: ["old"] });
    expect(taskChangeDigest(spec("update-config", payload, "Secret"), { valueDigests })).toBe(taskChangeDigest(inline));
    // Another value in the source is another change.
    expect(
      taskChangeDigest(spec("update-config", payload, "Secret"), {
        valueDigests: { ...valueDigests, password: valueDigest("s3cr3t2") },
      }),
    ).not.toBe(taskChangeDigest(inline));
  });

  test.each([
    ["no digest for a reference", {}, /"password" is key "pw" of Secret "src"; its change needs that value's digest/],
    ["a malformed digest", { password: "sha256:ABC" }, /value digest of "password" must be sha256:<64 lowercase hex/],
    [
      "a digest for a key given inline",
      { password: valueDigest("x"), user: valueDigest("y") },
      /value digests are for references only; the payload's data has no reference named "user"/,
    ],
    [
      "a digest for a key not in the payload",
      { password: valueDigest("x"), other: valueDigest("y") },
      /no reference named "other"/,
    ],
  ])("update-config by reference refuses %s", (_name, valueDigests, message) => {
    const payload = { data: { password: { valueFrom: { secretKeyRef: { name: "src", key: "pw" } } }, user: "u" } };
    expect(() => canonicalChange(spec("update-config", payload, "Secret"), { valueDigests })).toThrow(message);
  });

  test("the digest differs whenever the change does, and only then", () => {
    const a = taskChangeDigest(spec("scale", { replicas: 5 }));
    expect(taskChangeDigest(spec("scale", { replicas: 5, reason: "other words" }))).toBe(a);
    expect(taskChangeDigest(spec("scale", { replicas: 6 }))).not.toBe(a);
    const m = { metadata: { name: "web", labels: { a: "1", b: "2" } } };
    const reordered = { metadata: { labels: { b: "2", a: "1" }, name: "web" } };
    expect(taskChangeDigest(spec("deploy", { manifest: m }))).toBe(
      taskChangeDigest(spec("deploy", { manifest: reordered })),
    );
    expect(taskChangeDigest(spec("update-config", { remove: ["a", "b"] }))).not.toBe(
      taskChangeDigest(spec("update-config", { remove: ["b", "a"] })),
    );
    expect(taskChangeDigest(spec("deploy", { image: "i:2" }))).not.toBe(
      taskChangeDigest(spec("deploy", { image: "i:2", container: "app" })),
    );
  });

  test("every action of the registry has a canonical change; anything else is refused", () => {
    const payloads: Record<string, Record<string, unknown>> = {
      scale: { replicas: 1 },
      "update-config": { data: { a: "b" } },
      deploy: { image: "i" },
      patch: { patch: [] },
      rollback: { revision: 1 },
    };
    for (const action of ACTIONS) {
      expect(() => canonicalChange(spec(action, payloads[action] ?? {}), { templateHash: null })).not.toThrow();
    }
    expect(() => canonicalChange(spec("delete", {}))).toThrow(/no canonical change for action "delete"/);
  });

  test.each([
    [
      "update-config with a value that is neither a string nor a reference",
      spec("update-config", { data: { a: 1 } }),
      /neither a string nor a secretKeyRef/,
    ],
    ["patch that is not an array", spec("patch", { patch: { op: "add" } }), /not an array/],
    ["patch string that is not JSON", spec("patch", { patch: "[{" }), /JSON/],
    ["patch with an operation that is not an object", spec("patch", { patch: ["add"] }), /not an object/],
    ["scale without replicas", spec("scale", {}), /no JSON form/],
  ])("refuses %s", (_name, s, message) => {
    expect(() => taskChangeDigest(s)).toThrow(message);
  });

  test("templateHashOf: pod-template-hash (ReplicaSet), controller.kubernetes.io/hash (StatefulSet), controller-revision-hash (DaemonSet)", () => {
    expect(templateHashOf({ metadata: { labels: { app: "web", "pod-template-hash": "h1" } } })).toBe("h1");
    expect(templateHashOf({ metadata: { labels: { "controller.kubernetes.io/hash": "h2" } } })).toBe("h2");
    expect(templateHashOf({ metadata: { labels: { "controller-revision-hash": "h3" } } })).toBe("h3");
    expect(templateHashOf({ metadata: { labels: { app: "web" } } })).toBeNull();
    expect(templateHashOf({})).toBeNull();
  });
});

describe("the shared fixtures (tests/fixtures/change-digest/)", () => {
  test("cover every action, a Secret, a ConfigMap patch and the JCS edge cases", () => {
    const names = fixtures.map(([f]) => f);
    expect(new Set(fixtures.map(([, x]) => x.action))).toEqual(new Set(ACTIONS));
    expect(names).toEqual(
      expect.arrayContaining([
        "edge-unicode-keys.json",
        "edge-numbers-nesting.json",
        "patch-configmap.json",
        "update-config-secret-ref.json",
      ]),
    );
  });

  test.each(fixtures)("%s: the change and its digest are what capabilities/change.ts computes", (_f, x) => {
    const change = canonicalChange({ action: x.action, target: { kind: x.kind }, payload: x.payload }, x.resolved);
    // As canonical JSON (the payload's -0 is the change's 0, as JCS prints it).
    expect(canonicalJson(change)).toBe(canonicalJson(x.change));
    expect(changeDigest(change)).toBe(x.digest);
    expect(changeDigest(x.change)).toBe(x.digest);
  });
});

describe("each action's plan sends its canonical change as params", () => {
  const configMap = (): KubeObject => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "web", namespace: NS, resourceVersion: "7" },
    data: { a: "1" },
  });
  const manifest = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "web", namespace: NS }, spec: {} };

  test.each([
    ["scale", spec("scale", { replicas: 4, reason: "load" }, "Deployment"), workload("Deployment")],
    ["restart", spec("restart", {}, "StatefulSet"), workload("StatefulSet")],
    ["update-config", spec("update-config", { data: { b: "2" }, remove: ["a"] }, "ConfigMap"), configMap()],
    ["deploy image", spec("deploy", { image: "nginx:1.28" }, "Deployment"), workload("Deployment")],
    ["deploy manifest", spec("deploy", { manifest }, "Deployment"), workload("Deployment")],
    ["patch", spec("patch", { patch: '[{"op":"replace","path":"/data/a","value":"2"}]' }, "ConfigMap"), configMap()],
  ] as const)("%s", async (_name, s, target) => {
    const module = actions[s.action]!;
    const task = {
      ...s,
      agentId: "spiffe://atb.example.com/agent/test",
      poaToken: "a.b.c",
      target: { ...s.target, name: "web", namespace: NS },
    };
    const plan = await module.plan(ctx(task as never, new FakeKube()), target);
    expect(plan.params).toEqual(canonicalChange(task));
    expect(JSON.stringify(plan.params)).not.toContain('"2"');
  });
});
