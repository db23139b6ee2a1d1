// Scenario "shards": the same burst of N LOW scale tasks over the same Deployments (those of the
// scale scenario, created here when it did not run) handled by 1, 2, 4 (ATB_BENCH_SHARDS) watcher
// processes on one control plane and one broker: the stack's operator restarted with
// ATB_SHARDS=n and ATB_SHARD=0 (it also serves the admission webhooks, which stamp each task's
// shard label from ATB_SHARDS) and n-1 watch-only processes (stack.startWatcher, ATB_SHARD=i),
// as in tests/e2e/shards.test.ts. The limit runs the same burst once, first. Per shard count:
// throughput and its ratio to that limit, latency, API requests per task (all watchers: one
// ServiceAccount), and from the API server's audit log, whose User-Agent names each watcher's
// shard ("atb-operator/0.1 (shard i/N)"), who wrote each target and each task: no target and no
// task may be written by two shards, and each by the shard its target hashes to. Afterwards the
// operator runs unsharded again (the restart scenario measures the standard operator).
import { USER_AGENT } from "../../capabilities/lib/kube";
import { shardOf } from "../../capabilities/lib/shard";
import type { Watcher } from "../../tools/stack";
import { auditOffset, auditSince } from "../audit";
import type { BenchEnv } from "../environment";
import { NS, NS_LIMIT } from "../fixtures";
import { log } from "../log";
import { memory, round, sleep } from "../measure";
import type { ShardRun, ShardsResult } from "../results";
import { e2eRun, KINDS } from "./e2e";
import { readyz } from "./restart";

/** Task names begin with r<run>-; far above the scale scenario's run numbers. */
const FIRST_RUN = 1000;

export async function shardsScenario(env: BenchEnv): Promise<ShardsResult> {
  const { settings } = env;
  const kind = KINDS.scale;
  for (const namespace of [NS, NS_LIMIT]) {
    const probe = await env.api.request("GET", `/apis/apps/v1/namespaces/${namespace}/deployments/app-0`);
    if (probe.status === 404) await kind.createTargets(env, namespace);
  }
  log(
    `shards: ${settings.shardTasks} scale tasks over ${settings.targets} Deployments, shards ${settings.shardCounts}`,
  );
  let run = FIRST_RUN;
  const base = { name: "scale" as const, rate: undefined, repeat: 1, tasks: settings.shardTasks };
  const limit = await e2eRun(env, kind, { ...base, side: "limit", run: ++run, label: "shards" });
  const runs: ShardRun[] = [];
  try {
    for (const n of settings.shardCounts) runs.push(await shardRun(env, n, ++run, limit.throughput));
  } finally {
    log("shards: the operator unsharded again");
    await env.stack.restartOperator("SIGTERM", {});
    await waitReady(env.stack.metricsPort);
  }
  return { tasks: settings.shardTasks, targets: settings.targets, limit, runs };
}

async function shardRun(env: BenchEnv, n: number, run: number, limitThroughput: number): Promise<ShardRun> {
  const shardEnv = (i: number) => ({ ATB_SHARDS: String(n), ATB_SHARD: String(i) });
  await env.stack.restartOperator("SIGTERM", shardEnv(0));
  const watchers: Watcher[] = [];
  try {
    for (let i = 1; i < n; i++) watchers.push(await env.stack.startWatcher(shardEnv(i)));
    for (const port of [env.stack.metricsPort, ...watchers.map(w => w.metricsPort)]) await waitReady(port);
    const pids = () => [env.stack.operator.process.pid!, ...watchers.map(w => w.handle.process.pid!)];
    const audit0 = auditOffset(env.dataDir);
    const r = await e2eRun(env, KINDS.scale, {
      name: "scale",
      side: "operator",
      rate: undefined,
      repeat: 1,
      run,
      tasks: env.settings.shardTasks,
      pids,
      label: `shards ${n}`,
    });
    const writers = whoWrote(auditSince(env.dataDir, audit0), `r${run}-`);
    const expected = (target: string) =>
      shardOf({ spec: { target: { kind: "Deployment", namespace: NS, name: target } } } as never, n);
    const targetOf = (task: string) => `app-${Number(task.slice(`r${run}-`.length)) % env.settings.targets}`;
    const twice = (m: Map<string, Set<string>>) => [...m].filter(([, s]) => s.size > 1).map(([k]) => k);
    const wrong = (m: Map<string, Set<string>>, target: (k: string) => string) =>
      [...m].filter(([k, s]) => [...s].some(sh => sh !== `${expected(target(k))}/${n}`)).map(([k]) => k);
    const count = (m: Map<string, Set<string>>) => {
      const out: Record<string, number> = {};
      for (const s of m.values()) for (const sh of s) out[sh] = (out[sh] ?? 0) + 1;
      return out;
    };
    const result: ShardRun = {
      shards: n,
      throughput: r.throughput,
      ratioToLimit: round(r.throughput / limitThroughput, 3),
      run: r,
      tasksByShard: count(writers.tasks),
      targetsByShard: count(writers.targets),
      targetsWrittenByTwoShards: twice(writers.targets),
      tasksWrittenByTwoShards: twice(writers.tasks),
      targetsWrittenByAnotherShard: wrong(writers.targets, t => t),
      tasksWrittenByAnotherShard: wrong(writers.tasks, targetOf),
      processHwmMiB: pids().map(p => memory(p).hwmMiB),
    };
    log(
      `shards ${n}: ${r.throughput} tasks/s (${result.ratioToLimit} of the limit's ${limitThroughput}), ` +
        `tasks by shard ${JSON.stringify(result.tasksByShard)}, targets by shard ${JSON.stringify(result.targetsByShard)}, ` +
        `written by two shards: ${result.targetsWrittenByTwoShards.length} targets, ${result.tasksWrittenByTwoShards.length} tasks; ` +
        `by another shard: ${result.targetsWrittenByAnotherShard.length} targets, ${result.tasksWrittenByAnotherShard.length} tasks`,
    );
    return result;
  } finally {
    for (const w of watchers) await w.stop();
  }
}

async function waitReady(port: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  while ((await readyz(port)) !== 200) {
    if (Date.now() > deadline) throw new Error(`watcher on metrics port ${port} not ready after 120 s`);
    await sleep(100);
  }
}

interface AuditEntry {
  stage: string;
  verb: string;
  requestURI: string;
  userAgent?: string;
  objectRef?: { resource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
}

/** A successful, non-dry-run write by a watcher. */
function isWatcherWrite(e: AuditEntry): boolean {
  const code = e.responseStatus?.code ?? 0;
  return (
    e.stage === "ResponseComplete" &&
    (e.userAgent ?? "").startsWith(USER_AGENT) &&
    ["create", "update", "patch"].includes(e.verb) &&
    !/[?&]dryRun=/.test(e.requestURI) &&
    code >= 200 &&
    code < 300
  );
}

/** A watcher's write to an object of NS: what it wrote and its shard ("i/N", else "unsharded"). */
function shardWrite(line: string): { resource: string; name: string; shard: string } | undefined {
  const e = JSON.parse(line) as AuditEntry;
  const ref = e.objectRef ?? {};
  if (!isWatcherWrite(e) || ref.namespace !== NS || !ref.name || !ref.resource) return undefined;
  const shard = /\(shard (\d+\/\d+)\)$/.exec(e.userAgent ?? "")?.[1] ?? "unsharded";
  return { resource: ref.resource, name: ref.name, shard };
}

/**
 * The shards whose writes the audit text records, by Deployment of NS and by task of NS whose
 * name begins with `taskPrefix` (any subresource: the task itself or its status).
 */
export function whoWrote(
  text: string,
  taskPrefix: string,
): { targets: Map<string, Set<string>>; tasks: Map<string, Set<string>> } {
  const targets = new Map<string, Set<string>>();
  const tasks = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, k: string, shard: string) => m.set(k, (m.get(k) ?? new Set()).add(shard));
  for (const line of text.split("\n")) {
    // Most lines are other users': skip them before parsing.
    const w = line.includes(USER_AGENT) ? shardWrite(line) : undefined;
    if (w?.resource === "deployments") add(targets, w.name, w.shard);
    else if (w?.resource === "agenttasks" && w.name.startsWith(taskPrefix)) add(tasks, w.name, w.shard);
  }
  return { targets, tasks };
}
