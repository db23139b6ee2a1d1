import { FollowUps } from "../../capabilities/lib/runtime/follow-ups";

/** A job that ends when its release() is called. */
function gate() {
  let release!: () => void;
  const ended = new Promise<void>(r => (release = r));
  let started = false;
  const job = async () => {
    started = true;
    await ended;
  };
  return { job, release, started: () => started };
}

const tick = () => new Promise(r => setImmediate(r));

describe("FollowUps", () => {
  test("run() resolves once the job has started, not when it ends", async () => {
    const lane = new FollowUps(2, () => {});
    const g = gate();
    await lane.run(g.job);
    expect(g.started()).toBe(true);
    expect(lane.inFlight).toBe(1);
    g.release();
    await lane.idle();
    expect(lane.inFlight).toBe(0);
  });

  test("at most `limit` run at once; a caller past the limit waits for a free slot", async () => {
    const lane = new FollowUps(2, () => {});
    const [a, b, c] = [gate(), gate(), gate()];
    await lane.run(a.job);
    await lane.run(b.job);
    let thirdStarted = false;
    const third = lane.run(c.job).then(() => (thirdStarted = true));
    await tick();
    expect(c.started()).toBe(false);
    expect(thirdStarted).toBe(false);
    expect(lane.inFlight).toBe(2);
    a.release();
    await third;
    expect(c.started()).toBe(true);
    expect(lane.inFlight).toBe(2);
    b.release();
    c.release();
    await lane.idle();
    expect(lane.inFlight).toBe(0);
  });

  test("idle() waits for every job, including those that waited for a slot", async () => {
    const lane = new FollowUps(1, () => {});
    const order: string[] = [];
    const [a, b] = [gate(), gate()];
    await lane.run(async () => {
      await a.job();
      order.push("a");
    });
    const second = lane.run(async () => {
      await b.job();
      order.push("b");
    });
    let idle = false;
    const waiting = lane.idle().then(() => (idle = true));
    a.release();
    await second;
    await tick();
    expect(idle).toBe(false);
    b.release();
    await waiting;
    expect(order).toEqual(["a", "b"]);
  });

  test("a job that throws or rejects is reported and frees its slot", async () => {
    const errors: unknown[] = [];
    const lane = new FollowUps(1, err => errors.push(err));
    await lane.run(() => {
      throw new Error("sync");
    });
    await lane.run(() => Promise.reject(new Error("async")));
    await lane.idle();
    expect(errors.map(e => (e as Error).message)).toEqual(["sync", "async"]);
    expect(lane.inFlight).toBe(0);
  });

  test("drain() gives up after its time and says so", async () => {
    const lane = new FollowUps(1, () => {});
    const g = gate();
    await lane.run(g.job);
    expect(await lane.drain(20)).toBe(false);
    g.release();
    expect(await lane.drain(1000)).toBe(true);
  });

  test("the limit is a whole number >= 1", () => {
    expect(() => new FollowUps(0, () => {})).toThrow(/limit must be >= 1/);
    expect(() => new FollowUps(1.5, () => {})).toThrow(/limit must be >= 1/);
  });
});
