// GIVEN the whole product on the real control plane, its operator at LOG_LEVEL=debug (Pepr's own
// logger too), WHEN agents' tasks finish, THEN a task with spec.ttlSecondsAfterFinished 5 is gone
// within 5 s + the sweep interval (+ a little slack) after it finished and its Expired Event
// outlives it, a task with 0 stays, a task still open is never deleted; and the operator's log
// holds Pepr's debug lines (admission requests, watch events: whole tasks) but none of the
// tokens, attestations or update-config values those tasks carried.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { signAttestation } from "../../broker/poa";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually } from "../helpers/kube";
import { Harness, type Task, type TaskRequest } from "../helpers/pipeline-tasks";
import { scanForSecrets } from "../helpers/secrets";

const h = new Harness(e2eCluster(), "ttl", "stack-ttl");
const SWEEP_S = 5;
/** Polling, kubectl and a sweep that lists and deletes on a busy machine. */
const SLACK_S = 5;
const VALUE = `postgres://app:${randomBytes(12).toString("hex")}@db:5432/app`;

type TtlTask = Task & {
  metadata: Task["metadata"] & { resourceVersion: string };
  status?: Task["status"] & { finishedAt?: string };
};

interface KubeEvent {
  reason: string;
  type: string;
  action?: string;
  message: string;
  firstTimestamp?: string;
  involvedObject: { kind: string; name: string; uid: string };
}

beforeAll(async () => {
  // Every sweep lists the finished tasks (by default every tenth does).
  await h.start({ LOG_LEVEL: "debug", ATB_SWEEP_INTERVAL_SECONDS: String(SWEEP_S), ATB_SWEEP_FINISHED_EVERY: "1" });
  h.secrets.push(VALUE);
});
afterAll(() => h.stop());

/** An approver attestation from a key the broker does not know: carried, checked, not counted. */
async function attestation(): Promise<string> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const a = await signAttestation({
    key: privateKey,
    approver: "mallory@example.com",
    changeSha256: `sha256:${"a".repeat(64)}`,
    poaJti: randomBytes(8).toString("hex"),
  });
  h.secrets.push(a);
  return a;
}

/** Creates a task with extra spec fields (the TTL, attestations); returns its name. */
async function create(name: string, r: TaskRequest, extra: Record<string, unknown>): Promise<string> {
  const token = await h.token(r.action, r.kind, r.target, { payload: r.payload ?? {} });
  const obj = h.task(name, r, token) as { spec: Record<string, unknown> };
  Object.assign(obj.spec, extra);
  h.create(obj);
  return name;
}

const task = (name: string) => h.kube.get<TtlTask>("agenttask", name, h.ns);
const events = (uid: string): KubeEvent[] =>
  (
    JSON.parse(
      h.kube.run(["get", "events", "-n", h.ns, "--field-selector", `involvedObject.uid=${uid}`, "-o", "json"]),
    ) as { items: KubeEvent[] }
  ).items;
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

test("a finished task with ttlSecondsAfterFinished 5 is gone within 5 s + the sweep interval, and its Expired Event stays", async () => {
  await h.ready("Deployment", "web");
  const name = await create(
    "ttl-five",
    { action: "scale", kind: "Deployment", target: "web", payload: { replicas: 3 } },
    { ttlSecondsAfterFinished: 5, attestations: [await attestation()] },
  );
  const done = (await h.terminal(name)) as TtlTask;
  expect(done.status?.phase).toBe("Completed");
  const finished = Date.parse(done.status!.finishedAt!);
  expect(Number.isFinite(finished)).toBe(true);

  const goneAt = await eventually(`${name} deleted`, 90_000, () =>
    h.exists("agenttask", name) ? undefined : Date.now(),
  );
  expect(goneAt - finished).toBeLessThanOrEqual((5 + SWEEP_S + SLACK_S) * 1000);

  const expired = events(done.metadata.uid).filter(e => e.reason === "Expired");
  expect(expired).toHaveLength(1);
  expect(expired[0]).toMatchObject({
    type: "Normal",
    action: "Delete",
    involvedObject: { kind: "AgentTask", name, uid: done.metadata.uid },
    message: `deleting the task: it finished (Completed) at ${done.status!.finishedAt} and its ttlSecondsAfterFinished of 5 s has passed`,
  });
  // Not deleted before its time (Event times have whole seconds).
  expect(Date.parse(expired[0].firstTimestamp!)).toBeGreaterThanOrEqual(Math.floor((finished + 5_000) / 1000) * 1000);
  // The task's own Event is still there too: its history outlives it.
  expect(events(done.metadata.uid).map(e => e.reason)).toEqual(expect.arrayContaining(["Completed"]));
  const metrics = await h.stack.metrics();
  expect(metrics).toMatch(/^atb_operator_tasks_deleted_total\{reason="ttl"\} [1-9]/m);
});

test("a task with TTL 0 stays; a task still open is never deleted, whatever its TTL; update-config values go with their task", async () => {
  await h.ready("Deployment", "web-keep");
  // Pods that no node takes: the scale never completes, so its task stays Executing.
  h.create(
    h.workload("Deployment", "stuck", "nginx:1.27", {
      replicas: 1,
      template: {
        metadata: { labels: { app: "stuck" } },
        spec: { containers: [{ name: "app", image: "nginx:1.27" }], nodeSelector: { "atb.test/none": "nowhere" } },
      },
    }),
  );
  h.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cfg", namespace: h.ns }, data: { keep: "1" } });

  const keep = await create(
    "ttl-zero",
    { action: "scale", kind: "Deployment", target: "web-keep", payload: { replicas: 3 } },
    { ttlSecondsAfterFinished: 0 },
  );
  const open = await create(
    "ttl-open",
    { action: "scale", kind: "Deployment", target: "stuck", payload: { replicas: 2 } },
    { ttlSecondsAfterFinished: 1 },
  );
  const config = await create(
    "ttl-config",
    { action: "update-config", kind: "ConfigMap", target: "cfg", payload: { data: { DATABASE_URL: VALUE } } },
    { ttlSecondsAfterFinished: 5, attestations: [await attestation()] },
  );

  const kept = (await h.terminal(keep)) as TtlTask;
  expect(kept.status?.phase).toBe("Completed");
  const configDone = (await h.terminal(config)) as TtlTask;
  expect(configDone.status?.phase).toBe("Completed");
  expect(h.get("configmap", "cfg").data).toEqual({ keep: "1", DATABASE_URL: VALUE });
  await eventually(`${config} deleted`, 90_000, () => (h.exists("agenttask", config) ? undefined : true));

  // Three sweeps after the TTL-0 task finished and after the open task's 1 s: both are still there.
  const since = Math.max(Date.parse(kept.status!.finishedAt!), Date.parse(task(open).metadata.creationTimestamp));
  await sleep(Math.max(0, since + (1 + 3 * SWEEP_S) * 1000 - Date.now()));
  expect(task(keep).metadata.uid).toBe(kept.metadata.uid);
  const stillOpen = task(open);
  expect(["Pending", "Processing", "Executing"]).toContain(stillOpen.status?.phase);
  expect(events(kept.metadata.uid).filter(e => e.reason === "Expired")).toEqual([]);
  expect(events(stillOpen.metadata.uid).filter(e => e.reason === "Expired")).toEqual([]);
});

test("Pepr's debug lines are in the operator's log, without a token, an attestation or a value", () => {
  const log = h.stack.operator.logs();
  expect(h.secrets.length).toBeGreaterThanOrEqual(7); // four tokens, two attestations, the value
  expect(scanForSecrets([log, h.kube.run(["get", "events", "-n", h.ns, "-o", "json"])], h.secrets)).toEqual([]);
  const pepr = log.split("\n").filter(l => l.startsWith('{"level":20,'));
  // Pepr's pino lines (numeric levels) at debug, each with a whole task in it.
  const requests = pepr.filter(l => l.includes('"msg":"Incoming request body"'));
  const watched = pepr.filter(l => /"msg":"Watch event \w+ received/.test(l) && l.includes('"kind":"AgentTask"'));
  expect(requests.length).toBeGreaterThan(3);
  expect(watched.length).toBeGreaterThan(3);
  expect(requests.some(l => l.includes('"poaToken":"[REDACTED]"') && l.includes('"attestations":"[REDACTED]"'))).toBe(
    true,
  );
  expect(requests.some(l => l.includes('"ttl-config"') && l.includes('"data":"[REDACTED]"'))).toBe(true);
});
