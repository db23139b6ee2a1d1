// The benchmark's settings (bench/settings.ts): defaults as docs/benchmarks.md gives them, every
// ATB_BENCH_* variable read, the result frozen, and typos rejected with the variable's name.
import { join } from "node:path";
import { parseSettings } from "../../bench/settings";

test("the defaults are the documented ones", () => {
  expect(parseSettings({})).toEqual({
    tasks: 1000,
    targets: 50,
    repeats: 1,
    rates: [10],
    finished: 10_000,
    shardCounts: [1, 2, 4],
    shardTasks: 300,
    fill: "bulk",
    restarts: 3,
    qps: 1000,
    workers: 8,
    brokerSeconds: 5,
    brokerConcurrency: 8,
    createConcurrency: 16,
    scenarios: ["broker", "scale", "update-config", "shards", "restart"],
    profile: false,
    operator: "bundle",
    keep: false,
    out: join(__dirname, "..", "..", "bench", "results.json"),
  });
});

test("every variable is read", () => {
  const s = parseSettings({
    ATB_BENCH_TASKS: "40",
    ATB_BENCH_TARGETS: "10",
    ATB_BENCH_REPEATS: "1",
    ATB_BENCH_RATES: "5, 20",
    ATB_BENCH_FINISHED: "200",
    ATB_BENCH_SHARDS: "4, 2,2",
    ATB_BENCH_SHARD_TASKS: "90",
    ATB_BENCH_FILL: "operator",
    ATB_BENCH_RESTARTS: "2",
    ATB_BENCH_QPS: "100",
    ATB_BENCH_WORKERS: "4",
    ATB_BENCH_BROKER_SECONDS: "3",
    ATB_BENCH_BROKER_CONCURRENCY: "2",
    ATB_BENCH_CREATE_CONCURRENCY: "6",
    ATB_BENCH_SCENARIOS: "restart,shards,update-config",
    ATB_BENCH_PROFILE: "1",
    ATB_BENCH_OPERATOR: "source",
    ATB_BENCH_KEEP: "1",
    ATB_BENCH_OUT: "/tmp/out.json",
  });
  expect(s).toEqual({
    tasks: 40,
    targets: 10,
    repeats: 1,
    rates: [5, 20],
    finished: 200,
    shardCounts: [2, 4],
    shardTasks: 90,
    fill: "operator",
    restarts: 2,
    qps: 100,
    workers: 4,
    brokerSeconds: 3,
    brokerConcurrency: 2,
    createConcurrency: 6,
    // In the order they run.
    scenarios: ["update-config", "shards", "restart"],
    profile: true,
    operator: "source",
    keep: true,
    out: "/tmp/out.json",
  });
});

test("an empty ATB_BENCH_RATES means the burst only; other empty variables take their default", () => {
  const s = parseSettings({ ATB_BENCH_RATES: "", ATB_BENCH_TASKS: "", ATB_BENCH_SCENARIOS: " " });
  expect(s.rates).toEqual([]);
  expect(s.tasks).toBe(1000);
  expect(s.scenarios).toEqual(["broker", "scale", "update-config", "shards", "restart"]);
});

test("e2e selects both end-to-end scenarios; a scenario named twice runs once", () => {
  expect(parseSettings({ ATB_BENCH_SCENARIOS: "e2e" }).scenarios).toEqual(["scale", "update-config"]);
  expect(parseSettings({ ATB_BENCH_SCENARIOS: "scale,e2e,broker" }).scenarios).toEqual([
    "broker",
    "scale",
    "update-config",
  ]);
});

test("the settings and their lists are frozen", () => {
  const s = parseSettings({});
  expect(Object.isFrozen(s)).toBe(true);
  expect(Object.isFrozen(s.rates)).toBe(true);
  expect(Object.isFrozen(s.scenarios)).toBe(true);
  expect(Object.isFrozen(s.shardCounts)).toBe(true);
});

test.each([
  ["ATB_BENCH_TASKS", "many", /^ATB_BENCH_TASKS: must be a whole number >= 1/],
  ["ATB_BENCH_TARGETS", "0", /^ATB_BENCH_TARGETS: must be a whole number >= 1/],
  ["ATB_BENCH_FINISHED", "-1", /^ATB_BENCH_FINISHED: must be a whole number from 0 to 100000/],
  ["ATB_BENCH_RATES", "burst", /^ATB_BENCH_RATES: must be comma-separated tasks\/s/],
  ["ATB_BENCH_RATES", "10,0", /^ATB_BENCH_RATES: must be comma-separated tasks\/s/],
  ["ATB_BENCH_FINISHED", "100001", /^ATB_BENCH_FINISHED: must be a whole number from 0 to 100000/],
  ["ATB_BENCH_SHARDS", "1,9", /^ATB_BENCH_SHARDS: must be comma-separated shard counts from 1 to 8/],
  ["ATB_BENCH_SHARDS", "0", /^ATB_BENCH_SHARDS: must be comma-separated shard counts from 1 to 8/],
  ["ATB_BENCH_SHARD_TASKS", "0", /^ATB_BENCH_SHARD_TASKS: must be a whole number >= 1/],
  ["ATB_BENCH_SCENARIOS", "e2e,sharding", /^ATB_BENCH_SCENARIOS: must be a comma-separated subset/],
  ["ATB_BENCH_FILL", "fast", /^ATB_BENCH_FILL: must be one of bulk, operator/],
  ["ATB_BENCH_OPERATOR", "docker", /^ATB_BENCH_OPERATOR: must be one of bundle, source/],
  ["ATB_BENCH_PROFILE", "on", /^ATB_BENCH_PROFILE: must be 1 or 0/],
])("%s=%s is refused", (name, value, message) => {
  expect(() => parseSettings({ [name]: value })).toThrow(message);
});
