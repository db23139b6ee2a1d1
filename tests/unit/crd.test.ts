// The hand-written parts of the CRD YAML and the TypeScript constants next to it say the same
// thing. (The parts generated from the action registry are checked by registry.test.ts.)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import { CONDITION_TYPES, GROUP, KIND, PHASES, PLURAL, RISK_TIERS, TARGET_KINDS, VERSION } from "../../crds/agenttask";

type Schema = {
  properties?: Record<string, Schema>;
  enum?: string[];
  required?: string[];
  "x-kubernetes-validations"?: { rule: string }[];
};
const crd = load(readFileSync(join(__dirname, "..", "..", "crds", "agenttask.yaml"), "utf8")) as {
  metadata: { name: string };
  spec: {
    group: string;
    names: { kind: string; plural: string; shortNames: string[] };
    versions: {
      name: string;
      schema: { openAPIV3Schema: Schema };
      additionalPrinterColumns: { name: string; priority?: number }[];
    }[];
  };
};
const version = crd.spec.versions[0];
const root = version.schema.openAPIV3Schema;
const spec = root.properties!.spec;
const status = root.properties!.status;

describe("crds/agenttask.yaml and crds/agenttask.ts agree", () => {
  test("names", () => {
    expect(crd.metadata.name).toBe(`${PLURAL}.${GROUP}`);
    expect(crd.spec.group).toBe(GROUP);
    expect(version.name).toBe(VERSION);
    expect(crd.spec.names.kind).toBe(KIND);
    expect(crd.spec.names.plural).toBe(PLURAL);
    expect(crd.spec.names.shortNames).toEqual(["at", "atask"]);
  });

  test("enums", () => {
    expect(TARGET_KINDS).toEqual(expect.arrayContaining(spec.properties!.target.properties!.kind.enum!));
    expect(status.properties!.phase.enum).toEqual([...PHASES]);
    expect(status.properties!.atbResult.properties!.riskTier.enum).toEqual([...RISK_TIERS]);
    expect(CONDITION_TYPES).toEqual(["Authorized", "Executed", "Succeeded"]);
  });

  test("spec is immutable and printer columns are the seed's", () => {
    expect(spec["x-kubernetes-validations"]!.map(v => v.rule)).toContain("self == oldSelf");
    const visible = version.additionalPrinterColumns.filter(c => !c.priority).map(c => c.name.toUpperCase());
    expect(visible).toEqual(["ACTION", "TARGET", "PHASE", "RISK", "AGE"]);
  });
});
