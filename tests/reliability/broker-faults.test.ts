// GIVEN the whole operator (real API server, admission, pipeline) and, on the port the operator
// calls, a broker that misbehaves — a small fault-injecting mTLS stub (tests/helpers/fault-broker.ts,
// its own process) in front of a real reference broker —, WHEN tasks are authorized while the broker is slow beyond the attempt
// timeout, answers 500 intermittently, answers 200 with a malformed body (allowed missing,
// allowed "true", truncated, too large, ...), presents a certificate from another CA, or is down,
// THEN no target is written without a valid allow (API server audit log), retries show in status,
// events and atb_operator_retries_total, and every task reaches a terminal phase.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureCA, issueCert } from "../../broker/pki";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually } from "../helpers/kube";
import { executed, Harness, type Task } from "../helpers/pipeline-tasks";
import { MALFORMED, startFaultBroker, type FaultBroker, type FaultBrokerOptions } from "../helpers/fault-broker";
import { checkNoLeaks, counter, operatorAlive, probe, size, summary, metricsOf } from "../helpers/reliability";

const NS = "rel-broker";
const WORK = "stack-rel-broker";
const PER_FAULT = size(3, 10);
const MALFORMED_COPIES = size(1, 3);
const TERMINAL = ["Completed", "Denied", "Failed"];
const cluster = e2eCluster();
const h = new Harness(cluster, NS, WORK);

/** The fault broker (its own process) on the port the operator calls. */
function faultBroker(mode: FaultBrokerOptions["mode"], server = h.stack.material.server): Promise<FaultBroker> {
  const m = h.stack.material;
  return startFaultBroker({
    port: h.stack.brokerPort,
    mode,
    server,
    ca: m.ca.cert,
    client: m.client,
    backend: {
      server: m.server,
      poaPublicKey: m.poaPublicKey,
      audit: h.stack.auditFile,
      log: join(cluster.dataDir, WORK, "broker.log"),
    },
  });
}

async function tasksFor(prefix: string, count: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  h.kube.run(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: names.map(n => h.workload("Deployment", n, "nginx:1.27")),
    }),
  );
  const items = [];
  for (const n of names) {
    items.push(
      h.task(
        n,
        { action: "scale", kind: "Deployment", target: n, payload: { replicas: 3 } },
        await h.token("scale", "Deployment", n),
      ),
    );
  }
  h.kube.run(["create", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  return names;
}

function terminal(names: string[], timeoutMs = 240_000): Promise<Task[]> {
  return eventually(`tasks ${names[0]}.. terminal`, timeoutMs, () => {
    const all = new Map(h.tasks().map(t => [t.metadata.name, t]));
    const mine = names.map(n => all.get(n));
    return mine.every(t => t && TERMINAL.includes(t.status?.phase ?? "")) ? (mine as Task[]) : undefined;
  });
}

const attempts = (t: Task) => (t as Task & { status?: { attempts?: number } }).status?.attempts ?? 0;
/** Retries scheduled for a task, as its transition log lines say (retries are in status and the log, not Events). */
const retriesLogged = (name: string) =>
  h.stack.operator
    .logs()
    .split("\n")
    .filter(
      l =>
        l.includes('"message":"transition"') &&
        l.includes(`"name":"${name}"`) &&
        l.includes('"reason":"RetryScheduled"'),
    ).length;

beforeAll(async () => {
  await h.start({
    ATB_BROKER_TIMEOUT_MS: "800",
    ATB_BROKER_MAX_ATTEMPTS: "2",
    ATB_BROKER_BACKOFF_BASE_MS: "50",
    ATB_BROKER_BACKOFF_MAX_MS: "200",
    ATB_TASK_MAX_ATTEMPTS: "3",
    ATB_TASK_BACKOFF_MS: "300",
    ATB_TASK_MAX_BACKOFF_MS: "1000",
  });
  await h.stack.stopBroker();
});

afterAll(async () => {
  await stub?.stop();
  await h.stop();
});

let stub: FaultBroker | undefined;

test("a misbehaving broker never leads to a write, retries are visible, every task ends", async () => {
  const retriesBefore = counter(await metricsOf(h.stack), "atb_operator_retries_total");
  const counts: Record<string, unknown> = {};

  // 1. Slow, intermittent 500s and malformed 200s, all at once through one stub.
  stub = await faultBroker("misbehave");
  const slow = await tasksFor("slow", PER_FAULT);
  const flaky = await tasksFor("flaky", PER_FAULT);
  const bad: string[] = [];
  for (const v of Object.keys(MALFORMED)) bad.push(...(await tasksFor(`bad-${v}`, MALFORMED_COPIES)));
  const [slowDone, flakyDone, badDone] = await Promise.all([terminal(slow), terminal(flaky), terminal(bad)]);
  const first = await stub.stats();
  await stub.stop();
  const seen = new Map(Object.entries(first.seen));
  for (const t of slowDone) {
    expect({ task: t.metadata.name, phase: t.status?.phase, executed: executed(t) }).toEqual({
      task: t.metadata.name,
      phase: "Failed",
      executed: false,
    });
    expect(t.status?.message).toMatch(/gave up after 3 attempts/);
    expect(attempts(t)).toBeGreaterThanOrEqual(2);
    expect(retriesLogged(t.metadata.name)).toBeGreaterThanOrEqual(2);
    expect(seen.get(t.metadata.name)).toBeGreaterThanOrEqual(3);
  }
  for (const t of flakyDone) {
    // The real broker allowed it on the third request: applied once, after visible retries.
    expect({ task: t.metadata.name, phase: t.status?.phase, allowed: t.status?.atbResult?.allowed }).toEqual({
      task: t.metadata.name,
      phase: "Completed",
      allowed: true,
    });
    expect(readFileSync(h.stack.auditFile, "utf8")).toContain(t.status!.atbResult!.requestId!);
    expect(retriesLogged(t.metadata.name)).toBeGreaterThanOrEqual(1);
    expect(seen.get(t.metadata.name)).toBeGreaterThanOrEqual(3);
  }
  for (const t of badDone) {
    expect({ task: t.metadata.name, phase: t.status?.phase, executed: executed(t) }).toEqual({
      task: t.metadata.name,
      phase: "Failed",
      executed: false,
    });
    expect({ task: t.metadata.name, message: t.status?.message }).toEqual({
      task: t.metadata.name,
      message: expect.stringMatching(/broker/i),
    });
    expect(t.status?.atbResult?.allowed).not.toBe(true);
    const reason = t.status?.conditions?.find(c => c.type === "Succeeded")?.reason;
    expect({ task: t.metadata.name, reason }).toEqual({ task: t.metadata.name, reason: "BrokerMalformedResponse" });
  }
  counts.slow = slowDone.length;
  counts.flaky = flakyDone.length;
  counts.malformed = { tasks: badDone.length, variants: Object.keys(MALFORMED).length };

  // 2. A broker with a certificate from another CA, answering a valid allow to anyone who asks.
  const other = join(cluster.dataDir, WORK, "other-pki");
  const otherCa = ensureCA(other, "other-ca", "someone else's CA");
  const impostorCert = issueCert(other, otherCa, "impostor", {
    cn: "atb-broker",
    dns: ["localhost"],
    ips: ["127.0.0.1"],
    usage: "server",
  });
  stub = await faultBroker("impostor", impostorCert);
  const cert = await tasksFor("cert", PER_FAULT);
  const certDone = await terminal(cert);
  const impostorRequests = (await stub.stats()).total;
  await stub.stop();
  for (const t of certDone) {
    expect({ task: t.metadata.name, phase: t.status?.phase, executed: executed(t) }).toEqual({
      task: t.metadata.name,
      phase: "Failed",
      executed: false,
    });
    expect(t.status?.message).toMatch(/certificate is not trusted/);
  }
  expect(impostorRequests).toBe(0);
  counts.wrongCert = certDone.length;

  // 3. No broker at all.
  const down = await tasksFor("down", PER_FAULT);
  const retrying = await eventually("a retry recorded while the broker is down", 60_000, () => {
    const t = h.tasks().find(x => x.metadata.name === down[0]);
    return t && attempts(t) >= 1 ? t : undefined;
  });
  expect(retrying.status?.phase).toBe("Processing");
  const downDone = await terminal(down);
  for (const t of downDone) {
    expect({ task: t.metadata.name, phase: t.status?.phase, executed: executed(t) }).toEqual({
      task: t.metadata.name,
      phase: "Failed",
      executed: false,
    });
    expect(t.status?.message).toMatch(/gave up after 3 attempts/);
    expect(attempts(t)).toBeGreaterThanOrEqual(2);
  }
  counts.down = downDone.length;

  // 4. The broker is back: the operator still works.
  stub = await faultBroker("misbehave");
  const ok = await tasksFor("ok", 1);
  const [okDone] = await terminal(ok);
  const last = await stub.stats();
  await stub.stop();
  expect(okDone.status?.phase).toBe("Completed");
  expect(operatorAlive(h.stack)).toBe(true);
  expect((await probe(h.stack.metricsPort, "/readyz")).status).toBe(200);

  // Zero writes without a valid allow, on the API server's record; one per allowed task.
  const writes = h.targetWrites();
  const allowed = new Set([...flaky, ...ok]);
  for (const [name, n] of writes) expect({ name, writes: n }).toEqual({ name, writes: allowed.has(name) ? 1 : 0 });
  for (const name of allowed) expect({ name, writes: writes.get(name) ?? 0 }).toEqual({ name, writes: 1 });
  const unallowed = [...slow, ...bad, ...cert, ...down];
  for (const name of unallowed) expect(h.get("deployment", name).spec?.replicas).toBe(2);

  // Retries in the operator's metrics: 2 per slow and down task, 1 per flaky task at least.
  const metrics = await metricsOf(h.stack);
  const retries = counter(metrics, "atb_operator_retries_total") - retriesBefore;
  expect(retries).toBeGreaterThanOrEqual(2 * slow.length + 2 * down.length + flaky.length);
  expect(counter(metrics, "atb_operator_broker_errors_total")).toBeGreaterThan(0);

  const leaks = await checkNoLeaks(h);
  summary("broker faults", {
    ...counts,
    tasks: h.tasks().length,
    targetWritesAudited: [...writes.values()].reduce((a, b) => a + b, 0),
    writesWithoutValidAllow: unallowed.filter(n => (writes.get(n) ?? 0) > 0).length,
    retriesInMetrics: retries,
    stubRequests: first.total + last.total,
    impostorRequests,
    leakScan: leaks,
  });
}, 900_000);
