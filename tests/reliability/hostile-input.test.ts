// GIVEN the whole operator and a namespace of workloads, config and secrets, WHEN fast-check
// generates hostile AgentTasks (random and malformed specs, huge payloads, deep JSON, unicode and
// control characters in names and data, JSON patches aimed at protected paths, targets in other
// namespaces, tokens for other targets/actions/agents, expired, future, long-lived, forged,
// replayed and garbage tokens) and submits each through kubectl (real admission),
// THEN each is rejected at admission with a message naming a field, or ends Denied/Failed with a
// message (Completed only with a valid token for exactly that change); the operator never exits
// or stalls (it completes a good task at the end, /readyz 200); and no object other than the
// target of an allowed task changes (resourceVersions before/after, and the API server's audit log).
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { mintPoa } from "../../broker/poa";
import { taskChangeDigest } from "../../capabilities/change";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually } from "../helpers/kube";
import { operatorWrites } from "../helpers/audit";
import { AGENT, APPROVERS, executed, Harness, sleep, TIER, type Action } from "../helpers/pipeline-tasks";
import { checkNoLeaks, operatorAlive, probe, size, summary } from "../helpers/reliability";
import { ACTION_KINDS, ACTIONS } from "../../capabilities/registry";
import { TARGET_KINDS } from "../../crds/agenttask";

const NS = "rel-hostile";
const MALLORY = "spiffe://atb.example.com/agent/mallory";
const OTHER = "rel-hostile-other";
const RUNS = Number(process.env.ATB_HOSTILE_RUNS ?? size(60, 500));
const SEED = process.env.ATB_HOSTILE_SEED ? Number(process.env.ATB_HOSTILE_SEED) : Date.now() % 2 ** 31;
const TERMINAL = ["Completed", "Denied", "Failed"];
const cluster = e2eCluster();
const h = new Harness(cluster, NS, "stack-rel-hostile");
let signingKey = "";
const ROGUE = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
const SECRET_VALUE = `s3cr3t-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;

const KINDS: readonly string[] = TARGET_KINDS;
const KINDS_OF: Readonly<Record<Action, readonly string[]>> = ACTION_KINDS;
/** The object of each kind in both namespaces (the good task's "canary" is never generated). */
const NAME_OF: Record<string, string> = {
  Deployment: "web",
  StatefulSet: "db",
  DaemonSet: "agent",
  ReplicaSet: "rs",
  ConfigMap: "config",
  Secret: "creds",
  Service: "svc",
};
const TOKENS = [
  "valid",
  "no-approval",
  "other-target",
  "other-action",
  "other-agent",
  "other-namespace",
  "expired",
  "future",
  "long-lived",
  "forged",
  "alg-none",
  "replayed",
  "garbage-jws",
  "not-jws",
  "huge",
] as const;
type TokenKind = (typeof TOKENS)[number];

interface Sample {
  name: string | null;
  action: string;
  kind: string;
  target: string;
  targetNs: string;
  agentId: string;
  payload: unknown;
  token: TokenKind;
  extraSpec: Record<string, unknown> | null;
  labels: Record<string, string> | null;
}

// ---- generators -------------------------------------------------------------------------------
const control = fc.string({
  unit: fc.integer({ min: 0, max: 31 }).map(c => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 6,
});
const hostile: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.tuple(fc.constantFrom("web", "config", "a"), control).map(([a, b]) => a + b),
  fc.constantFrom(
    "",
    " ",
    "WEB",
    "wéb",
    "web\u0000",
    "web\n",
    "../../etc/passwd",
    "web;rm -rf /",
    "${jndi:ldap://x}",
    "{{.Values}}",
    "🙂",
    "\u202Eevil",
    "a".repeat(300),
    "x".repeat(64),
  ),
);
const deepValue = (depth: number): unknown => {
  let v: unknown = "x";
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { d: v };
  return v;
};
/** Deep JSON that fast-check reports by its depth (printing thousands of levels overflows its stack). */
class Deep {
  constructor(readonly depth: number) {}
  toJSON(): unknown {
    return deepValue(this.depth);
  }
  [fc.toStringMethod](): string {
    return `Deep(${this.depth})`;
  }
}
const deep = (depth: number): unknown => new Deep(depth);
const depthArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 10, max: 200 }) },
  { weight: 1, arbitrary: fc.integer({ min: 500, max: 3000 }) },
);
const huge = fc.integer({ min: 70_000, max: 600_000 }).map(n => "h".repeat(n));
const PROTECTED_PATHS = [
  "/metadata/name",
  "/metadata/namespace",
  "/metadata/uid",
  "/metadata/ownerReferences",
  "/metadata/managedFields",
  "/metadata/resourceVersion",
  "/metadata/annotations/atb.siemens.com~1applied-tasks",
  "/metadata/annotations/atb.siemens.com~1applied-by-task",
  "/metadata/annotations",
  "/metadata",
  "/status",
  "/status/replicas",
  "/kind",
  "/apiVersion",
  "",
  "/",
];
const patchOp = fc.oneof(
  fc.record({
    op: fc.constantFrom("add", "replace", "remove", "copy", "move"),
    path: fc.constantFrom(...PROTECTED_PATHS),
    value: fc.jsonValue({ maxDepth: 2 }),
    from: fc.constantFrom("/metadata/labels", "/spec", "/metadata/uid"),
  }),
  fc.record({
    op: fc.constantFrom("add", "replace"),
    path: fc.constantFrom(
      "/metadata/labels/evil",
      "/spec/replicas",
      "/spec/template/spec/containers/0/image",
      "/data/key",
    ),
    value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), hostile),
  }),
  fc.record({ op: hostile, path: hostile }),
  depthArb.map(d => ({ op: "add", path: "/metadata/labels/deep", value: deep(d) })),
  huge.map(v => ({ op: "add", path: "/metadata/annotations/big", value: v })),
);

const safeKey = fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/);

function payloadFor(action: string): fc.Arbitrary<unknown> {
  const common = [
    fc.constant(undefined),
    fc.jsonValue({ maxDepth: 3 }),
    depthArb.map(d => ({ nested: deep(d) })),
    fc.dictionary(hostile, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  ];
  /** Well-formed payloads (with hostile data where the action takes data). */
  const valid: Record<string, fc.Arbitrary<unknown>> = {
    scale: fc.integer({ min: 1, max: 4 }).map(replicas => ({ replicas })),
    "update-config": fc.dictionary(safeKey, hostile, { minKeys: 1, maxKeys: 3 }).map(data => ({ data })),
    patch: fc.constantFrom(
      { patch: [{ op: "add", path: "/metadata/labels/team", value: "blue" }] },
      { patch: JSON.stringify([{ op: "add", path: "/metadata/annotations/note", value: "hi" }]) },
    ),
    deploy: fc.constantFrom({ image: "nginx:1.28" }, { image: "nginx:1.27" }),
    rollback: fc.constantFrom({}, { revision: 1 }),
    restart: fc.constant({}),
  };
  const specific: Record<string, fc.Arbitrary<unknown>[]> = {
    scale: [
      fc
        .oneof(
          fc.integer({ min: -10, max: -1 }),
          fc.integer({ min: 100_001, max: 2 ** 31 }),
          fc.double(),
          hostile,
          fc.constant(null),
        )
        .map(replicas => ({ replicas })),
      fc
        .tuple(fc.integer({ min: 1, max: 4 }), hostile, fc.jsonValue({ maxDepth: 2 }))
        .map(([replicas, k, v]) => ({ replicas, [k || "x"]: v })),
    ],
    "update-config": [
      fc.dictionary(hostile, hostile, { minKeys: 1, maxKeys: 4 }).map(data => ({ data })),
      fc.tuple(fc.constantFrom("key", "big"), huge).map(([k, v]) => ({ data: { [k]: v } })),
      fc.array(hostile, { maxLength: 4 }).map(remove => ({ remove })),
      fc.dictionary(fc.constantFrom("a", "b"), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1 }).map(data => ({ data })),
    ],
    patch: [
      fc.array(patchOp, { minLength: 1, maxLength: 3 }).map(patch => ({ patch })),
      fc.array(patchOp, { minLength: 1, maxLength: 2 }).map(ops => ({ patch: JSON.stringify(ops) })),
      hostile.map(patch => ({ patch })),
    ],
    deploy: [
      hostile.map(image => ({ image })),
      fc.constant({ image: "evil.example.com/miner:latest" }),
      fc.record({ image: fc.constant("nginx:1.28"), container: hostile }),
      fc
        .record({
          name: fc.oneof(fc.constant("web"), hostile),
          namespace: fc.constantFrom(NS, OTHER, "kube-system"),
          kind: fc.constantFrom("Deployment", "ConfigMap", "ClusterRoleBinding"),
        })
        .map(m => ({
          manifest: {
            apiVersion: "apps/v1",
            kind: m.kind,
            metadata: { name: m.name, namespace: m.namespace },
            spec: { replicas: 1 },
          },
        })),
      depthArb.map(d => ({ manifest: deep(d) })),
    ],
    rollback: [
      fc
        .oneof(fc.integer({ min: -5, max: 5 }), fc.integer({ min: 6, max: 2 ** 40 }), hostile)
        .map(revision => ({ revision })),
    ],
    restart: [fc.record({ force: fc.boolean() })],
  };
  return fc.oneof(
    // Own keys only, here too: a hostile action string may be "constructor" or "__proto__".
    { weight: 4, arbitrary: Object.hasOwn(valid, action) ? valid[action]! : fc.constant({}) },
    { weight: 4, arbitrary: fc.oneof(...(Object.hasOwn(specific, action) ? specific[action]! : common)) },
    { weight: 1, arbitrary: fc.oneof(...common) },
  );
}

const sampleArb: fc.Arbitrary<Sample> = fc
  .oneof({ weight: 20, arbitrary: fc.constantFrom<string>(...ACTIONS) }, { weight: 1, arbitrary: hostile })
  .chain(action =>
    fc.record<Sample>({
      name: fc.oneof({ weight: 20, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: hostile }),
      action: fc.constant(action),
      kind: fc.oneof(
        // Own keys only: a hostile action such as "constructor" must not find Object's members.
        {
          weight: 16,
          arbitrary: fc.constantFrom(...(Object.hasOwn(KINDS_OF, action) ? KINDS_OF[action as Action] : KINDS)),
        },
        { weight: 2, arbitrary: fc.constantFrom(...KINDS) },
        { weight: 1, arbitrary: hostile },
      ),
      target: fc.oneof(
        { weight: 16, arbitrary: fc.constant("") },
        { weight: 1, arbitrary: fc.constantFrom("missing", "canary") },
        { weight: 1, arbitrary: hostile },
      ),
      targetNs: fc.oneof(
        { weight: 16, arbitrary: fc.constant(NS) },
        { weight: 1, arbitrary: fc.constantFrom(OTHER, "kube-system", "default") },
        { weight: 1, arbitrary: hostile },
      ),
      agentId: fc.oneof(
        { weight: 16, arbitrary: fc.constant(AGENT) },
        { weight: 1, arbitrary: fc.constant(MALLORY) },
        { weight: 1, arbitrary: hostile },
      ),
      payload: payloadFor(action),
      token: fc.oneof(
        { weight: 3, arbitrary: fc.constant<TokenKind>("valid") },
        { weight: 14, arbitrary: fc.constantFrom(...TOKENS) },
      ),
      extraSpec: fc.oneof(
        { weight: 20, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.dictionary(hostile, fc.jsonValue({ maxDepth: 1 }), { minKeys: 1, maxKeys: 2 }) },
      ),
      labels: fc.oneof(
        { weight: 20, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.dictionary(hostile, hostile, { minKeys: 1, maxKeys: 2 }) },
      ),
    }),
  );

// ---- tokens -----------------------------------------------------------------------------------
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const replayPool: { token: string; action: Action; kind: string; target: string; payload: unknown }[] = [];

/** The digest of the sample's change, when its payload has one: what a token for exactly this
 * change binds (con.change_sha256). A rollback's needs the cluster's history: none here. */
function changeOf(action: Action, kind: string, payload: unknown): string | undefined {
  try {
    return taskChangeDigest({ action, target: { kind }, payload: payload as Record<string, unknown> });
  } catch {
    return undefined;
  }
}

async function tokenFor(s: Sample): Promise<string> {
  const action = (ACTIONS as string[]).includes(s.action) ? (s.action as Action) : "scale";
  const target = { kind: KINDS.includes(s.kind) ? s.kind : "Deployment", namespace: s.targetNs, name: s.target };
  const approvers = APPROVERS[TIER[action]];
  const changeSha256 = changeOf(action, target.kind, s.payload);
  const base = { agent: AGENT, action, target, approvers, maxReplicas: 10, ttlSeconds: 300, changeSha256 };
  const now = Math.floor(Date.now() / 1000);
  const mint = (o: Partial<typeof base> & { issuedAt?: number }) => mintPoa({ key: signingKey, ...base, ...o });
  const random = (n: number) =>
    Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256))).toString("base64url");
  switch (s.token) {
    case "valid":
      return mint({});
    case "no-approval":
      return mint({ approvers: [] });
    case "other-target":
      return mint({ target: { ...target, name: "canary" } });
    case "other-action":
      return mint({ action: action === "scale" ? "restart" : "scale" });
    case "other-agent":
      return mint({ agent: MALLORY });
    case "other-namespace":
      return mint({ target: { ...target, namespace: OTHER } });
    case "expired":
      return mint({ issuedAt: now - 400 });
    case "future":
      return mint({ issuedAt: now + 3_600 });
    case "long-lived":
      return mint({ ttlSeconds: 3_600 });
    case "forged":
      return mintPoa({ ...base, key: ROGUE });
    case "alg-none":
      return `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: AGENT, act: `k8s.${target.kind}.${action}`, exp: now + 300, iat: now, jti: random(8), con: target })}.${random(4)}`;
    case "garbage-jws":
      return `${random(24)}.${random(32)}.${random(48)}`;
    case "not-jws":
      return `not a token ${random(6)} \u0000 🙂`;
    case "huge":
      return `${"a".repeat(17_000)}.b.c`;
    case "replayed":
      return replayPool[Math.floor(Math.random() * replayPool.length)].token;
  }
}

// ---- the namespace's objects and their snapshot -----------------------------------------------
interface Listed {
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    ownerReferences?: { uid: string }[];
  };
}

function objects(): Listed[] {
  const out: Listed[] = [];
  for (const ns of [NS, OTHER]) {
    const list = JSON.parse(
      h.kube.run([
        "get",
        "deployments,statefulsets,daemonsets,replicasets,configmaps,secrets,services",
        "-n",
        ns,
        "-o",
        "json",
      ]),
    ) as { items: Listed[] };
    out.push(...list.items);
  }
  return out;
}
const keyOf = (o: { kind: string; metadata: { namespace: string; name: string } }) =>
  `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;
const snapshot = () => new Map(objects().map(o => [keyOf(o), o.metadata.resourceVersion]));

async function quietSnapshot(): Promise<Map<string, string>> {
  let last = snapshot();
  for (let i = 0; i < 60; i++) {
    await sleep(2_000);
    const now = snapshot();
    if (JSON.stringify([...now]) === JSON.stringify([...last])) return now;
    last = now;
  }
  throw new Error("the namespaces never became quiet");
}

function fixtures(ns: string): object[] {
  const d = (kind: "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet", name: string) => {
    const o = h.workload(kind, name, "nginx:1.27") as { metadata: { namespace: string } };
    o.metadata.namespace = ns;
    return o;
  };
  return [
    d("Deployment", "web"),
    d("Deployment", "canary"),
    d("StatefulSet", "db"),
    d("DaemonSet", "agent"),
    d("ReplicaSet", "rs"),
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "config", namespace: ns },
      data: { mode: "safe", key: "v" },
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "creds", namespace: ns },
      stringData: { password: SECRET_VALUE },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "svc", namespace: ns },
      spec: { selector: { app: "web" }, ports: [{ port: 80 }] },
    },
  ];
}

beforeAll(async () => {
  await h.start({ ATB_ROLLOUT_TIMEOUT_SECONDS: "90", ATB_TASK_DEADLINE_SECONDS: "600" });
  signingKey = readFileSync(h.stack.material.poaPrivateKey, "utf8");
  h.kube.namespace(OTHER);
  h.secrets.push(SECRET_VALUE);
  for (const ns of [NS, OTHER])
    h.kube.run(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: fixtures(ns) }));
  for (const name of ["web", "canary", "db", "agent"]) {
    const kind = name === "db" ? "StatefulSet" : name === "agent" ? "DaemonSet" : "Deployment";
    await h.rolledOut(kind, name);
  }
  // A task that succeeds, so its token can be replayed by hostile tasks.
  const token = await h.token("scale", "Deployment", "web");
  h.create(
    h.task("seed-scale", { action: "scale", kind: "Deployment", target: "web", payload: { replicas: 3 } }, token),
  );
  expect((await h.terminal("seed-scale")).status?.phase).toBe("Completed");
  replayPool.push({ token, action: "scale", kind: "Deployment", target: "web", payload: { replicas: 3 } });
});

afterAll(async () => h.stop());

/** String values made unique and recorded as secrets. */
function secretValues(data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (typeof v !== "string") {
      out[k] = v;
      continue;
    }
    out[k] = `${v}~sv-${randomBytes(9).toString("base64url")}`;
    h.secrets.push(out[k] as string);
  }
  return out;
}

/** An admission message that names the field it refuses (or the object's name for name rules). */
const NAMES_A_FIELD = /\b(spec|metadata)(\.[A-Za-z][\w-]*|\[[^\]]*\])*\b|strict decoding error: unknown field "[^"]+"/;

test(`hostile AgentTasks (${RUNS} fast-check runs) are rejected or end Denied/Failed, and change nothing`, async () => {
  console.log(`[reliability] hostile input: ${RUNS} runs, seed ${SEED} (ATB_HOSTILE_SEED=${SEED} replays them)`);
  const before = await quietSnapshot();
  // Writes are counted from here: the beforeAll's seed task legitimately scaled "web".
  const since = Date.now() - 1_000;
  const admitted: { name: string; sample: Sample }[] = [];
  const rejected: Record<string, number> = {};
  const tokens: Record<string, number> = {};
  let i = 0;

  await fc.assert(
    fc.asyncProperty(sampleArb, async s => {
      i++;
      const name = s.name === null ? `h-${i}` : `${s.name}-${i}`;
      if (s.token === "replayed") Object.assign(s, { ...replayPool[0], targetNs: NS, token: "replayed" });
      const target = s.target || NAME_OF[s.kind] || "web";
      const sample = { ...s, target };
      const token = await tokenFor(sample);
      if (token.length > 20 && !["not-jws", "huge", "replayed"].includes(s.token)) h.secrets.push(token);
      tokens[s.token] = (tokens[s.token] ?? 0) + 1;
      // Values an update-config may write into the Secret are Secret values too: each gets a
      // unique suffix (the generators reuse strings that also occur as keys and names) and joins
      // the secrets no surface may show.
      const data = (s.payload as { data?: unknown } | undefined)?.data;
      if (s.kind === "Secret" && data && typeof data === "object" && !Array.isArray(data))
        s.payload = { ...(s.payload as object), data: secretValues(data as Record<string, unknown>) };
      const spec: Record<string, unknown> = {
        agentId: s.agentId,
        poaToken: token,
        action: s.action,
        target: { kind: s.kind, name: target, namespace: s.targetNs },
        ...(s.payload === undefined ? {} : { payload: s.payload }),
        ...(s.extraSpec ?? {}),
      };
      const obj = {
        apiVersion: "atb.siemens.com/v1alpha1",
        kind: "AgentTask",
        metadata: { name, namespace: NS, ...(s.labels ? { labels: s.labels } : {}) },
        spec,
      };
      const r = h.kube.create(obj);
      if (r.ok) {
        const created = JSON.parse(r.stdout) as { metadata: { name: string } };
        admitted.push({ name: created.metadata.name, sample });
      } else {
        const msg = r.stderr.replace(/eyJ[\w.-]+/g, "[token]").slice(0, 400);
        if (!NAMES_A_FIELD.test(r.stderr)) throw new Error(`rejected without naming a field: ${msg}`);
        const field = (r.stderr.match(NAMES_A_FIELD)?.[0] ?? "other").replace(/\[\d+\]/g, "[]").slice(0, 40);
        rejected[field] = (rejected[field] ?? 0) + 1;
      }
      if (!operatorAlive(h.stack))
        throw new Error(`the operator exited after task ${name}:\n${h.stack.operator.logs().slice(-2000)}`);
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );

  // Every admitted task ends Denied or Failed with a message; Completed (or applied at all) only
  // with a valid token for exactly that change, and only after the broker allowed it.
  expect(admitted.length).toBeGreaterThan(0);
  expect(Object.keys(rejected).length).toBeGreaterThan(0);
  const names = new Set(admitted.map(a => a.name));
  const done = await eventually("every admitted hostile task terminal", 600_000, () => {
    if (!operatorAlive(h.stack)) throw new Error("the operator exited");
    const mine = h.tasks().filter(t => names.has(t.metadata.name));
    return mine.length === names.size && mine.every(t => TERMINAL.includes(t.status?.phase ?? "")) ? mine : undefined;
  });
  const byName = new Map(admitted.map(a => [a.name, a.sample]));
  const phases: Record<string, number> = {};
  const reasons: Record<string, number> = {};
  const allowedTargets = new Set<string>();
  for (const t of done) {
    const s = byName.get(t.metadata.name)!;
    const phase = t.status!.phase!;
    phases[phase] = (phases[phase] ?? 0) + 1;
    const reason =
      t.status?.atbResult?.reason ?? t.status?.conditions?.find(c => c.type === "Succeeded")?.reason ?? "?";
    reasons[`${phase}:${reason}`] = (reasons[`${phase}:${reason}`] ?? 0) + 1;
    const shown = { task: t.metadata.name, token: s.token, action: s.action, kind: s.kind, phase };
    expect({ ...shown, hasMessage: (t.status?.message ?? "").length > 0 }).toEqual({ ...shown, hasMessage: true });
    if (phase === "Denied")
      expect({ ...shown, reason: typeof t.status?.atbResult?.reason }).toEqual({ ...shown, reason: "string" });
    if (phase === "Completed" || executed(t)) {
      // Applied only with a token bound to exactly this change and agent (a token minted for
      // "mallory" is bound when the task also says it comes from mallory): approved as its tier
      // demands, or without approvers when the broker judged it LOW (which needs none).
      const atb = t.status?.atbResult;
      const signer = s.token === "other-agent" ? MALLORY : AGENT;
      const bound =
        s.agentId === signer &&
        (s.token === "valid" || s.token === "other-agent" || (s.token === "no-approval" && atb?.riskTier === "LOW"));
      expect({ ...shown, bound, allowed: atb?.allowed, ns: s.targetNs }).toEqual({
        ...shown,
        bound: true,
        allowed: true,
        ns: NS,
      });
      allowedTargets.add(`${t.spec.target.kind}/${t.spec.target.namespace}/${t.spec.target.name}`);
    }
  }

  // The operator still works: a good task completes, and it reports ready.
  const good = await h.run("good-at-the-end", {
    action: "scale",
    kind: "Deployment",
    target: "canary",
    payload: { replicas: 3 },
  });
  expect(good.status?.phase).toBe("Completed");
  allowedTargets.add(`Deployment/${NS}/canary`);
  expect(operatorAlive(h.stack)).toBe(true);
  expect((await probe(h.stack.metricsPort, "/readyz")).status).toBe(200);

  // Nothing but the targets of allowed tasks (and what their controllers own) changed.
  const after = objects();
  const allowedUids = new Set(after.filter(o => allowedTargets.has(keyOf(o))).map(o => o.metadata.uid));
  const changed: string[] = [];
  for (const o of after) {
    const k = keyOf(o);
    if (allowedTargets.has(k) || o.metadata.ownerReferences?.some(r => allowedUids.has(r.uid))) continue;
    if (before.get(k) !== o.metadata.resourceVersion) changed.push(`${k} ${before.has(k) ? "changed" : "appeared"}`);
  }
  for (const k of before.keys()) if (!after.some(o => keyOf(o) === k)) changed.push(`${k} disappeared`);
  expect(changed).toEqual([]);
  const RES: Record<string, string> = {
    deployments: "Deployment",
    statefulsets: "StatefulSet",
    daemonsets: "DaemonSet",
    replicasets: "ReplicaSet",
    configmaps: "ConfigMap",
    secrets: "Secret",
    services: "Service",
  };
  const writes = operatorWrites(
    cluster.dataDir,
    e =>
      [NS, OTHER].includes(e.objectRef?.namespace ?? "") &&
      !e.objectRef?.resource?.startsWith("agenttasks") &&
      Date.parse(e.requestReceivedTimestamp) >= since,
  );
  const stray = [...writes.keys()].filter(k => {
    const [res, path] = k.split(" ");
    const [ns, name] = path.split("/");
    return !allowedTargets.has(`${RES[res.split("/")[0]] ?? res}/${ns}/${name}`);
  });
  expect(stray).toEqual([]);

  const leaks = await checkNoLeaks(h);
  summary("hostile input", {
    runs: RUNS,
    seed: SEED,
    rejectedAtAdmission: Object.values(rejected).reduce((a, b) => a + b, 0),
    admitted: admitted.length,
    phases,
    tokenKinds: tokens,
    rejectedBy: rejected,
    outcomes: reasons,
    allowedTargets: [...allowedTargets],
    objectsCompared: before.size,
    strayWrites: stray.length,
    leakScan: leaks,
  });
}, 1_800_000);
