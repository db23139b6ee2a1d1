// GIVEN the real control plane (kube-apiserver with RBAC, controller-manager, KWOK nodes) and a
// namespace whose executor has the generated all-actions Role (tools/executor.ts), WHEN ten
// Deployments are scaled by direct writes as the executor and ObjectWatches follows each one,
// THEN every Deployment is seen reaching its rolled-out state through exactly ONE watch request
// for the namespace, made as the executor (impersonated), with no GET (interest registered from
// the version read before the write: nothing went by unseen); and WHEN that stream is cut
// and every Deployment is scaled and rolled out again while no watch is open, THEN the one
// restarted watch, from the last resourceVersion the stream saw, delivers every update: none lost.
// An executor whose Role lacks `watch` is refused (the watch really runs as the executor), and
// ObjectWatches then follows the rollout by polling, logged once.
import { randomBytes } from "node:crypto";
import type { KubeObject } from "../../capabilities/lib/action";
import {
  KubeClient,
  resourcePath,
  type KubeApi,
  type OperatorKube,
  type WatchEvent,
  type WatchRequest,
} from "../../capabilities/lib/kube";
import { ObjectWatches, type InterestHandle } from "../../capabilities/lib/kube/object-watch";
import { rolloutStatus } from "../../capabilities/lib/kube/rollout";
import { ensureBinaries } from "../../tools/controlplane/binaries";
import { executorObjects, installExecutor } from "../../tools/executor";
import { workload } from "../../tools/objects";
import type { Logger } from "../../capabilities/lib/logger";
import { e2eCluster } from "../helpers/cluster-env";

const cluster = e2eCluster();
const NS = `objwatch-${randomBytes(3).toString("hex")}`;
const EXEC = `system:serviceaccount:${NS}:atb-executor`;
const NAMES = Array.from({ length: 10 }, (_, i) => `web-${i}`);
const path = (name?: string) => resourcePath("Deployment", NS, name);
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

let admin: KubeClient;
let client: KubeClient;
let watches: ObjectWatches | undefined;

/** What ObjectWatches asked of the API server as the executor, and a way to cut its stream. */
const seen = { watches: [] as WatchRequest[], gets: [] as string[] };
let cut: (() => void) | undefined;
let door: Promise<void> | undefined;

/** The client as ObjectWatches sees it: the executor's watch can be cut, and its next start held back. */
const observed = (kube: KubeClient): OperatorKube => ({
  request: (r, d) => kube.request(r, d),
  get: (p, q) => kube.get(p, q),
  as: user => {
    const api = kube.as(user);
    return {
      request: (r, d) => api.request(r, d),
      get: <T>(p: string, q?: Record<string, string>) => {
        seen.gets.push(p);
        return api.get<T>(p, q);
      },
      watch: async <T>(req: WatchRequest, on: (e: WatchEvent<T>) => void) => {
        seen.watches.push({ ...req });
        if (door) await door;
        const inner = new AbortController();
        req.signal?.addEventListener("abort", () => inner.abort());
        cut = () => inner.abort(); // ends this stream as the server's timeout would
        return api.watch<T>({ ...req, signal: inner.signal }, on);
      },
    } as KubeApi;
  },
});

async function until(what: string, ms: number, cond: () => boolean | Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not in time (${ms} ms): ${what}`);
    await sleep(100);
  }
}

const rolledOut = (o: KubeObject | undefined, replicas: number): boolean =>
  !!o && o.spec?.replicas === replicas && rolloutStatus("Deployment", o).state === "done";

/**
 * Scales every Deployment as the executor (a task's write) and registers interest in each: all
 * at once from the versions read just before the writes (`before`: the stream starts from the
 * lowest of them and nothing can go by unseen, so no catch-up GET is ever needed), or each from
 * its write's own version (`after`, the usual order).
 */
async function scaleAll(replicas: number, order: "before" | "after"): Promise<Map<string, InterestHandle>> {
  const handles = new Map<string, InterestHandle>();
  const register = (name: string, o: KubeObject) =>
    handles.set(
      name,
      watches!.register(
        {
          user: EXEC,
          kind: "Deployment",
          namespace: NS,
          name,
          resourceVersion: o.metadata.resourceVersion!,
          initial: o,
        },
        () => undefined,
      ),
    );
  if (order === "before") {
    const current = await Promise.all(NAMES.map(n => admin.get<KubeObject>(path(n))));
    NAMES.forEach((n, i) => register(n, current[i]!));
  }
  for (const name of NAMES) {
    const written = await client.as(EXEC).request<KubeObject>({
      method: "PATCH",
      path: path(name),
      body: { spec: { replicas } },
    });
    if (order === "after") register(name, written);
  }
  return handles;
}

beforeAll(async () => {
  admin = await KubeClient.fromEnvironment({ qps: 50 });
  client = await KubeClient.fromEnvironment({ qps: 50 });
  await admin.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name: NS } } });
  await installExecutor(ensureBinaries(), cluster.kubeconfig, { namespace: NS, bound: "all-actions" });
  for (const name of NAMES)
    await admin.request({
      method: "POST",
      path: path(),
      body: workload({ kind: "Deployment", name, namespace: NS, image: "nginx:1.27", spec: { replicas: 1 } }),
    });
  await until("the Deployments' first rollout", 120_000, async () => {
    const all = await Promise.all(NAMES.map(n => admin.get<KubeObject>(path(n))));
    return all.every(o => rolledOut(o, 1));
  });
}, 180_000);

afterAll(async () => {
  await watches?.close();
  await admin?.request({ method: "DELETE", path: `/api/v1/namespaces/${NS}` }).catch(() => undefined);
  await Promise.all([admin?.close(), client?.close()]);
});

test("ten Deployments scaled as the executor: each seen rolled out through one watch request, no GET; a cut stream restarts from its last resourceVersion and loses no update", async () => {
  // A long silence window: anything seen here came through the watch, not the safety-net GET.
  watches = new ObjectWatches(observed(client), { silentMs: 600_000 });
  const before = { ...client.counts };
  const first = await scaleAll(2, "before");
  await until("every rollout to 2 seen", 120_000, () => NAMES.every(n => rolledOut(first.get(n)!.latest(), 2)));
  expect(client.counts.watches - before.watches).toBe(1);
  expect(seen.watches).toHaveLength(1);
  expect(seen.watches[0].path).toBe(path());
  expect(seen.gets).toEqual([]);
  expect(watches.stats()).toEqual({ streams: 1, watching: 1, polling: 0, interests: 10 });
  for (const h of first.values()) h.cancel();

  // Cut the stream; its restart waits at the door while all ten are scaled and rolled out again.
  const latestRv = (n: string) => first.get(n)!.latest()!.metadata.resourceVersion!;
  const positionAtLeast = NAMES.map(latestRv).reduce((a, b) => (BigInt(a) > BigInt(b) ? a : b));
  let open: () => void = () => undefined;
  door = new Promise<void>(r => (open = r));
  cut!();
  await until("the restart asked", 10_000, () => seen.watches.length === 2);
  const second = await scaleAll(3, "after");
  await until("every rollout to 3 done on the API server", 120_000, async () => {
    const all = await Promise.all(NAMES.map(n => admin.get<KubeObject>(path(n))));
    return all.every(o => rolledOut(o, 3));
  });
  await sleep(500);
  expect(NAMES.filter(n => rolledOut(second.get(n)!.latest(), 3))).toEqual([]); // nothing yet: no stream
  open();
  door = undefined;
  await until("every rollout to 3 seen", 60_000, () => NAMES.every(n => rolledOut(second.get(n)!.latest(), 3)));
  expect(seen.watches).toHaveLength(2);
  expect(client.counts.watches - before.watches).toBe(2);
  // From where the first stream was (at least its newest delivered version), not from "now".
  expect(seen.watches[1].resourceVersion).toBeDefined();
  expect(BigInt(seen.watches[1].resourceVersion!)).toBeGreaterThanOrEqual(BigInt(positionAtLeast));
  expect(BigInt(seen.watches[1].resourceVersion!)).toBeLessThan(
    BigInt(second.get(NAMES[0])!.latest()!.metadata.resourceVersion!),
  );
  expect(seen.gets).toEqual([]);
  for (const h of second.values()) h.cancel();
}, 300_000);

test("an executor whose Role lacks watch: the API server refuses the watch as that user, and the rollout is followed by polling, logged once", async () => {
  const name = "no-watch";
  const user = `system:serviceaccount:${NS}:${name}`;
  const rules = [{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "patch"] }];
  const [sa, role, binding] = executorObjects(NS, rules, name);
  await admin.request({ method: "POST", path: `/api/v1/namespaces/${NS}/serviceaccounts`, body: sa });
  const rbac = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}`;
  await admin.request({ method: "POST", path: `${rbac}/roles`, body: role });
  await admin.request({ method: "POST", path: `${rbac}/rolebindings`, body: binding });

  const refused = await client
    .as(user)
    .watch({ path: path(), resourceVersion: "0" }, () => undefined)
    .catch((e: unknown) => e);
  expect(refused).toMatchObject({ status: 403 });
  expect((refused as Error).message).toMatch(/cannot watch resource "deployments"/);

  const warn = jest.fn();
  const log = { warn, debug: jest.fn(), info: jest.fn(), error: jest.fn() } as unknown as Logger;
  await watches?.close();
  watches = new ObjectWatches(client, { silentMs: 600_000, pollMs: () => 300, refusedRecheckMs: 200, log });
  const written = await client.as(user).request<KubeObject>({
    method: "PATCH",
    path: path("web-0"),
    body: { spec: { replicas: 4 } },
  });
  const h = watches.register(
    {
      user,
      kind: "Deployment",
      namespace: NS,
      name: "web-0",
      resourceVersion: written.metadata.resourceVersion!,
      initial: written,
    },
    () => undefined,
  );
  await until("rollout to 4 seen by polling", 120_000, () => rolledOut(h.latest(), 4));
  expect(watches.stats()).toMatchObject({ streams: 1, polling: 1, watching: 0 });
  expect(warn).toHaveBeenCalledTimes(1);
  expect(warn.mock.calls[0][0]).toContain(`cannot watch Deployments in namespace ${NS} as ${user}; polling`);
  h.cancel();
}, 180_000);
