// Watcher shards and the open label (capabilities/lib/shard.ts, the agenttask capability's
// admission, the watch binding): the hash is stable and spreads, the mutating webhook stamps both
// labels over what the user sent and puts a dropped one back, validation refuses any other change
// naming the field, the watch selects open tasks (and a shard's own), and the configuration
// refuses a shard outside ATB_SHARDS.
import "../helpers/pepr-build-mode";
import { PeprMutateRequest, PeprValidateRequest, type Capability } from "pepr";
import { agentTaskCapability } from "../../capabilities/agent-task";
import { LABEL_MESSAGES, labelErrors, stampedLabels } from "../../capabilities/agent-task/admission";
import { applyPeprSettings, parseConfig } from "../../capabilities/lib/config";
import {
  isOrphan,
  isShardValue,
  owns,
  ownedSelectors,
  shardKey,
  shardOf,
  shardOfKey,
  watchLabels,
} from "../../capabilities/lib/shard";
import { actions } from "../../capabilities/registry";
import { LABEL_SHARD, OPEN_FIELD, type AgentTask } from "../../crds/agenttask";

const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
const USER = { username: "system:serviceaccount:shop:agent-a", groups: ["system:authenticated"] };

function task(o: { name?: string; target?: string; labels?: Record<string, string>; phase?: string } = {}): AgentTask {
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name: o.name ?? "t", namespace: "shop", ...(o.labels ? { labels: o.labels } : {}) },
    spec: {
      agentId: "spiffe://atb.example.com/ns/shop/sa/agent-a",
      poaToken: TOKEN,
      action: "scale",
      target: { kind: "Deployment", name: o.target ?? "web", namespace: "shop" },
      payload: { replicas: 1 },
    },
    ...(o.phase ? { status: { phase: o.phase } } : {}),
  } as unknown as AgentTask;
}

describe("the hash", () => {
  test("is of the target (kind/namespace/name), so all tasks of one target land on one shard", () => {
    expect(shardKey(task())).toBe("Deployment/shop/web");
    for (const shards of [2, 3, 7, 16])
      expect(shardOf(task({ name: "a" }), shards)).toBe(shardOf(task({ name: "b" }), shards));
  });

  test("is stable: the same values on every run, process and version (SHA-256, first 32 bits, modulo)", () => {
    // Frozen: a change here moves existing tasks' new siblings to other shards than their target's.
    expect(
      ["web", "api", "payment-service", "feature-flags", "x"].map(n => shardOfKey(`Deployment/shop/${n}`, 2)),
    ).toEqual([1, 0, 0, 0, 0]);
    expect(shardOfKey("Deployment/shop/web", 7)).toBe(1);
    expect(shardOfKey("ConfigMap/prod/feature-flags", 16)).toBe(14);
    expect(shardOf(task(), 1)).toBe("0");
  });

  test.each([2, 3, 8, 16])("spreads 20000 targets evenly over %i shards (each within 5%% of its share)", shards => {
    const counts = new Array<number>(shards).fill(0);
    for (let i = 0; i < 20_000; i++) counts[shardOfKey(`Deployment/ns-${i % 37}/app-${i}`, shards)]++;
    const share = 20_000 / shards;
    for (const c of counts) expect(Math.abs(c - share) / share).toBeLessThan(0.05);
  });

  test("a task whose target is not three strings hashes its own namespace/name, without throwing", () => {
    const bad = { metadata: { namespace: "shop", name: "t" }, spec: { target: { kind: 7 } } } as unknown as AgentTask;
    expect(shardKey(bad)).toBe("task/shop/t");
    expect(shardKey(undefined)).toBe("task//");
    expect(isShardValue(shardOf(bad, 5), 5)).toBe(true);
  });

  test("label values: canonical decimals below the shard count only", () => {
    expect(["0", "1", "15"].every(v => isShardValue(v, 16))).toBe(true);
    for (const v of ["16", "01", "-1", "1.0", " 1", "", "a", undefined, 1]) expect(isShardValue(v, 16)).toBe(false);
  });
});

describe("which tasks a watcher owns", () => {
  const labelled = (shard?: string) => task({ labels: shard === undefined ? {} : { [LABEL_SHARD]: shard } });

  test("unsharded: every task, listed in one go, watched without a label selector", () => {
    const s = { shards: 3 };
    expect([labelled("2"), labelled(), labelled("9")].every(t => owns(t, s))).toBe(true);
    expect(ownedSelectors(s)).toEqual([undefined]);
    expect(watchLabels(s)).toEqual([]);
    expect(isOrphan(labelled(), s)).toBe(false);
  });

  test("shard i: its label; shard 0 also the tasks without a valid one (listed with notin)", () => {
    expect(owns(labelled("1"), { shards: 3, shard: 1 })).toBe(true);
    expect(owns(labelled("2"), { shards: 3, shard: 1 })).toBe(false);
    expect(owns(labelled(), { shards: 3, shard: 1 })).toBe(false);
    for (const t of [labelled(), labelled("3"), labelled("x")]) {
      expect(owns(t, { shards: 3, shard: 0 })).toBe(true);
      expect(isOrphan(t, { shards: 3, shard: 0 })).toBe(true);
    }
    expect(isOrphan(labelled("0"), { shards: 3, shard: 0 })).toBe(false);
    expect(ownedSelectors({ shards: 3, shard: 1 })).toEqual([`${LABEL_SHARD}=1`]);
    expect(ownedSelectors({ shards: 3, shard: 0 })).toEqual([`${LABEL_SHARD}=0`, `${LABEL_SHARD} notin (0,1,2)`]);
    expect(watchLabels({ shards: 3, shard: 2 })).toEqual([[LABEL_SHARD, "2"]]);
  });
});

describe("configuration", () => {
  test("ATB_SHARDS defaults to 1 and ATB_SHARD to none (serve every task)", () => {
    expect(parseConfig({}).shards).toBe(1);
    expect(parseConfig({}).shard).toBeUndefined();
    expect(parseConfig({ ATB_SHARDS: "4", ATB_SHARD: "3" })).toMatchObject({ shards: 4, shard: 3 });
    expect(parseConfig({ ATB_SHARDS: "4", ATB_SHARD: "" }).shard).toBeUndefined();
  });

  test.each([
    [{ ATB_SHARDS: "0" }, /^ATB_SHARDS: must be between 1 and 256/],
    [{ ATB_SHARDS: "257" }, /^ATB_SHARDS: must be between 1 and 256/],
    [{ ATB_SHARDS: "2", ATB_SHARD: "2" }, /^ATB_SHARD: must be a whole number from 0 to ATB_SHARDS-1 \(ATB_SHARDS=2\)/],
    [{ ATB_SHARD: "1" }, /^ATB_SHARD: .*\(ATB_SHARDS=1\)/],
    [{ ATB_SHARDS: "2", ATB_SHARD: "-1" }, /^ATB_SHARD: must be a whole number/],
  ])("%p is refused naming the variable", (env, message) => {
    expect(() => parseConfig(env)).toThrow(message);
  });

  test("Pepr's reconcile strategy: one queue per kind unless set; another valid value is kept; a typo refused", () => {
    expect(parseConfig({}).reconcileStrategy).toBe("kind");
    expect(parseConfig({ PEPR_RECONCILE_STRATEGY: "global" }).reconcileStrategy).toBe("global");
    expect(() => parseConfig({ PEPR_RECONCILE_STRATEGY: "perTask" })).toThrow(
      /^PEPR_RECONCILE_STRATEGY: must be one of kind, kindNs, kindNsName, global/,
    );
    const env: NodeJS.ProcessEnv = {};
    applyPeprSettings(parseConfig({}), env);
    expect(env.PEPR_RECONCILE_STRATEGY).toBe("kind");
  });

  test("the built module's env sets it too, for both Deployments", () => {
    const pkg = require("../../package.json") as { pepr: { env: Record<string, string> } };
    expect(pkg.pepr.env.PEPR_RECONCILE_STRATEGY).toBe("kind");
  });
});

describe("the admission rules for the labels (pure)", () => {
  const cfg = { shards: 4 };
  const want = shardOf(task(), 4);
  const other = String((Number(want) + 1) % 4);

  test("at creation: the target's shard, whatever the user sent", () => {
    expect(stampedLabels("CREATE", undefined, task({ labels: { [LABEL_SHARD]: other } }), cfg)).toEqual({
      [LABEL_SHARD]: want,
    });
    expect(labelErrors("CREATE", undefined, task({ labels: { [LABEL_SHARD]: want } }), cfg)).toEqual([]);
    expect(labelErrors("CREATE", undefined, task({ labels: { [LABEL_SHARD]: other } }), cfg)).toEqual([
      LABEL_MESSAGES.shardSet(4),
    ]);
    expect(labelErrors("CREATE", undefined, task({ labels: {} }), cfg)).toEqual([LABEL_MESSAGES.shardSet(4)]);
  });

  test("on update: the shard never changes, appears or goes; a dropped one is put back as stored", () => {
    const stored = task({ labels: { [LABEL_SHARD]: want } });
    expect(labelErrors("UPDATE", stored, stored, cfg)).toEqual([]);
    expect(labelErrors("UPDATE", stored, task({ labels: { [LABEL_SHARD]: other } }), cfg)).toEqual([
      LABEL_MESSAGES.shardChanged,
    ]);
    expect(labelErrors("UPDATE", stored, task({ labels: {} }), cfg)).toEqual([LABEL_MESSAGES.shardChanged]);
    const unlabelled = task({ labels: {} });
    expect(labelErrors("UPDATE", unlabelled, task({ labels: { [LABEL_SHARD]: want } }), cfg)).toEqual([
      LABEL_MESSAGES.shardChanged,
    ]);
    expect(stampedLabels("UPDATE", stored, task({ labels: {} }), cfg)).toEqual({ [LABEL_SHARD]: want });
    expect(stampedLabels("UPDATE", unlabelled, task({ labels: {} }), cfg)).toEqual({});
  });

  test("the messages name the field and the rule", () => {
    expect(LABEL_MESSAGES.shardChanged).toBe(
      "metadata.labels[atb.siemens.com/shard]: set by the admission webhook at creation; it never changes",
    );
    expect(LABEL_MESSAGES.shardSet(4)).toBe(
      "metadata.labels[atb.siemens.com/shard]: set by the admission webhook from the task's target (ATB_SHARDS=4); remove it",
    );
  });
});

describe("the agenttask capability's webhooks and watch", () => {
  // Watch bindings are registered: Pepr was loaded in build mode (tests/helpers/pepr-build-mode.ts).
  const capability = (env: Record<string, string>): Capability =>
    agentTaskCapability({ actions, config: parseConfig(env) });

  const review = (operation: "CREATE" | "UPDATE", object: AgentTask, oldObject?: AgentTask) =>
    ({
      uid: "r-1",
      kind: { group: "atb.siemens.com", version: "v1alpha1", kind: "AgentTask" },
      resource: { group: "atb.siemens.com", version: "v1alpha1", resource: "agenttasks" },
      name: "t",
      namespace: "shop",
      operation,
      userInfo: USER,
      object,
      ...(oldObject ? { oldObject } : {}),
    }) as never;

  async function admit(cap: Capability, operation: "CREATE" | "UPDATE", object: AgentTask, old?: AgentTask) {
    const m = new PeprMutateRequest<AgentTask>(review(operation, object, old));
    for (const b of cap.bindings) if (b.mutateCallback) await b.mutateCallback(m as never);
    const v = new PeprValidateRequest<AgentTask>(review(operation, m.Raw, old));
    const answers = [];
    for (const b of cap.bindings) if (b.validateCallback) answers.push(await b.validateCallback(v as never));
    return { labels: m.Raw.metadata?.labels ?? {}, answers: answers as { allowed: boolean; statusMessage?: string }[] };
  }

  test("GIVEN a creation with labels of the user's own THEN the shard is stamped over them and the task is admitted", async () => {
    const cap = capability({ ATB_SHARDS: "4" });
    const sent = task({ labels: { [LABEL_SHARD]: "3", team: "a" } });
    const { labels, answers } = await admit(cap, "CREATE", sent);
    expect(labels).toMatchObject({ [LABEL_SHARD]: shardOf(sent, 4), team: "a" });
    expect(answers).toEqual([{ allowed: true }]);
  });

  test("GIVEN ATB_SHARDS unset THEN every task gets shard 0", async () => {
    const { labels } = await admit(capability({}), "CREATE", task({ target: "api" }));
    expect(labels[LABEL_SHARD]).toBe("0");
  });

  test("GIVEN an update that changes the shard THEN refused naming the field; one that drops labels gets them back", async () => {
    const cap = capability({ ATB_SHARDS: "4" });
    const want = shardOf(task(), 4);
    const stored = task({ labels: { [LABEL_SHARD]: want }, phase: "Pending" });
    const moved = await admit(cap, "UPDATE", task({ labels: { [LABEL_SHARD]: want === "0" ? "1" : "0" } }), stored);
    expect(moved.answers[0]).toMatchObject({ allowed: false, statusCode: 422 });
    expect(moved.answers[0].statusMessage).toContain(LABEL_MESSAGES.shardChanged);
    const dropped = await admit(cap, "UPDATE", task({ labels: { team: "b" } }), stored);
    expect(dropped.labels).toEqual({ [LABEL_SHARD]: want, team: "b", ...agentAndAction() });
    expect(dropped.answers).toEqual([{ allowed: true }]);
  });

  const reconcileFilters = (cap: Capability) =>
    (
      cap.bindings as unknown as {
        isQueue?: boolean;
        kind: { kind: string };
        filters: { labels: object; fields?: object };
      }[]
    )
      .filter(b => b.isQueue && b.kind.kind === "AgentTask")
      .map(b => ({ labels: b.filters.labels, fields: b.filters.fields }));

  test("the watch selects open tasks on the API server (no status.finishedAt), and a shard's own only", () => {
    expect(reconcileFilters(capability({}))).toEqual([{ labels: {}, fields: { [OPEN_FIELD]: "" } }]);
    expect(reconcileFilters(capability({ ATB_SHARDS: "3", ATB_SHARD: "2" }))).toEqual([
      { labels: { [LABEL_SHARD]: "2" }, fields: { [OPEN_FIELD]: "" } },
    ]);
  });

  test("only the tasks' Reconcile binding gets the field selector (not the approvals' watch, not admission)", () => {
    const all = capability({}).bindings as unknown as { filters: { fields?: object }; kind: { kind: string } }[];
    expect(all.filter(b => b.filters.fields).map(b => b.kind.kind)).toEqual(["AgentTask"]);
  });
});

/** The labels the capability stamps from spec.action and spec.agentId. */
const agentAndAction = () => ({ "atb.siemens.com/action": "scale", "atb.siemens.com/agent": "agent-a" });

describe("N watcher Deployments from one module (tools/manifests.ts --shards)", () => {
  const { parseArgs, shardedWatchers, SHARD_LABEL } =
    require("../../tools/manifests") as typeof import("../../tools/manifests");
  const watcher = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: "pepr-atb-operator-watcher",
      namespace: "pepr-system",
      labels: { app: "w", "pepr.dev/controller": "watcher" },
    },
    spec: {
      selector: { matchLabels: { app: "w", "pepr.dev/controller": "watcher" } },
      template: {
        metadata: { labels: { app: "w", "pepr.dev/controller": "watcher" } },
        spec: {
          containers: [
            {
              name: "watcher",
              env: [
                { name: "ATB_SHARD", value: "9" },
                { name: "LOG_LEVEL", value: "info" },
              ],
            },
          ],
        },
      },
    },
  };

  test("one Deployment per shard: its own name, shard env and a selector of its own on top of Pepr's labels", () => {
    expect(SHARD_LABEL).toBe(LABEL_SHARD);
    const out = shardedWatchers(watcher, 3) as unknown as (typeof watcher)[];
    expect(out.map(d => d.metadata.name)).toEqual([0, 1, 2].map(i => `pepr-atb-operator-watcher-${i}`));
    out.forEach((d, i) => {
      const own = { app: "w", "pepr.dev/controller": "watcher", [LABEL_SHARD]: String(i) };
      expect(d.spec.selector.matchLabels).toEqual(own);
      expect(d.spec.template.metadata.labels).toEqual(own);
      expect(d.spec.template.spec.containers[0].env).toEqual([
        { name: "LOG_LEVEL", value: "info" },
        { name: "ATB_SHARDS", value: "3" },
        { name: "ATB_SHARD", value: String(i) },
      ]);
    });
    expect(watcher.metadata.name).toBe("pepr-atb-operator-watcher"); // the input is not changed
  });

  test("the command line", () => {
    expect(parseArgs(["--shards", "4", "--out", "x.yaml"])).toEqual({ shards: 4, out: "x.yaml" });
    expect(parseArgs(["--dist", "/tmp/build"])).toEqual({ dist: "/tmp/build" });
    expect(parseArgs([])).toEqual({});
    expect(() => parseArgs(["--shards"])).toThrow(/usage: \[--shards N\] \[--dist DIR\] \[--out FILE\]/);
    expect(() => parseArgs(["--shards", "two"])).toThrow(/--shards/);
  });
});
