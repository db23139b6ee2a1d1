// The benchmark's limit and how it counts API work: the limit's one target write carries the
// product's marker (bench/limit/parts.ts), its worker slots and target hand-off behave as the
// operator's work queue and target locks do, the audit log is counted per identity by verb and
// resource (bench/audit.ts), and the control plane's audit policy takes the benchmark's rules
// before its final None (tools/controlplane/cluster.ts).
import { load } from "js-yaml";
import { ANNOTATION_APPLIED_TASKS } from "../../capabilities/lib/action/marker";
import { ANNOTATION_APPLIED_BY } from "../../crds/agenttask";
import { countRequests, requestKey } from "../../bench/audit";
import { patchBody, Semaphore, TargetFifo, type Task } from "../../bench/limit/parts";
import { auditPolicy } from "../../tools/controlplane/cluster";

const task = (action: string, kind: string, payload: Record<string, unknown>, uid = "uid-2"): Task => ({
  metadata: { name: "t", namespace: "bench-limit", uid, resourceVersion: "1" },
  spec: { action, target: { kind, name: "x", namespace: "bench-limit" }, payload },
});

describe("the limit's one write", () => {
  test("scale: spec.replicas, the marker annotations and the observed resourceVersion", () => {
    const target = {
      metadata: { name: "x", resourceVersion: "42", annotations: { [ANNOTATION_APPLIED_TASKS]: "uid-1" } },
      spec: { replicas: 2 },
    };
    expect(patchBody(task("scale", "Deployment", { replicas: 3 }), target)).toEqual({
      metadata: {
        resourceVersion: "42",
        annotations: { [ANNOTATION_APPLIED_BY]: "uid-2", [ANNOTATION_APPLIED_TASKS]: "uid-1 uid-2" },
      },
      spec: { replicas: 3 },
    });
  });

  test("update-config of a ConfigMap: data set, a removed key that exists is null, an absent one is not named", () => {
    const target = { metadata: { name: "x", resourceVersion: "7" }, data: { old: "1", keep: "2" } };
    const body = patchBody(task("update-config", "ConfigMap", { data: { a: "b" }, remove: ["old", "absent"] }), target);
    expect(body.data).toEqual({ a: "b", old: null });
    expect((body.metadata as { annotations: Record<string, string> }).annotations[ANNOTATION_APPLIED_BY]).toBe("uid-2");
  });

  test("other actions are refused, not guessed", () => {
    expect(() => patchBody(task("restart", "Deployment", {}), { metadata: { name: "x" } })).toThrow(
      /scale and update-config/,
    );
  });
});

describe("worker slots and targets", () => {
  test("a freed slot goes to work under way before new work", async () => {
    const sem = new Semaphore(1);
    await sem.take();
    const order: string[] = [];
    const fresh = sem.take().then(() => order.push("new"));
    const urgent = sem.take(true).then(() => order.push("urgent"));
    sem.give();
    await urgent;
    sem.give();
    await fresh;
    expect(order).toEqual(["urgent", "new"]);
  });

  test("a target is held by one task and handed to the next in arrival order", async () => {
    const fifo = new TargetFifo();
    expect(fifo.tryAcquire("d/a")).toBe(true);
    expect(fifo.tryAcquire("d/a")).toBe(false);
    expect(fifo.tryAcquire("d/b")).toBe(true);
    const order: number[] = [];
    const one = fifo.acquire("d/a").then(() => order.push(1));
    const two = fifo.acquire("d/a").then(() => order.push(2));
    fifo.release("d/a");
    await one;
    expect(order).toEqual([1]);
    fifo.release("d/a");
    await two;
    fifo.release("d/a");
    expect(order).toEqual([1, 2]);
    expect(fifo.tryAcquire("d/a")).toBe(true);
  });
});

describe("requests counted from the audit log", () => {
  const entry = (o: Record<string, unknown>) =>
    JSON.stringify({
      stage: "ResponseComplete",
      verb: "patch",
      requestURI: "/apis/apps/v1/namespaces/bench/deployments/app-0",
      user: { username: "system:serviceaccount:pepr-system:op" },
      objectRef: { resource: "deployments" },
      responseStatus: { code: 200 },
      ...o,
    });

  test("keys name verb, resource, subresource, dry run and the executor", () => {
    expect(requestKey(JSON.parse(entry({})) as never)).toBe("patch deployments");
    expect(
      requestKey(
        JSON.parse(
          entry({
            requestURI: "/apis/apps/v1/namespaces/bench/deployments/app-0?dryRun=All",
            impersonatedUser: { username: "system:serviceaccount:bench:atb-executor" },
          }),
        ) as never,
      ),
    ).toBe("patch deployments dry-run (as executor)");
    expect(
      requestKey(JSON.parse(entry({ objectRef: { resource: "agenttasks", subresource: "status" } })) as never),
    ).toBe("patch agenttasks/status");
  });

  test("only the user's completed requests count; failures are counted too", () => {
    const text = [
      entry({}),
      entry({ stage: "ResponseStarted" }),
      entry({ user: { username: "atb-admin" } }),
      // Another user that impersonates the same name does not count as it.
      entry({ user: { username: "x" }, impersonatedUser: { username: "system:serviceaccount:pepr-system:op" } }),
      entry({ verb: "get", responseStatus: { code: 404 } }),
      "",
    ].join("\n");
    expect(countRequests(text, "system:serviceaccount:pepr-system:op")).toEqual({
      byKey: { "patch deployments": 1, "get deployments": 1 },
      total: 2,
      failed: 1,
    });
  });
});

test("the audit policy takes extra rules before its final None", () => {
  const policy = load(
    auditPolicy([{ level: "Metadata", userGroups: ["system:serviceaccounts:x"], namespaces: ["x", ""] }]),
  ) as { rules: { level: string; userGroups?: string[] }[] };
  expect(policy.rules.at(-1)).toEqual({ level: "None" });
  expect(policy.rules.at(-2)).toEqual({
    level: "Metadata",
    userGroups: ["system:serviceaccounts:x"],
    namespaces: ["x", ""],
  });
  expect(load(auditPolicy())).toEqual(load(auditPolicy([])));
  expect((load(auditPolicy()) as { rules: unknown[] }).rules).toHaveLength(3);
});
