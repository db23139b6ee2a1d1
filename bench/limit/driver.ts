// The benchmark's side of the same-run limit: forks bench/limit/worker.ts under tsx with the
// limit's own identity, collects the errors of tasks it could not finish, asks for its own
// request counts, and stops it.
import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { tieProcess, untieProcess } from "../../tools/reaper";
import type { FromLimit, LimitInit, LimitStats, ToLimit } from "./protocol";

const ROOT = join(__dirname, "..", "..");

export class LimitDriver {
  private readonly waiting = new Map<string, (m: FromLimit) => void>();
  /** Tasks the limit could not finish, with their error (the first few are logged). */
  readonly errors: string[] = [];

  private constructor(readonly child: ChildProcess) {
    child.on("message", (m: FromLimit) => {
      if (m.type === "done" && m.error) this.errors.push(`${m.name}: ${m.error}`);
      const w = this.waiting.get(m.type);
      if (w) {
        this.waiting.delete(m.type);
        w(m);
      }
    });
  }

  static async start(init: LimitInit): Promise<LimitDriver> {
    const child = fork(join(__dirname, "worker.ts"), [], {
      execArgv: ["--import", "tsx"],
      cwd: ROOT,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    // Stopped with the bench however it ends (a SIGKILL included).
    const pid = child.pid;
    if (pid) {
      tieProcess(pid);
      child.once("exit", () => untieProcess(pid));
    }
    const l = new LimitDriver(child);
    const ready = l.next("ready");
    let onExit: ((code: number | null) => void) | undefined;
    const exited = new Promise<never>((_, reject) => {
      onExit = code => reject(new Error(`the limit process exited (${code}) before it was ready`));
      child.once("exit", onExit);
    });
    l.send(init);
    try {
      await Promise.race([ready, exited]);
    } finally {
      child.off("exit", onExit!);
    }
    return l;
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(m: ToLimit): void {
    this.child.send(m);
  }

  private next(type: FromLimit["type"]): Promise<FromLimit> {
    return new Promise(r => this.waiting.set(type, r));
  }

  async stats(): Promise<LimitStats> {
    const p = this.next("stats");
    this.send({ type: "stats" });
    const m = await p;
    return m.type === "stats" ? m.stats : { tasks: 0, requests: {}, conflicts: 0 };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise(r => this.child.once("exit", r));
    this.send({ type: "exit" });
    const t = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
  }
}
