// One task per target: waiters are recorded and woken when the holder releases.
import { TargetLocks } from "../../capabilities/lib/target-locks";

test("a second task waits for the target and is woken when the first releases it", () => {
  const woken: string[] = [];
  const locks = new TargetLocks(k => woken.push(k));
  expect(locks.acquire("Deployment/p/web", "p/a")).toBe(true);
  expect(locks.acquire("Deployment/p/web", "p/a")).toBe(true);
  expect(locks.acquire("Deployment/p/web", "p/b")).toBe(false);
  expect(locks.acquire("Deployment/p/api", "p/b")).toBe(true);
  locks.release("p/a");
  expect(woken).toEqual(["p/b"]);
  expect(locks.acquire("Deployment/p/web", "p/b")).toBe(true);
});

test("claim never steals; retain releases holders that are no longer open", () => {
  const woken: string[] = [];
  const locks = new TargetLocks(k => woken.push(k));
  locks.claim("T", "p/a");
  locks.claim("T", "p/b");
  expect(locks.holder("T")).toBe("p/a");
  expect(locks.acquire("T", "p/c")).toBe(false);
  locks.retain(new Set(["p/c"]));
  expect(locks.holder("T")).toBeUndefined();
  expect(woken).toEqual(["p/c"]);
});
