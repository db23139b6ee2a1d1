// Deep JSON at admission: the beforeHook cuts what Pepr could not copy, and validation names the field.
import { compare } from "fast-json-patch";
import { PeprMutateRequest } from "pepr";
import {
  ADMISSION_MAX_DEPTH,
  boundAdmissionDepth,
  cutDeep,
  depthErrors,
  TOO_DEEP,
} from "../../capabilities/lib/admission-depth";

const nested = (depth: number): unknown => {
  let v: unknown = "x";
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { d: v };
  return v;
};
const depthOf = (v: unknown): number => {
  let d = 0;
  for (let x = v; x !== null && typeof x === "object"; d++) x = Array.isArray(x) ? x[0] : (x as { d: unknown }).d;
  return d;
};
const request = (payload: unknown) => ({
  uid: "u",
  operation: "CREATE",
  kind: { group: "atb.siemens.com", version: "v1alpha1", kind: "AgentTask" },
  object: {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name: "t", namespace: "ns" },
    spec: { action: "deploy", payload },
  },
});

test("without the cut, Pepr's copy of a request nested 20000 levels deep overflows the stack (what the hook prevents)", () => {
  expect(() => new PeprMutateRequest(request({ manifest: nested(20_000) }) as never)).toThrow(RangeError);
});

test("with the cut, Pepr copies and compares it, and its patch carries only what the mutation set", () => {
  const req = request({ manifest: nested(20_000) });
  boundAdmissionDepth(req);
  const wrapped = new PeprMutateRequest(req as never);
  wrapped.SetLabel("atb.siemens.com/action", "deploy");
  const patch = compare(req.object, wrapped.Raw);
  expect(patch).toEqual([{ op: "add", path: "/metadata/labels", value: { "atb.siemens.com/action": "deploy" } }]);
  // spec.payload.manifest starts at level 3 below the object's root.
  expect(depthOf((req.object.spec.payload as { manifest: unknown }).manifest)).toBe(ADMISSION_MAX_DEPTH - 3);
  expect(depthErrors(wrapped.Raw)).toEqual([
    `spec.payload.manifest[0].d[0]…: nested deeper than ${ADMISSION_MAX_DEPTH} levels`,
  ]);
});

test("values at most ADMISSION_MAX_DEPTH levels deep are untouched; one level more is cut", () => {
  const fits = { a: nested(ADMISSION_MAX_DEPTH - 1) };
  const copy = structuredClone(fits);
  expect(cutDeep(fits)).toBe(0);
  expect(fits).toEqual(copy);
  const over = { a: nested(ADMISSION_MAX_DEPTH) };
  expect(cutDeep(over)).toBe(1);
  expect(depthErrors(over)).toEqual([`a[0].d[0].d[0]…: nested deeper than ${ADMISSION_MAX_DEPTH} levels`]);
});

test("every deep branch is cut (oldObject too); one refusal per top-level field, in a stable order", () => {
  const req = {
    object: { spec: { b: nested(500), a: [nested(300), nested(400)] }, metadata: { x: nested(200) } },
    oldObject: { spec: nested(1000) },
  };
  boundAdmissionDepth(req);
  expect(JSON.stringify(req).length).toBeLessThan(5000);
  expect(depthErrors(req.object).map(e => e.split(":")[0].split(/[.[]/).slice(0, 2).join("."))).toEqual([
    "metadata.x",
    "spec.a",
    "spec.b",
  ]);
  expect(depthErrors(req.oldObject)).toHaveLength(1);
});

test("a shallow object, primitives and a missing request are left alone; no refusal", () => {
  for (const v of [undefined, null, 3, "s", { spec: { payload: { replicas: 2 } } }]) {
    expect(() => boundAdmissionDepth({ object: v })).not.toThrow();
    expect(depthErrors(v)).toEqual([]);
  }
  expect(() => boundAdmissionDepth(undefined)).not.toThrow();
  expect(depthErrors({ s: TOO_DEEP })).toEqual([`s: nested deeper than ${ADMISSION_MAX_DEPTH} levels`]);
});
