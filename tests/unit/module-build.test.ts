// tools/module-build.ts's check of a built module: it carries Pepr, kubernetes-fluent-client and
// client-node itself, and requires nothing else the Pepr controller image lacks. The build itself
// runs in tests/e2e/manifests.test.ts and every e2e file that builds (tests/helpers/module-build.ts).
import { checkModule, imageProvided, requiredPackages } from "../../tools/module-build";

describe("requiredPackages", () => {
  test("lists packages, by name, without builtins or relative paths", () => {
    const code = [
      'var a=require("node:fs"),b=require("crypto"),c=require("fs/promises");',
      'const d=require("express"),e=require( "@scope/pkg/sub/path" ),f=require(\'ramda/src/clone\');',
      'require("./local");require("../up");var g=require("pepr");',
    ].join("\n");
    expect(requiredPackages(code)).toEqual(["@scope/pkg", "express", "pepr", "ramda"]);
  });
});

describe("checkModule", () => {
  const provided = ["express", "pino", "prom-client"];

  test("a self-contained module requiring what the image provides, or optional add-ons, passes", () => {
    expect(
      checkModule('require("express");require("pino");require("bufferutil");require("node:http")', provided),
    ).toEqual([]);
  });

  test("a module from plain `pepr build` (loads the framework from node_modules) is named as such", () => {
    const problems = checkModule('require("pepr");require("kubernetes-fluent-client");require("express")', provided);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/loads kubernetes-fluent-client, pepr from node_modules.*npm run build/);
  });

  test("a package the controller image does not provide is named", () => {
    expect(checkModule('require("left-pad");require("express")', provided)).toEqual([
      "the module requires left-pad, which the Pepr controller image does not provide",
    ]);
  });

  test("the image provides Pepr's own dependencies, kubernetes-fluent-client among them", () => {
    expect(imageProvided()).toEqual(expect.arrayContaining(["express", "prom-client", "kubernetes-fluent-client"]));
  });
});
