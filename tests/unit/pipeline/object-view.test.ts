// What the policy sees of an object (context.before / context.after): identity, labels,
// annotations, owners, finalizers and spec; never a ConfigMap's or Secret's values, status,
// managedFields or kubectl's last-applied copy.
import { createHash } from "node:crypto";
import { objectView } from "../../../capabilities/lib/pipeline/object-view";

const sha = (s: string | Buffer): string => `sha256:${createHash("sha256").update(s).digest("hex")}`;

describe("objectView", () => {
  test("a Secret: values become the digest of their decoded bytes; nothing of the value is left", () => {
    const secret = {
      apiVersion: "v1",
      kind: "Secret",
      type: "Opaque",
      metadata: {
        name: "db",
        namespace: "shop",
        resourceVersion: "7",
        managedFields: [{ manager: "kubectl" }],
        annotations: {
          "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}',
          a: "1",
        },
      },
      data: { password: Buffer.from("hunter2").toString("base64") },
      stringData: { token: "s3cr3t" },
    };
    const view = objectView(secret);
    expect(view).toEqual({
      kind: "Secret",
      type: "Opaque",
      metadata: { name: "db", namespace: "shop", labels: {}, annotations: { a: "1" } },
      data: { password: sha("hunter2") },
      stringData: { token: sha("s3cr3t") },
    });
    const text = JSON.stringify(view);
    for (const leaked of ["hunter2", "aHVudGVyMg", "s3cr3t", "managedFields", "resourceVersion"])
      expect(text).not.toContain(leaked);
  });

  test("a ConfigMap's values are digested as UTF-8 text; binaryData as base64", () => {
    const view = objectView({
      kind: "ConfigMap",
      metadata: { name: "flags" },
      data: { on: "true" },
      binaryData: { blob: Buffer.from([1, 2]).toString("base64") },
    });
    expect(view).toMatchObject({ data: { on: sha("true") }, binaryData: { blob: sha(Buffer.from([1, 2])) } });
  });

  test("a Deployment keeps its spec, owners and finalizers; status goes", () => {
    const spec = { replicas: 2, template: { spec: { hostPID: true, containers: [{ name: "a", image: "x" }] } } };
    const view = objectView(
      {
        metadata: {
          name: "web",
          namespace: "shop",
          ownerReferences: [{ uid: "u" }],
          finalizers: ["f"],
          labels: { a: "b" },
        },
        spec,
        status: { readyReplicas: 2 },
      },
      "Deployment",
    );
    expect(view).toEqual({
      kind: "Deployment",
      metadata: {
        name: "web",
        namespace: "shop",
        labels: { a: "b" },
        annotations: {},
        ownerReferences: [{ uid: "u" }],
        finalizers: ["f"],
      },
      spec,
    });
  });

  test("no object, no view", () => {
    expect(objectView(undefined)).toBeNull();
    expect(objectView(null)).toBeNull();
  });
});
