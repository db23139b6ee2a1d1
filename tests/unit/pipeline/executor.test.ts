// The per-namespace executor (capabilities/lib/pipeline/executor.ts), on the in-memory API server:
// every request about a target is made as the task namespace's executor and everything else as
// the operator itself; a namespace without the executor ServiceAccount fails ExecutorMissing after
// the token check and before any read of the target; RBAC refusals (403) of the executor fail
// ExecutorForbidden naming verb, resource and namespace, with nothing written; the found
// ServiceAccount is remembered for a while, a missing one is asked again.
import { KubeError, resourcePath } from "../../../capabilities/lib/kube";
import {
  EXECUTOR_SEEN_MS,
  executorUser,
  FORBIDDEN_RECHECK_MS,
  onceMoreIfForbidden,
  rbacRequest,
} from "../../../capabilities/lib/pipeline/executor";
import type { RequestInfo } from "../../helpers/fake-kube";
import { configMap, deployPath, deployment, drive, submit, uidOf, world, type World } from "./harness";

const EXECUTOR = "system:serviceaccount:shop:atb-executor";
const saPath = (ns = "shop", name = "atb-executor") => resourcePath("ServiceAccount", ns, name);
const forbidden = (who: string, verb: string, what: string) =>
  new KubeError(403, "Forbidden", `${what} is forbidden: User "${who}" cannot ${verb} ...`);

function setup(o: { env?: Record<string, string> } = {}): World {
  const w = world({ env: o.env, kube: { autoRollout: true } });
  deployment(w);
  configMap(w);
  return w;
}

const targetRequests = (w: World) =>
  w.kube.audit.filter(e => e.path.startsWith("/apis/apps/") || e.path.includes("/configmaps"));

describe("who makes which request", () => {
  test("every read, dry run and write of the target is the executor's; task, status, Events and the ServiceAccount check the operator's", async () => {
    const w = setup();
    const key = submit(w, "t");
    const r = await drive(w, key);
    expect(r.task.status).toMatchObject({ phase: "Completed", executedAs: EXECUTOR });
    const target = targetRequests(w);
    expect(target.map(e => [e.method, e.dryRun])).toEqual(
      expect.arrayContaining([
        ["GET", false],
        ["PATCH", true],
        ["PATCH", false],
      ]),
    );
    for (const e of target) expect(e.user).toBe(EXECUTOR);
    const own = w.kube.audit.filter(e => !targetRequests(w).includes(e));
    expect(own.length).toBeGreaterThan(0);
    for (const e of own) expect(e.user).toBeUndefined();
    expect(own.some(e => e.path === saPath())).toBe(true);
  });

  test("ATB_EXECUTOR_SERVICE_ACCOUNT names the executor", async () => {
    const w = setup({ env: { ATB_EXECUTOR_SERVICE_ACCOUNT: "agents" } });
    w.kube.put(saPath("shop", "agents"), { apiVersion: "v1", kind: "ServiceAccount", metadata: {} });
    const r = await drive(w, submit(w, "t"));
    expect(r.task.status).toMatchObject({ phase: "Completed", executedAs: "system:serviceaccount:shop:agents" });
    for (const e of targetRequests(w)) expect(e.user).toBe("system:serviceaccount:shop:agents");
  });

  test("the executor is the task namespace's, also for a target in another namespace", async () => {
    const w = setup({ env: { ATB_ALLOW_CROSS_NAMESPACE: "true" } });
    deployment(w, "web", 2, "elsewhere");
    const r = await drive(w, submit(w, "t", { targetNamespace: "elsewhere" }));
    expect(r.task.status?.phase).toBe("Completed");
    const writes = w.kube.audit.filter(e => e.path === deployPath("web", "elsewhere") && e.method === "PATCH");
    expect(writes.length).toBe(2);
    for (const e of writes) expect(e.user).toBe(EXECUTOR);
  });
});

describe("ExecutorMissing", () => {
  test("no ServiceAccount: Failed after the token check, the target never read, the command that creates one in the message", async () => {
    const w = setup();
    w.kube.remove(saPath());
    const r = await drive(w, submit(w, "t"));
    expect(r.task.status).toMatchObject({ phase: "Failed" });
    const succeeded = r.task.status?.conditions?.find(c => c.type === "Succeeded");
    expect(succeeded?.reason).toBe("ExecutorMissing");
    expect(r.task.status?.message).toMatch(
      /^namespace shop has no executor ServiceAccount atb-executor: .*nothing was read or written; .*npm run -s executor -- shop \| kubectl apply -f -/,
    );
    expect(targetRequests(w)).toEqual([]);
    expect(w.broker.preflights.length).toBe(1);
    expect(w.broker.calls.length).toBe(0);
    expect(r.task.status?.executedAs).toBeUndefined();
  });

  test("a found ServiceAccount is remembered for a while; once deleted, tasks fail after that while", async () => {
    const w = setup();
    await drive(w, submit(w, "a"));
    await drive(w, submit(w, "b", { payload: { replicas: 4 } }));
    expect(w.kube.audit.filter(e => e.path === saPath()).length).toBe(1);
    w.kube.remove(saPath());
    w.clock.advance(EXECUTOR_SEEN_MS + 1);
    const r = await drive(w, submit(w, "c", { payload: { replicas: 5 } }));
    expect(r.task.status?.conditions?.find(c => c.type === "Succeeded")?.reason).toBe("ExecutorMissing");
  });

  test("the operator may not read the ServiceAccount: ExecutorForbidden naming its ClusterRole", async () => {
    const w = setup();
    w.kube.onRequest(r =>
      r.path === saPath() ? forbidden("system:serviceaccount:pepr-system:op", "get", "serviceaccounts") : undefined,
    );
    const r = await drive(w, submit(w, "t"));
    expect(r.task.status?.conditions?.find(c => c.type === "Succeeded")?.reason).toBe("ExecutorForbidden");
    expect(r.task.status?.message).toMatch(/^the operator may not read the executor ServiceAccount shop\/atb-executor/);
    expect(targetRequests(w)).toEqual([]);
  });
});

describe("ExecutorForbidden", () => {
  const refuse = (w: World, when: (r: RequestInfo) => boolean, verb: string) =>
    w.kube.onRequest(r => (r.user === EXECUTOR && when(r) ? forbidden(EXECUTOR, verb, "deployments.apps") : undefined));

  test.each([
    ["the read of the target", (r: RequestInfo) => r.method === "GET", "get"],
    ["the dry run", (r: RequestInfo) => r.method === "PATCH" && r.dryRun, "patch"],
    ["the write", (r: RequestInfo) => r.method === "PATCH" && !r.dryRun, "patch"],
  ])(
    "RBAC refuses %s: Failed, the message names verb, resource and namespace, nothing stored",
    async (_what, when, verb) => {
      const w = setup();
      refuse(w, when, verb);
      const key = submit(w, "t");
      const r = await drive(w, key);
      expect(r.task.status?.phase).toBe("Failed");
      expect(r.task.status?.conditions?.find(c => c.type === "Succeeded")?.reason).toBe("ExecutorForbidden");
      expect(r.task.status?.message).toContain(
        `the executor ${EXECUTOR} may not ${verb} deployments.apps in namespace shop`,
      );
      expect(w.kube.audit.filter(e => e.path === deployPath() && e.stored)).toEqual([]);
      expect(w.kube.read(deployPath())?.metadata.annotations?.["atb.siemens.com/applied-by-task"]).not.toBe(
        uidOf(w, key),
      );
    },
  );

  test("the operator may not impersonate the executor: the message says the ClusterRole and the setting must agree", async () => {
    const w = setup();
    w.kube.onRequest(r =>
      r.user === EXECUTOR
        ? new KubeError(
            403,
            "Forbidden",
            `users "${EXECUTOR}" is forbidden: User "system:serviceaccount:pepr-system:op" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "shop"`,
          )
        : undefined,
    );
    const r = await drive(w, submit(w, "t"));
    expect(r.task.status?.conditions?.find(c => c.type === "Succeeded")?.reason).toBe("ExecutorForbidden");
    expect(r.task.status?.message).toMatch(
      /^the operator may not act as the executor system:serviceaccount:shop:atb-executor: its ClusterRole must grant impersonate/,
    );
  });
});

describe("the request as RBAC names it", () => {
  test.each([
    [{ method: "GET", path: "/apis/apps/v1/namespaces/a/deployments/web" }, "get", "deployments.apps", "a"],
    [{ method: "GET", path: "/apis/apps/v1/namespaces/a/replicasets" }, "list", "replicasets.apps", "a"],
    [{ method: "PATCH", path: "/api/v1/namespaces/b/configmaps/flags" }, "patch", "configmaps", "b"],
    [{ method: "POST", path: "/apis/apps/v1/namespaces/c/statefulsets" }, "create", "statefulsets.apps", "c"],
    [
      { method: "PATCH", path: "/apis/apps/v1/namespaces/d/deployments/web/scale" },
      "patch",
      "deployments/scale.apps",
      "d",
    ],
  ] as const)("%j", (req, verb, resource, namespace) => {
    expect(rbacRequest(req)).toEqual({ verb, resource, namespace });
  });

  test("the executor's user name", () => {
    expect(executorUser("shop", { executorServiceAccount: "atb-executor" })).toBe(EXECUTOR);
  });
});

describe("a refusal is asked again once (an API server's RBAC caches are empty for a moment after it starts)", () => {
  test("a 403 that passes: the task Completes, the request was sent twice, one second apart", async () => {
    const w = setup();
    let refused = 0;
    w.kube.onRequest(r =>
      r.user === EXECUTOR && r.method === "GET" && refused++ === 0
        ? forbidden(EXECUTOR, "get", "deployments.apps")
        : undefined,
    );
    const before = w.clock.t;
    const r = await drive(w, submit(w, "t"));
    expect(r.task.status?.phase).toBe("Completed");
    const gets = w.kube.audit.filter(e => e.path === deployPath() && e.method === "GET");
    expect(gets[0].status).toBe(403);
    expect(gets[1].status).toBe(200);
    expect(w.clock.t - before).toBeGreaterThanOrEqual(FORBIDDEN_RECHECK_MS);
  });

  test("a 403 on the ServiceAccount check that passes: the task Completes", async () => {
    const w = setup();
    let refused = 0;
    w.kube.onRequest(r =>
      r.path === saPath() && refused++ === 0
        ? forbidden("system:serviceaccount:pepr-system:op", "get", "sa")
        : undefined,
    );
    const r = await drive(w, submit(w, "t"));
    expect(r.task.status?.phase).toBe("Completed");
    expect(w.kube.audit.filter(e => e.path === saPath()).map(e => e.status)).toEqual([403, 200]);
  });

  test("onceMoreIfForbidden: other errors are not asked again; a second 403 is final", async () => {
    let n = 0;
    const sleeps: number[] = [];
    const sleep = async (ms: number) => void sleeps.push(ms);
    await expect(
      onceMoreIfForbidden(async () => {
        n++;
        throw new KubeError(500, "", "boom");
      }, sleep),
    ).rejects.toThrow("boom");
    expect([n, sleeps]).toEqual([1, []]);
    await expect(
      onceMoreIfForbidden(async () => {
        n++;
        throw forbidden("u", "get", "x");
      }, sleep),
    ).rejects.toThrow("forbidden");
    expect([n, sleeps]).toEqual([3, [FORBIDDEN_RECHECK_MS]]);
  });
});
