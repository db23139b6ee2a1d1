// Pepr's own logger (pino, `Log` from pepr) never prints a token, an attestation or a payload
// value once capabilities/lib/pepr-log.ts is installed: GIVEN lines shaped as Pepr 1.1.4 writes
// them at debug (the admission request and response, a watched task) THEN the redactor leaves
// none of the secrets and keeps the rest; GIVEN Pepr's real Log instance writing into a captured
// stream THEN the secrets are there before the redaction is installed (so the check can fail)
// and gone after it, for children, later level changes, format arguments and errors too.
import fc from "fast-check";
import { Log } from "pepr";
import { REDACTED } from "../../capabilities/lib/logger";
import { redactPeprLine, redactPeprLogs } from "../../capabilities/lib/pepr-log";

const TOKEN = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzcGlmZmU6Ly94In0.c2lnbmF0dXJlLXRva2VuLXZhbHVl";
const ATTESTATION = "eyJhbGciOiJFZERTQSJ9.eyJhcHByb3ZlciI6ImFsaWNlIn0.YXR0ZXN0YXRpb24tc2lnbmF0dXJl";
/** A compact JWS whose header does not start with eyJ: found only by the field it is in. */
const ODD_TOKEN = "abc1234.def5678.ghi9012-odd-token-signature";
const VALUE = "postgres://admin:s3cr3t-value@db:5432/app";
const PATCH_VALUE = "patched-value-4711";
const SECRETS = [TOKEN, ATTESTATION, ODD_TOKEN, VALUE, PATCH_VALUE, "s3cr3t"];

function task(token = TOKEN) {
  const spec = {
    agentId: "spiffe://atb.example.com/agent/config-agent",
    poaToken: token,
    attestations: [ATTESTATION],
    action: "update-config",
    target: { kind: "ConfigMap", name: "feature-flags", namespace: "shop" },
    payload: { data: { DATABASE_URL: VALUE }, remove: ["OLD"], reason: "rotate" },
  };
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: {
      name: "rotate-db",
      namespace: "shop",
      uid: "8c4a6a0e-0000-4000-8000-000000000001",
      annotations: {
        "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({ kind: "AgentTask", spec }),
      },
    },
    spec,
  };
}

const patchTask = () => ({
  ...task(ODD_TOKEN),
  spec: {
    ...task(ODD_TOKEN).spec,
    action: "patch",
    payload: { patch: JSON.stringify([{ op: "replace", path: "/data/x", value: PATCH_VALUE }]) },
  },
});

const line = (o: object) => `${JSON.stringify({ level: 20, time: 1, pid: 1, hostname: "h", ...o })}\n`;

function leaks(text: string): string[] {
  return SECRETS.filter(s => text.includes(s));
}

describe("redactPeprLine on Pepr's own debug lines", () => {
  test("the admission request body (object and oldObject, with kubectl's last-applied annotation)", () => {
    const raw = line({
      uid: "req-1",
      namespace: "shop",
      name: "rotate-db",
      request: { uid: "req-1", operation: "UPDATE", object: task(), oldObject: patchTask() },
      msg: "Incoming request body",
    });
    expect(leaks(raw)).toEqual(SECRETS); // the line as Pepr writes it holds every secret
    const out = redactPeprLine(raw);
    expect(leaks(out)).toEqual([]);
    const o = JSON.parse(out) as { msg: string; request: { object: ReturnType<typeof task> } };
    expect(out.endsWith("}\n")).toBe(true);
    expect(o.msg).toBe("Incoming request body");
    expect(o.request.object.metadata.name).toBe("rotate-db");
    expect(o.request.object.spec).toMatchObject({
      action: "update-config",
      poaToken: REDACTED,
      attestations: REDACTED,
      target: { kind: "ConfigMap", name: "feature-flags", namespace: "shop" },
      payload: { data: REDACTED, remove: [REDACTED], reason: REDACTED },
    });
    const lastApplied = JSON.parse(
      o.request.object.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"],
    ) as { spec: { poaToken: string; target: object } };
    expect(lastApplied.spec.poaToken).toBe(REDACTED);
    expect(lastApplied.spec.target).toEqual({ kind: "ConfigMap", name: "feature-flags", namespace: "shop" });
  });

  test("the outgoing admission response: the base64 patch is shown as redacted JSON", () => {
    const ops = [
      { op: "add", path: "/metadata/labels/atb.siemens.com~1action", value: "update-config" },
      { op: "add", path: "/spec/poaToken", value: TOKEN },
      { op: "add", path: "/spec/payload", value: { data: { K: VALUE } } },
    ];
    const raw = line({
      kubeAdmissionResponse: {
        uid: "req-1",
        allowed: true,
        patchType: "JSONPatch",
        patch: Buffer.from(JSON.stringify(ops)).toString("base64"),
      },
      msg: "Outgoing response",
    });
    const out = redactPeprLine(raw);
    expect(leaks(out)).toEqual([]);
    const patch = (JSON.parse(out) as { kubeAdmissionResponse: { patch: { value: unknown }[] } }).kubeAdmissionResponse
      .patch;
    expect(patch[0].value).toBe("update-config");
    expect(patch[1].value).toBe(REDACTED);
    expect(patch[2].value).toEqual({ data: REDACTED });
  });

  test("a watched task at the top level, an error with a token, and a JSON message", () => {
    for (const raw of [
      line({ ...patchTask(), msg: "Watch event MODIFIED received" }),
      line({
        err: { type: "Error", message: `Unauthorized: Bearer ${TOKEN}`, stack: `Error: ${TOKEN}\n at x` },
        msg: `failed ${TOKEN}`,
      }),
      line({ msg: JSON.stringify(task()) }),
      line({ msg: "x", obj: task() }),
    ]) {
      expect(leaks(raw).length).toBeGreaterThan(0);
      expect(leaks(redactPeprLine(raw))).toEqual([]);
    }
  });

  test("what is no secret stays: level, time, names, numbers, messages", () => {
    const raw = line({
      queue: "AgentTask/shop",
      item: { name: "t", namespace: "shop", resourceVersion: "42" },
      spec: { action: "scale", payload: { replicas: 5 } },
      msg: "Reconciling",
    });
    expect(JSON.parse(redactPeprLine(raw))).toEqual({
      level: 20,
      time: 1,
      pid: 1,
      hostname: "h",
      queue: "AgentTask/shop",
      item: { name: "t", namespace: "shop", resourceVersion: "42" },
      spec: { action: "scale", payload: { replicas: 5 } },
      msg: "Reconciling",
    });
  });

  test("fails closed: a line that is no JSON object, nesting beyond the bound, a huge JSON string", () => {
    expect(redactPeprLine(`{"level":30,"msg":"${TOKEN}" broken`)).toBe(
      `${JSON.stringify({ level: 30, msg: `${REDACTED}: a Pepr log line that could not be redacted` })}\n`,
    );
    expect(leaks(redactPeprLine(`plain ${VALUE}\n`))).toEqual([]);
    let deep: object = { note: VALUE };
    for (let i = 0; i < 40; i++) deep = { a: deep };
    expect(leaks(redactPeprLine(line({ deep })))).toEqual([]);
    const huge = JSON.stringify({ filler: "x".repeat(1 << 20), v: VALUE });
    expect(leaks(redactPeprLine(line({ msg: huge })))).toEqual([]);
  });

  test("property: a secret under poaToken, attestations or a payload, at any depth and key, never survives", () => {
    const key = fc.constantFrom("spec", "object", "oldObject", "request", "items", "x");
    const where = fc.constantFrom("poaToken", "attestations", "payload");
    fc.assert(
      fc.property(
        fc.array(key, { maxLength: 10 }),
        where,
        fc.string({ minLength: 4 }).map(s => `secret:${s}`),
        (path, field, secret) => {
          const leaf =
            field === "payload" ? { payload: { data: { k: secret }, nested: [{ v: secret }] } } : { [field]: [secret] };
          let obj: object = leaf;
          for (const k of path.reverse()) obj = { [k]: obj };
          const out = redactPeprLine(line(obj));
          expect(out).not.toContain(JSON.stringify(secret).slice(1, -1));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("redactPeprLogs on Pepr's real logger", () => {
  const streamSym = Object.getOwnPropertySymbols(Log).find(s => s.description === "pino.stream")!;
  const target = Log as unknown as Record<symbol, unknown>;
  const HOOKS = Symbol.for("pino.hooks");
  let original: unknown;
  let written: string[];
  let hooksBefore: { streamWrite?: unknown };
  const level = Log.level;

  beforeAll(() => {
    original = target[streamSym];
    hooksBefore = target[HOOKS] as { streamWrite?: unknown };
  });
  beforeEach(() => {
    written = [];
    target[streamSym] = { write: (s: string) => void written.push(s) };
    Log.level = "debug";
  });
  afterAll(() => {
    target[streamSym] = original;
    Log.level = level;
  });

  function logEverything(child: typeof Log): void {
    Log.debug(task(), "Watch event ADDED received");
    Log.debug({ request: { object: task(), oldObject: patchTask() } }, "Incoming request body");
    Log.info("%o", task());
    Log.error(new Error(`token ${TOKEN} refused`), "Error processing request");
    child.debug({ obj: patchTask() }, "child");
  }

  test("before: Pepr's Log prints the secrets at debug; after: none, with children, level changes and format args", () => {
    expect(streamSym).toBeDefined();
    const earlyChild = Log.child({ component: "early" });
    logEverything(earlyChild);
    expect(written).toHaveLength(5);
    expect(leaks(written.join(""))).toEqual(SECRETS);

    redactPeprLogs();
    redactPeprLogs(); // idempotent
    written = [];
    Log.level = "info";
    Log.level = "debug"; // pino re-creates its level methods; the hook stays
    logEverything(earlyChild);
    logEverything(Log.child({ component: "late" }));
    expect(written).toHaveLength(10);
    expect(leaks(written.join(""))).toEqual([]);
    expect(written.join("")).toContain("Watch event ADDED received");
    expect(written.join("")).toContain('"component":"early"');
    expect(written.every(l => l.endsWith("\n"))).toBe(true);
  });

  test("the logger gets hooks of its own: the object it had (pino's default, shared by other loggers) is left alone", () => {
    redactPeprLogs();
    const hooks = target[HOOKS] as { streamWrite?: unknown };
    expect(typeof hooks.streamWrite).toBe("function");
    expect(hooks).not.toBe(hooksBefore);
    expect(hooksBefore.streamWrite).toBeUndefined();
  });

  test("a logger without pino's hooks is refused (the redaction would not run)", () => {
    expect(() => redactPeprLogs({})).toThrow(/no pino hooks/);
  });
});
