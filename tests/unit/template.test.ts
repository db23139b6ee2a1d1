// templateDiff: a pod template the API server returns matches a manifest's template up to the
// defaults the API server fills in, the pod-template-hash label and canonical quantities; an extra
// container, init container, volume, env var, port or label, or a changed value, is a difference.
// The defaults are checked against what kube-apiserver v1.36.3 really returned for a manifest that
// uses most pod features (tests/fixtures/pod-template-defaults/rich.json), not against our model.
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseQuantity, sameQuantity } from "../../capabilities/lib/kube/quantity";
import { defaultPullPolicy, describeDiff, templateDiff } from "../../capabilities/lib/kube/template";

type Rec = Record<string, unknown>;
const recorded = JSON.parse(
  readFileSync(join(__dirname, "..", "fixtures", "pod-template-defaults", "rich.json"), "utf8"),
) as Record<"manifest" | "deployment" | "replicaSet" | "statefulSetRevision" | "daemonSetRevision", Rec>;

/** A small manifest template and the same template as the API server stores it. */
const manifest = (): Rec => ({
  metadata: { labels: { app: "pay" } },
  spec: {
    containers: [{ name: "payment-service", image: "registry/pay:2.0.0", ports: [{ containerPort: 8080 }] }],
  },
});
const stored = (): Rec => ({
  metadata: { labels: { app: "pay", "pod-template-hash": "5d8f7c9b6" } },
  spec: {
    containers: [
      {
        name: "payment-service",
        image: "registry/pay:2.0.0",
        imagePullPolicy: "IfNotPresent",
        ports: [{ containerPort: 8080, protocol: "TCP" }],
        resources: {},
        terminationMessagePath: "/dev/termination-log",
        terminationMessagePolicy: "File",
      },
    ],
    dnsPolicy: "ClusterFirst",
    restartPolicy: "Always",
    schedulerName: "default-scheduler",
    securityContext: {},
    terminationGracePeriodSeconds: 30,
  },
});

/** The stored template with `change` applied to it (a function that mutates the copy). */
/** The stored template's shape, as far as the tests change it. */
interface Stored {
  metadata: Rec & { labels: Rec };
  spec: Rec & { containers: (Rec & { ports?: Rec[] })[] };
}

function changed(change: (t: Stored) => void): Stored {
  const t = stored() as unknown as Stored;
  change(t);
  return t;
}

describe("templateDiff against what the API server really stored", () => {
  test.each(["deployment", "replicaSet", "statefulSetRevision", "daemonSetRevision"] as const)(
    "the rich manifest matches the %s's template",
    where => expect(templateDiff(recorded.manifest, recorded[where])).toEqual([]),
  );

  test("a second manifest (service account, security contexts, sidecar, envFrom, grpc probe, PVC/NFS/CSI volumes) matches the Deployment's template", () => {
    const more = JSON.parse(
      readFileSync(join(__dirname, "..", "fixtures", "pod-template-defaults", "more.json"), "utf8"),
    ) as Record<"manifest" | "deployment", Rec>;
    expect(templateDiff(more.manifest, more.deployment)).toEqual([]);
  });

  test("the small manifest matches its stored form (defaults, protocol, pull policy, pod-template-hash)", () => {
    expect(templateDiff(manifest(), stored())).toEqual([]);
  });
});

describe("templateDiff: what is a difference", () => {
  test.each<[string, (t: Stored) => void, string]>([
    [
      "an extra container",
      (t: Stored) => t.spec.containers.push({ name: "payment", image: "pay:1" }),
      "spec.containers: wanted [payment-service], got [payment-service, payment]",
    ],
    [
      "an extra init container",
      (t: Stored) => (t.spec.initContainers = [{ name: "init", image: "busybox:1" }]),
      "spec.initContainers: not in the manifest (got [init])",
    ],
    [
      "an extra volume",
      (t: Stored) => (t.spec.volumes = [{ name: "tmp", emptyDir: {} }]),
      "spec.volumes: not in the manifest (got [tmp])",
    ],
    [
      "an extra env var (named, its value not shown)",
      (t: Stored) => (t.spec.containers[0].env = [{ name: "DEBUG", value: "secret-ish" }]),
      "spec.containers[payment-service].env: not in the manifest (got [DEBUG])",
    ],
    [
      "an extra port",
      (t: Stored) => t.spec.containers[0].ports!.push({ containerPort: 9090, protocol: "TCP" }),
      "spec.containers[payment-service].ports: wanted [8080], got [8080, 9090]",
    ],
    [
      "an extra label",
      (t: Stored) => (t.metadata.labels.injected = "true"),
      "metadata.labels: not in the manifest: injected",
    ],
    [
      "an extra label with an empty value",
      (t: Stored) => (t.metadata.labels.injected = ""),
      "metadata.labels: not in the manifest: injected",
    ],
    [
      "an extra annotation",
      (t: Stored) => (t.metadata.annotations = { "kubectl.kubernetes.io/restartedAt": "now" }),
      "metadata.annotations: not in the manifest (got {kubectl.kubernetes.io/restartedAt})",
    ],
    [
      "a changed image",
      (t: Stored) => (t.spec.containers[0].image = "registry/pay:2.0.1"),
      'spec.containers[payment-service].image: wanted "registry/pay:2.0.0", got "registry/pay:2.0.1"',
    ],
    [
      "a changed port protocol the manifest leaves to the default",
      (t: Stored) => (t.spec.containers[0].ports![0].protocol = "UDP"),
      'spec.containers[payment-service].ports[8080].protocol: not in the manifest (got "UDP")',
    ],
    [
      "a defaulted field holding something else (dnsPolicy)",
      (t: Stored) => (t.spec.dnsPolicy = "Default"),
      'spec.dnsPolicy: not in the manifest (got "Default")',
    ],
    [
      "a pull policy other than the image's default",
      (t: Stored) => (t.spec.containers[0].imagePullPolicy = "Always"),
      'spec.containers[payment-service].imagePullPolicy: not in the manifest (got "Always")',
    ],
    [
      "a grace period other than 30",
      (t: Stored) => (t.spec.terminationGracePeriodSeconds = 0),
      "spec.terminationGracePeriodSeconds: not in the manifest (got 0)",
    ],
    [
      "a field nothing defaults (hostNetwork)",
      (t: Stored) => (t.spec.hostNetwork = true),
      "spec.hostNetwork: not in the manifest (got true)",
    ],
    [
      "a container removed",
      (t: Stored) => t.spec.containers.pop(),
      "spec.containers: wanted [payment-service], missing",
    ],
  ])("%s", (_, change, message) => {
    expect(templateDiff(manifest(), changed(change))).toEqual([message]);
  });

  test("env values, annotation values and commands are never shown, other values are", () => {
    const m = manifest();
    const c = (m.spec as { containers: Rec[] }).containers[0];
    Object.assign(c, { env: [{ name: "TOKEN", value: "s3cret" }], command: ["run", "--key=s3cret"] });
    (m.metadata as Rec).annotations = { note: "s3cret" };
    const s = changed(t => {
      Object.assign(t.spec.containers[0], {
        env: [{ name: "TOKEN", value: "other" }],
        command: ["run", "--key=other"],
      });
      t.metadata.annotations = { note: "other" };
    });
    const diff = templateDiff(m, s);
    expect(diff).toEqual([
      "metadata.annotations.note: wanted (value not shown), got (value not shown)",
      "spec.containers[payment-service].env[TOKEN].value: wanted (value not shown), got (value not shown)",
      "spec.containers[payment-service].command[1]: wanted (value not shown), got (value not shown)",
    ]);
    expect(diff.join()).not.toMatch(/s3cret|other/);
  });

  test("a label the manifest sets is required, with its value", () => {
    const m = manifest();
    (m.metadata as { labels: Rec }).labels.version = "v2";
    expect(templateDiff(m, stored())).toEqual(["metadata.labels: missing version"]);
    expect(
      templateDiff(
        m,
        changed(t => (t.metadata.labels.version = "v3")),
      ),
    ).toEqual(['metadata.labels.version: wanted "v2", got "v3"']);
  });

  test("serviceAccount and serviceAccountName: the API server copies one into the other", () => {
    const m = manifest();
    (m.spec as Rec).serviceAccountName = "payments";
    expect(
      templateDiff(
        m,
        changed(t => Object.assign(t.spec, { serviceAccountName: "payments", serviceAccount: "payments" })),
      ),
    ).toEqual([]);
    expect(
      templateDiff(
        m,
        changed(t => Object.assign(t.spec, { serviceAccountName: "payments", serviceAccount: "other" })),
      ),
    ).toEqual(['spec.serviceAccount: not in the manifest (got "other")']);
    expect(
      templateDiff(
        manifest(),
        changed(t => (t.spec.serviceAccount = "payments")),
      ),
    ).toEqual(['spec.serviceAccount: not in the manifest (got "payments")']);
  });

  test("a field the manifest sets to its default must hold it", () => {
    const m = manifest();
    (m.spec as Rec).dnsPolicy = "ClusterFirst";
    expect(templateDiff(m, stored())).toEqual([]);
    expect(
      templateDiff(
        m,
        changed(t => (t.spec.dnsPolicy = "None")),
      ),
    ).toEqual(['spec.dnsPolicy: wanted "ClusterFirst", got "None"']);
  });

  test("resources compare by quantity, and an extra limit is a difference", () => {
    const m = manifest();
    const c = (m.spec as { containers: Rec[] }).containers[0];
    c.resources = { limits: { cpu: "0.5", memory: "1024Mi" }, requests: { cpu: 0.25 } };
    const limits: Rec = { cpu: "500m", memory: "1Gi" };
    const s = changed(t => (t.spec.containers[0].resources = { limits, requests: { cpu: "250m" } }));
    expect(templateDiff(m, s)).toEqual([]);
    limits["nvidia.com/gpu"] = "1";
    expect(templateDiff(m, s)).toEqual([
      "spec.containers[payment-service].resources.limits: not in the manifest: nvidia.com/gpu",
    ]);
  });

  test("empty and false values the API server drops are no difference", () => {
    const m = manifest();
    Object.assign(m.spec as Rec, { hostNetwork: false, nodeSelector: {}, volumes: [], serviceAccountName: "" });
    Object.assign((m.spec as { containers: Rec[] }).containers[0], { args: [], env: null });
    expect(templateDiff(m, stored())).toEqual([]);
  });

  test("messages are bounded: three differences, then a count", () => {
    const s = changed(t => {
      t.spec.dnsPolicy = "Default";
      t.spec.hostNetwork = true;
      t.spec.hostPID = true;
      t.metadata.labels.x = "y";
    });
    const diff = templateDiff(manifest(), s);
    expect(diff).toHaveLength(4);
    expect(describeDiff(diff)).toMatch(/^[^;]+; [^;]+; [^;]+; and 1 more$/);
  });
});

describe("templateDiff properties", () => {
  const json = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<unknown>;
  const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);

  test("every template matches itself", () => {
    fc.assert(fc.property(json, t => expect(templateDiff(t, structuredClone(t))).toEqual([])));
    fc.assert(
      fc.property(fc.dictionary(name, json), fc.dictionary(name, fc.string()), (spec, labels) =>
        expect(templateDiff({ metadata: { labels }, spec }, { metadata: { labels }, spec })).toEqual([]),
      ),
    );
  });

  test("an extra container, env var, volume or label on the stored side is always a difference", () => {
    fc.assert(
      fc.property(name, fc.constantFrom("container", "env", "volume", "label"), (n, what) => {
        const s = stored() as { metadata: { labels: Rec }; spec: { containers: Rec[]; volumes?: Rec[] } };
        if (what === "container") s.spec.containers.push({ name: `x-${n}`, image: "i:1" });
        if (what === "env") s.spec.containers[0].env = [{ name: n, value: "" }];
        if (what === "volume") s.spec.volumes = [{ name: n, emptyDir: {} }];
        if (what === "label") s.metadata.labels[`x-${n}`] = "";
        expect(templateDiff(manifest(), s)).not.toEqual([]);
      }),
    );
  });

  test("changing any value the manifest sets is a difference", () => {
    const leaves: [string[], unknown][] = [];
    const walk = (v: unknown, path: string[]): void => {
      if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
      else leaves.push([path, v]);
    };
    walk(recorded.manifest, []);
    expect(leaves.length).toBeGreaterThan(50);
    const meaningful = leaves.filter(([, v]) => v !== "" && v !== false && v !== 0);
    fc.assert(
      fc.property(
        fc.constantFrom(...meaningful),
        fc.oneof(fc.string({ minLength: 1 }), fc.integer({ min: 1 })),
        ([path], next) => {
          const s = structuredClone(recorded.deployment);
          let node = s as Record<string, unknown>;
          // The stored template lists what the manifest lists in the same order, so the manifest's path exists there.
          for (const k of path.slice(0, -1)) node = node[k] as Record<string, unknown>;
          const last = path[path.length - 1];
          fc.pre(!sameQuantity(node[last], next) && node[last] !== next);
          node[last] = next;
          expect(templateDiff(recorded.manifest, s)).not.toEqual([]);
        },
      ),
    );
  });
});

describe("quantities and pull policies", () => {
  test.each([
    ["0.5", "500m", true],
    ["1024Mi", "1Gi", true],
    [1, "1000m", true],
    ["1e3", "1k", true],
    ["1.5Gi", "1536Mi", true],
    ["100m", "0.1", true],
    ["1", "1Ki", false],
    ["1M", "1Mi", false],
    ["abc", "abc", false],
  ])("%p and %p: same amount %p", (a, b, same) => expect(sameQuantity(a, b)).toBe(same));

  test("a huge exponent is not a quantity (no runaway BigInt)", () => {
    expect(parseQuantity("1e999999")).toBeUndefined();
  });

  test.each([
    ["nginx", "Always"],
    ["nginx:latest", "Always"],
    ["nginx:1.27", "IfNotPresent"],
    ["registry:5000/team/app", "Always"],
    ["registry:5000/team/app:2", "IfNotPresent"],
    ["app@sha256:abc", "IfNotPresent"],
  ])("%s → %s", (image, policy) => expect(defaultPullPolicy(image)).toBe(policy));
});
