// patch: RFC 6902 from an agent, protected paths refused, size bounded, and a write that only
// applies to the object version the broker judged.
import fc from "fast-check";
import { PatchAction } from "../../../capabilities/patch";
import { canonicalChange } from "../../../capabilities/change";
import { valueDigest } from "../../../capabilities/lib/change-digest";
import { parsePatch, pointerSegments, touchesPodTemplate } from "../../../capabilities/patch/ops";
import { isStaleWrite, KubeError } from "../../../capabilities/lib/kube";
import { config, ctx, FakeKube, NS, spec, workload } from "./fake";

const cfg = config({ ATB_MAX_PATCH_BYTES: "512" });
const v = (patch: unknown) => PatchAction.validate(spec("patch", "Deployment", { patch }), cfg);

describe("patch validate()", () => {
  test.each([
    [[{ op: "replace", path: "/spec/replicas", value: 3 }], []],
    [JSON.stringify([{ op: "add", path: "/metadata/labels/tier", value: "fe" }]), []],
    [[{ op: "add", path: "/metadata/annotations/note", value: "x" }], []],
    [
      [{ op: "replace", path: "/metadata/name", value: "x" }],
      ['spec.payload.patch[0].path: "/metadata/name" touches /metadata/name, which a patch may not change'],
    ],
    [
      [{ op: "remove", path: "/metadata" }],
      ['spec.payload.patch[0].path: "/metadata" touches /metadata/name, which a patch may not change'],
    ],
    [
      [{ op: "replace", path: "", value: {} }],
      ['spec.payload.patch[0].path: "" touches /apiVersion, which a patch may not change'],
    ],
    [
      [{ op: "replace", path: "/status/replicas", value: 1 }],
      ['spec.payload.patch[0].path: "/status/replicas" touches /status, which a patch may not change'],
    ],
    [
      [{ op: "add", path: "/metadata/ownerReferences/-", value: {} }],
      [expect.stringContaining("touches /metadata/ownerReferences")],
    ],
    [[{ op: "remove", path: "/metadata/managedFields" }], [expect.stringContaining("touches /metadata/managedFields")]],
    [
      [{ op: "test", path: "/metadata/resourceVersion", value: "1" }],
      [expect.stringContaining("touches /metadata/resourceVersion")],
    ],
    [[{ op: "replace", path: "/metadata/uid", value: "u" }], [expect.stringContaining("touches /metadata/uid")]],
    [
      [{ op: "replace", path: "/metadata/namespace", value: "u" }],
      [expect.stringContaining("touches /metadata/namespace")],
    ],
    [
      [{ op: "remove", path: "/metadata/annotations" }],
      [expect.stringContaining("touches /metadata/annotations/atb.siemens.com/applied-by-task")],
    ],
    [
      [{ op: "remove", path: "/metadata/annotations/atb.siemens.com~1applied-tasks" }],
      [expect.stringContaining("touches /metadata/annotations/atb.siemens.com/applied-tasks")],
    ],
    [
      [{ op: "move", from: "/metadata/name", path: "/metadata/labels/n" }],
      ['spec.payload.patch[0].from: "/metadata/name" touches /metadata/name, which a patch may not change'],
    ],
    [
      [{ op: "replace", path: "/spec/x~2y", value: 1 }],
      ['spec.payload.patch[0].path: "/spec/x~2y" is not a valid JSON pointer (RFC 6901)'],
    ],
    [
      [{ op: "jump", path: "/spec" }],
      ["spec.payload.patch[0]: Operation `op` property is not one of operations defined in RFC-6902"],
    ],
    [
      [{ op: "add", path: "/spec/x" }],
      [
        "spec.payload.patch[0]: Operation `value` property is not present (applicable in `add`, `replace` and `test` operations)",
      ],
    ],
    [[{ op: "add", path: "spec", value: 1 }], ['spec.payload.patch[0]: Operation `path` property must start with "/"']],
    [[], ["spec.payload.patch: must contain at least one operation"]],
    [undefined, ["spec.payload.patch: is required (an array of RFC 6902 operations, or a JSON string of one)"]],
    [{ op: "add" }, ["spec.payload.patch: must be an array of RFC 6902 operations, or a JSON string of one"]],
    ["[{", ["spec.payload.patch: the string is not valid JSON (expected a JSON array of RFC 6902 operations)"]],
  ])("%p → %p", (patch, errors) => {
    expect(v(patch)).toEqual(errors);
  });

  test("patches above ATB_MAX_PATCH_BYTES are refused, as an array or as a string", () => {
    const big = [{ op: "add", path: "/metadata/labels/x", value: "y".repeat(600) }];
    expect(v(big)).toEqual([
      expect.stringMatching(/^spec\.payload\.patch: must be at most 512 bytes \(ATB_MAX_PATCH_BYTES; got \d+\)$/),
    ]);
    expect(v(JSON.stringify(big))).toEqual([expect.stringMatching(/at most 512 bytes/)]);
  });

  test("unknown payload fields are named", () => {
    expect(
      PatchAction.validate(spec("patch", "Service", { patch: [{ op: "remove", path: "/spec/x" }], type: "json" }), cfg),
    ).toEqual(["spec.payload.type: not a field of action patch (allowed: patch, reason)"]);
  });

  test("no path that reaches a protected field passes, however it is spelled", () => {
    const protectedPaths = [
      "/metadata/name",
      "/metadata/namespace",
      "/metadata/uid",
      "/status",
      "/metadata/ownerReferences/0",
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...protectedPaths),
        fc.constantFrom("add", "replace", "remove", "test"),
        (path, op) => {
          expect(v([{ op, path, value: 1 }]).length).toBeGreaterThan(0);
        },
      ),
    );
    expect(pointerSegments("/metadata/annotations/a~1b~0c")).toEqual(["metadata", "annotations", "a/b~c"]);
  });
});

describe("patch plan()", () => {
  test("JSON patch: the observed generation as precondition, marker, then the agent's operations; no retry on conflict", async () => {
    const target = workload("Deployment");
    const ops = [{ op: "replace", path: "/spec/replicas", value: 4 }];
    const plan = await PatchAction.plan(
      ctx(spec("patch", "Deployment", { patch: JSON.stringify(ops) }), new FakeKube(), cfg),
      target,
    );
    const body = plan.write.body as { op: string; path: string }[];
    expect(plan.write.patchType).toBe("json");
    expect(body[0]).toEqual({ op: "test", path: "/metadata/generation", value: target.metadata.generation });
    expect(body[1]).toMatchObject({ op: "add", path: "/metadata/annotations" });
    expect(body.slice(-1)).toEqual(ops);
    expect(plan.retryOnConflict).toBe(false);
    expect(plan.context).toMatchObject({
      resourceVersion: "42",
      touchesPodTemplate: false,
      current: { "/spec/replicas": 2 },
    });
  });

  test("an operation on a path that does not exist fails before the broker is asked", async () => {
    const ops = [{ op: "replace", path: "/spec/nothing/here", value: 1 }];
    await expect(
      PatchAction.plan(ctx(spec("patch", "Deployment", { patch: ops }), new FakeKube(), cfg), workload("Deployment")),
    ).rejects.toMatchObject({
      kind: "TASK_INVALID",
      message: "spec.payload.patch[0]: Cannot perform the operation at a path that does not exist",
    });
  });

  test("ConfigMap values reach the broker as digests only; other values as given", async () => {
    const target = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "web", namespace: NS, resourceVersion: "5", annotations: {} },
      data: { a: "old" },
    };
    const ops = [
      { op: "replace", path: "/data/a", value: "s3cret" },
      { op: "add", path: "/metadata/labels", value: { x: "y" } },
    ];
    const plan = await PatchAction.plan(ctx(spec("patch", "ConfigMap", { patch: ops }), new FakeKube(), cfg), target);
    expect(JSON.stringify([plan.params, plan.context])).not.toMatch(/s3cret|old/);
    expect(plan.params).toEqual({
      patch: [
        { op: "replace", path: "/data/a", value: valueDigest("s3cret") },
        { op: "add", path: "/metadata/labels", value: { x: "y" } },
      ],
    });
    // The same change whether the payload carries the operations as an array or a JSON string.
    expect(plan.params).toEqual(canonicalChange(spec("patch", "ConfigMap", { patch: JSON.stringify(ops) })));
    expect(plan.context.bytes).toBe(Buffer.byteLength(JSON.stringify(ops)));
  });
});

describe("patch verify and helpers", () => {
  test("touchesPodTemplate: template paths, ancestors and moves, never tests", () => {
    expect(
      touchesPodTemplate(
        parsePatch([{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "x" }], 1e5).ops,
      ),
    ).toBe(true);
    expect(touchesPodTemplate(parsePatch([{ op: "replace", path: "/spec", value: {} }], 1e5).ops)).toBe(true);
    expect(touchesPodTemplate(parsePatch([{ op: "test", path: "/spec/template", value: {} }], 1e5).ops)).toBe(false);
    expect(touchesPodTemplate(parsePatch([{ op: "replace", path: "/spec/replicas", value: 1 }], 1e5).ops)).toBe(false);
  });

  test("done after the write unless the pod template changed", async () => {
    const kube = new FakeKube();
    const d = workload("Deployment");
    d.metadata.generation = 5;
    kube.put("Deployment", d);
    const replicas = spec("patch", "Deployment", { patch: [{ op: "replace", path: "/spec/replicas", value: 1 }] });
    expect((await PatchAction.verify(ctx(replicas, kube))).state).toBe("done");
    const image = spec("patch", "Deployment", {
      patch: [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: "x" }],
    });
    expect((await PatchAction.verify(ctx(image, kube))).state).toBe("waiting");
  });

  test("isStaleWrite recognises conflicts and JSON patches that no longer apply", () => {
    expect(
      isStaleWrite(new KubeError(422, "Invalid", "the server rejected our request due to an error in our request")),
    ).toBe(true);
    expect(isStaleWrite(new KubeError(409, "Conflict", "the object has been modified"))).toBe(true);
    expect(isStaleWrite(new KubeError(422, "Invalid", "spec.replicas: Invalid value"))).toBe(false);
  });
});
