// GIVEN tasks whose fields an attacker filled with megabytes of token-shaped or escape-heavy text
// (reason, image, container, manifest, ConfigMap keys and values, JSON Patch values) WHEN the
// pipeline runs each to its end THEN every one ends (Failed or Denied or Completed, never stuck),
// nothing hostile is echoed whole into status, and each run costs at most a small multiple of a
// benign task's run measured in the same process. The bound is a ratio, never a time: the old
// redaction pattern took seconds for 60 KB of "eyJ", so a quadratic step anywhere fails this.
import fc from "fast-check";
import { DeployAction } from "../../../capabilities/deploy";
import { PatchAction } from "../../../capabilities/patch";
import type { KubeObject } from "../../../capabilities/lib/action";
import { configMap, deployment, drive, submit, task, world, type World } from "./harness";

const MB = 1 << 20;

/** Hostile text of about `bytes` characters built from a repeated unit. */
const UNITS = ["eyJ", "eyJa.", "eyJhbGciOi.", "\\u00", "eyJ\\", "a.eyJ.", "eyJ-"];
const hostile = fc
  .constantFrom(...UNITS)
  .chain(unit => fc.integer({ min: MB / 4, max: MB }).map(bytes => unit.repeat(Math.ceil(bytes / unit.length))));

type Make = (w: World, text: string) => string;

const cases: [string, Make][] = [
  ["payload.reason", (w, t) => submit(w, "t", { payload: { replicas: 3, reason: t } })],
  ["deploy image", (w, t) => submit(w, "t", { action: "deploy", payload: { image: t } })],
  ["deploy container", (w, t) => submit(w, "t", { action: "deploy", payload: { image: "nginx:1", container: t } })],
  [
    "deploy manifest container name",
    (w, t) =>
      submit(w, "t", {
        action: "deploy",
        payload: {
          manifest: {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name: "web", namespace: "shop" },
            spec: { template: { spec: { containers: [{ name: t, image: "nginx:1" }] } } },
          },
        },
      }),
  ],
  [
    "update-config key",
    (w, t) =>
      submit(w, "t", { action: "update-config", kind: "ConfigMap", target: "flags", payload: { data: { [t]: "1" } } }),
  ],
  [
    "update-config value",
    (w, t) =>
      submit(w, "t", { action: "update-config", kind: "ConfigMap", target: "flags", payload: { data: { k: t } } }),
  ],
  [
    "JSON Patch value",
    (w, t) =>
      submit(w, "t", { action: "patch2", payload: { patch: [{ op: "add", path: "/metadata/labels/x", value: t }] } }),
  ],
  ["agentId", (w, t) => submit(w, "t", { payload: { replicas: 3 }, agentId: `spiffe://x/${t}` })],
];

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

/**
 * The API server's validation as far as this test needs it, quoting the offending value whole as
 * the real one does ("Invalid value: ..."): the hostile text then flows into the dry run's error,
 * the task's failure message, its Event and the log line.
 */
function validate(obj: KubeObject): string | undefined {
  const containers = (obj.spec?.template as { spec?: { containers?: { name?: string }[] } } | undefined)?.spec
    ?.containers;
  for (const [i, c] of (containers ?? []).entries()) {
    if (typeof c.name === "string" && !LABEL.test(c.name))
      return `spec.template.spec.containers[${i}].name: Invalid value: "${c.name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'`;
  }
  for (const [k, v] of Object.entries(obj.data ?? {})) {
    if (!CONFIG_KEY.test(k))
      return `data[${k}]: Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`;
    if (v.includes("\\u00")) return `data[${k}]: Invalid value: "${v}": escapes are not allowed here (test rule)`;
  }
  return undefined;
}

function fresh(): World {
  const w = world({ actions: { deploy: DeployAction, patch2: PatchAction }, kube: { autoRollout: true, validate } });
  deployment(w);
  configMap(w);
  return w;
}

async function timed(make: Make, text: string): Promise<{ ms: number; w: World; key: string }> {
  const w = fresh();
  const key = make(w, text);
  const t0 = process.hrtime.bigint();
  await drive(w, key);
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, w, key };
}

let base = 0;

beforeAll(async () => {
  const benign = async () =>
    (await timed((w, t) => submit(w, "t", { payload: { replicas: 3, reason: t } }), "scale up")).ms;
  await benign(); // warm up
  base = Math.max(await benign(), await benign(), await benign());
});

/** One run: it ends, nothing hostile is echoed whole into status, and it costs a bounded multiple. */
async function check(field: string, make: Make, text: string): Promise<void> {
  const { ms, w, key } = await timed(make, text);
  const t = task(w, key);
  expect({ field, terminal: ["Completed", "Denied", "Failed"].includes(t.status?.phase ?? "") }).toEqual({
    field,
    terminal: true,
  });
  // status.message 4000 and at most three conditions of 8000 characters each.
  expect(JSON.stringify(t.status).length).toBeLessThan(30_000);
  const bound = base * 50 + 500;
  const cost = { field, unit: text.slice(0, 12), ms: Math.round(ms), bound: Math.round(bound) };
  expect({ ...cost, within: ms < bound }).toEqual({ ...cost, within: true });
}

test.each(cases)(
  "128 KB and a megabyte of each hostile pattern in %s: ends, not echoed whole, bounded cost",
  async (field, make) => {
    // 128 KB first: a quadratic step shows there in seconds, before a megabyte would take minutes.
    for (const size of [MB / 8, MB])
      for (const unit of UNITS) await check(field, make, unit.repeat(Math.ceil(size / unit.length)));
  },
);

test("property: hostile fields of any size from 256 KB to 1 MB", async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...cases), hostile, async ([field, make], text) => check(field, make, text)),
    { numRuns: 12 },
  );
});
