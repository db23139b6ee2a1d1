// The change digest: RFC 8785 canonical JSON (the RFC's own example), sha256:<hex> of it, and a
// refusal of values that have no JSON form (they must never collapse into another change's digest).
import { createHash } from "node:crypto";
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import { canonicalJson, changeDigest, DIGEST_PATTERN, valueDigest } from "../../capabilities/lib/change-digest";

describe("canonicalJson (RFC 8785)", () => {
  test("the RFC's example (section 3.2.2) canonicalizes as the RFC prints it", () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    );
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  test("keys sort by UTF-16 code units (the RFC's section 3.2.3 example), at every depth", () => {
    const keys = ["\u20ac", "\r", "\ufb33", "1", "\ud83d\ude00", "\u0080", "\u00f6"];
    const obj = Object.fromEntries(keys.map((k, i) => [k, i]));
    // By code point U+1F600 would sort after U+FB33; by UTF-16 code units (0xD83D) it sorts before.
    const order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"];
    expect(Object.keys(JSON.parse(canonicalJson(obj)) as object)).toEqual(expect.arrayContaining(order));
    expect(
      [...canonicalJson(obj).matchAll(/"((?:[^"\\]|\\.)*)":/g)].map(m => JSON.parse(`"${m[1]}"`) as string),
    ).toEqual(order);
    expect(canonicalJson({ a: { b: 1, a: 2 } })).toBe('{"a":{"a":2,"b":1}}');
  });

  test.each([
    ["undefined", undefined],
    ["a nested undefined", { a: undefined }],
    ["NaN", { n: NaN }],
    ["Infinity", [Infinity]],
    ["a function", { f: () => 1 }],
    ["a Date", { d: new Date(0) }],
    ["a BigInt", { b: BigInt(1) }],
  ])("refuses %s", (_name, value) => {
    expect(() => canonicalJson(value)).toThrow(/has no JSON form/);
  });

  test("property: key order and whitespace never change the canonical form; it parses back to the same value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), v => {
        const shuffled = JSON.parse(JSON.stringify(v, null, 2)) as unknown;
        const c = canonicalJson(v);
        expect(canonicalJson(shuffled)).toBe(c);
        expect(JSON.parse(c)).toEqual(JSON.parse(JSON.stringify(v)));
      }),
    );
  });
});

test("objects of another realm (a vm context) are plain objects too; class instances are not", () => {
  const foreign = runInNewContext('({ b: [1, { c: "x" }], a: null })') as unknown;
  expect(canonicalJson(foreign)).toBe('{"a":null,"b":[1,{"c":"x"}]}');
  expect(canonicalJson(Object.assign(Object.create(null), { k: 1 }))).toBe('{"k":1}');
  class Box {
    k = 1;
  }
  expect(() => canonicalJson({ box: new Box() })).toThrow(/has no JSON form/);
  expect(() => canonicalJson({ m: new Map() })).toThrow(/has no JSON form/);
});

describe("changeDigest / valueDigest", () => {
  test("sha256:<hex> of the canonical JSON", () => {
    const d = changeDigest({ replicas: 5 });
    expect(d).toMatch(DIGEST_PATTERN);
    expect(d).toBe(`sha256:${createHash("sha256").update('{"replicas":5}').digest("hex")}`);
  });

  test("a value's digest is of its UTF-8 bytes", () => {
    expect(valueDigest("€")).toBe(
      `sha256:${createHash("sha256")
        .update(Buffer.from([0xe2, 0x82, 0xac]))
        .digest("hex")}`,
    );
  });

  test("different changes, different digests; same change in any key order, same digest", () => {
    expect(changeDigest({ replicas: 5 })).not.toBe(changeDigest({ replicas: 6 }));
    expect(changeDigest({ a: 1, b: [1, 2] })).toBe(changeDigest({ b: [1, 2], a: 1 }));
    expect(changeDigest([1, 2])).not.toBe(changeDigest([2, 1]));
  });
});
