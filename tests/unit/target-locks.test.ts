// One task per target: waiters queue up and the holder's release hands the target to the longest
// waiter, which alone is woken.
import fc from "fast-check";
import { TargetLocks } from "../../capabilities/lib/pipeline/target-locks";

test("a second task waits for the target and is handed it when the first releases it", () => {
  const woken: string[] = [];
  const locks = new TargetLocks(k => woken.push(k));
  expect(locks.acquire("Deployment/p/web", "p/a")).toBe(true);
  expect(locks.acquire("Deployment/p/web", "p/a")).toBe(true);
  expect(locks.acquire("Deployment/p/web", "p/b")).toBe(false);
  expect(locks.acquire("Deployment/p/api", "p/b")).toBe(true);
  locks.release("p/a");
  expect(woken).toEqual(["p/b"]);
  expect(locks.holder("Deployment/p/web")).toBe("p/b");
  expect(locks.acquire("Deployment/p/web", "p/b")).toBe(true);
  expect(locks.acquire("Deployment/p/web", "p/c")).toBe(false);
});

test("waiters are handed the target one at a time, in the order they queued up", () => {
  const woken: string[] = [];
  const locks = new TargetLocks(k => woken.push(k));
  locks.acquire("T", "p/a");
  for (const w of ["p/b", "p/c", "p/d"]) expect(locks.acquire("T", w)).toBe(false);
  expect(locks.acquire("T", "p/c")).toBe(false); // asking again keeps its place
  locks.release("p/a");
  expect(woken).toEqual(["p/b"]);
  expect(locks.acquire("T", "p/c")).toBe(false); // not handed to c while b holds it
  locks.release("p/b");
  locks.release("p/c");
  locks.release("p/d");
  expect(woken).toEqual(["p/b", "p/c", "p/d"]);
  expect(locks.holder("T")).toBeUndefined();
});

test("a waiter that goes away is skipped; releasing a task also ends its waits", () => {
  const woken: string[] = [];
  const locks = new TargetLocks(k => woken.push(k));
  locks.acquire("T", "p/a");
  locks.acquire("T", "p/b");
  locks.acquire("T", "p/c");
  locks.release("p/b"); // b was deleted while waiting
  locks.release("p/a");
  expect(woken).toEqual(["p/c"]);
  expect(locks.holder("T")).toBe("p/c");
});

test("claim never steals; retain forgets waiters and releases holders that are no longer open", () => {
  const woken: string[] = [];
  const locks = new TargetLocks(k => woken.push(k));
  locks.claim("T", "p/a");
  locks.claim("T", "p/b");
  expect(locks.holder("T")).toBe("p/a");
  expect(locks.acquire("T", "p/gone")).toBe(false);
  expect(locks.acquire("T", "p/c")).toBe(false);
  locks.retain(new Set(["p/c"]));
  expect(locks.holder("T")).toBe("p/c");
  expect(woken).toEqual(["p/c"]);
  locks.retain(new Set());
  expect(locks.holder("T")).toBeUndefined();
});

test("property: a target never has two holders, and every waiter is handed it exactly once", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom("acquire", "release"), fc.integer({ min: 0, max: 5 })), { maxLength: 60 }),
      ops => {
        const woken: string[] = [];
        const locks = new TargetLocks(k => woken.push(k));
        const holding = new Set<string>(); // tasks that acquired (or were handed) T and not yet released
        const waiting: string[] = [];
        for (const [op, i] of ops) {
          const task = `p/t${i}`;
          if (op === "acquire") {
            const ok = locks.acquire("T", task);
            if (ok) holding.add(task);
            else if (!waiting.includes(task)) waiting.push(task);
          } else {
            const wasHolder = holding.delete(task);
            const at = waiting.indexOf(task);
            if (at >= 0) waiting.splice(at, 1);
            const before = woken.length;
            locks.release(task);
            if (wasHolder && waiting.length > 0) {
              expect(woken.slice(before)).toEqual([waiting[0]]);
              holding.add(waiting.shift()!);
            } else expect(woken.length).toBe(before);
          }
          expect(holding.size).toBeLessThanOrEqual(1);
          expect(locks.holder("T")).toBe([...holding][0]);
        }
      },
    ),
  );
});
