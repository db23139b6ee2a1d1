// The work queue: bounded concurrency, one worker per key, dirty keys run again, earliest timer wins.
import { WorkQueue } from "../../capabilities/lib/runtime/work-queue";

const tick = (ms = 0) => new Promise(r => setTimeout(r, ms));

test("never runs more than `workers` handlers, nor one key twice at once", async () => {
  let running = 0;
  let peak = 0;
  const active = new Set<string>();
  let overlap = 0;
  const runs = new Map<string, number>();
  const q = new WorkQueue(
    3,
    async key => {
      if (active.has(key)) overlap++;
      active.add(key);
      running++;
      peak = Math.max(peak, running);
      runs.set(key, (runs.get(key) ?? 0) + 1);
      await tick(5);
      running--;
      active.delete(key);
    },
    () => undefined,
  );
  for (let i = 0; i < 50; i++) q.add(`k${i % 10}`);
  await q.idle();
  expect(peak).toBe(3);
  expect(overlap).toBe(0);
  // Queued duplicates collapse; a key re-added while running runs once more, never more.
  expect(runs.size).toBe(10);
  expect([...runs.values()].every(n => n === 1 || n === 2)).toBe(true);
});

test("a key added while it runs runs once more afterwards", async () => {
  let runs = 0;
  const q = new WorkQueue(
    2,
    async () => {
      runs++;
      if (runs === 1) {
        q.add("a");
        q.add("a");
      }
      await tick(2);
    },
    () => undefined,
  );
  q.add("a");
  await tick(30);
  await q.idle();
  expect(runs).toBe(2);
});

test("addAfter keeps the earliest timer and errors reach onError", async () => {
  const seen: string[] = [];
  const errors: string[] = [];
  const q = new WorkQueue(
    1,
    async key => {
      seen.push(key);
      if (key === "bad") throw new Error("boom");
    },
    key => errors.push(key),
  );
  q.addAfter("x", 200);
  q.addAfter("x", 10);
  q.add("bad");
  await tick(50);
  expect(seen).toEqual(["bad", "x"]);
  expect(errors).toEqual(["bad"]);
  q.stop();
});

test("tracks a key while it is queued, running or due on a timer, and not after", async () => {
  let release!: () => void;
  const gate = new Promise<void>(r => (release = r));
  const q = new WorkQueue(
    1,
    async key => (key === "a" ? gate : undefined),
    () => undefined,
  );
  expect(q.tracks("a")).toBe(false);
  q.add("a"); // runs at once
  q.add("b"); // queued behind it
  q.addAfter("c", 60_000);
  expect([q.tracks("a"), q.tracks("b"), q.tracks("c"), q.tracks("d")]).toEqual([true, true, true, false]);
  release();
  await q.idle();
  expect([q.tracks("a"), q.tracks("b")]).toEqual([false, false]);
  expect(q.tracks("c")).toBe(true);
  q.stop();
  expect(q.tracks("c")).toBe(false);
});

test("work under way (timers, urgent adds) runs before keys that are merely new, each in its own order", async () => {
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>(r => (release = r));
  const q = new WorkQueue(
    1,
    async key => {
      order.push(key);
      if (key === "first") await gate;
    },
    () => undefined,
  );
  q.add("first"); // occupies the only worker
  q.add("new-1");
  q.add("new-2");
  q.add("woken-1", true);
  q.add("new-3");
  q.add("new-2", true); // already queued: moves to the urgent lane, once
  q.add("new-2", true);
  q.addAfter("timer", 1);
  await tick(20);
  expect(q.length).toBe(5);
  release();
  await q.idle();
  expect(order).toEqual(["first", "woken-1", "new-2", "timer", "new-1", "new-3"]);
});

test("cancelDelayed drops the key's pending timer (and nothing else)", async () => {
  const seen: string[] = [];
  const q = new WorkQueue(
    1,
    async key => void seen.push(key),
    () => undefined,
  );
  q.addAfter("done", 20);
  q.addAfter("other", 20);
  q.cancelDelayed("done");
  q.cancelDelayed("never-added");
  expect([q.tracks("done"), q.tracks("other")]).toEqual([false, true]);
  await tick(60);
  expect(seen).toEqual(["other"]);
  q.stop();
});
