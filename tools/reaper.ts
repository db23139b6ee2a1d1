// Nothing outlives the process that started it. The control plane components and the operator
// run detached in process groups of their own (so they can be stopped as a whole, and so a
// terminal's Ctrl-C does not cut a component down halfway through an orderly stop); that also
// means nothing stops them when their starter dies without cleaning up: a Ctrl-C on a jest run
// (globalTeardown does not run), a SIGKILL, a crash. So whatever a process starts is "tied" to
// it here: a watchdog (tools/watchdog.mjs), detached, reads a pipe from this process, and when
// the pipe closes (the kernel closes it whatever way this process ends) it stops every group and
// process still tied and removes the tied files and folders. There is one watchdog per process
// while something is tied; it exits once everything has been untied (stopped the ordinary way).
//
// Also the /proc helpers tools/test.ts uses to find every process a test run started, by an
// environment variable they all inherit.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";

type Kind = "group" | "pid" | "path";

let watchdog: ChildProcess | undefined;
/** Watchdogs started in place of one that died: bounded, in case none can run at all. */
let replacements = 0;
const MAX_REPLACEMENTS = 5;
/** Everything tied and not untied, by "kind:id". */
const tied = new Map<string, { kind: Kind; id: number | string }>();

const line = (op: "tie" | "untie", kind: Kind, id: number | string) => `${JSON.stringify({ op, kind, id })}\n`;

function startWatchdog(): ChildProcess {
  const child = spawn(process.execPath, [join(__dirname, "watchdog.mjs"), String(process.pid)], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
  });
  // Neither the watchdog nor its pipe may keep this process alive.
  child.unref();
  const pipe = child.stdin as unknown as Socket;
  pipe.unref();
  // A watchdog that could not start, or died early (killed by hand), must not crash its owner
  // (an unhandled 'error' event, EPIPE); while something is tied, a replacement takes over.
  const lost = () => {
    if (watchdog !== child) return;
    watchdog = undefined;
    if (tied.size > 0 && replacements++ < MAX_REPLACEMENTS) watchdog = startWatchdog();
  };
  child.on("error", err => {
    console.error(`[reaper] watchdog: ${err.message}`);
    lost();
  });
  child.on("exit", lost);
  pipe.on("error", lost);
  // A replacement for a lost watchdog takes over everything still tied.
  for (const t of tied.values()) pipe.write(line("tie", t.kind, t.id));
  return child;
}

function send(op: "tie" | "untie", kind: Kind, id: number | string): void {
  const key = `${kind}:${id}`;
  if (op === "tie") {
    if (tied.has(key)) return;
    tied.set(key, { kind, id });
    if (!watchdog) {
      watchdog = startWatchdog(); // sends what is tied, this one included
      return;
    }
  } else if (!tied.delete(key)) return;
  watchdog?.stdin?.write(line(op, kind, id));
  if (tied.size === 0 && watchdog) {
    // Nothing left to guard: ending the pipe lets the watchdog exit (there is nothing to stop).
    watchdog.stdin?.end();
    watchdog = undefined;
  }
}

/** Stop this process group (SIGTERM, then SIGKILL) when this process is gone. */
export const tieGroup = (pgid: number): void => send("tie", "group", pgid);
/** Stop this one process when this process is gone (a child in our own process group). */
export const tieProcess = (pid: number): void => send("tie", "pid", pid);
/** Remove this file or folder when this process is gone, after the tied processes have stopped. */
export const tiePath = (path: string): void => send("tie", "path", path);
export const untieGroup = (pgid: number): void => send("untie", "group", pgid);
export const untieProcess = (pid: number): void => send("untie", "pid", pid);
export const untiePath = (path: string): void => send("untie", "path", path);

/** Fields of /proc/<pid>/stat after the command name (state first); undefined when gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Start time of a process (tells it from a later process that reuses its pid), if known. */
export function processStart(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Alive and not a zombie (a zombie whose parent is gone may never be reaped in a container). */
export function running(pid: number): boolean {
  const f = statFields(pid);
  return f !== undefined && f[0] !== "Z";
}

export interface MarkedProcess {
  pid: number;
  /** The value of the variable in the process's environment. */
  value: string;
  /** Command line, for messages. */
  command: string;
}

function environ(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  } catch {
    return [];
  }
}

/**
 * Running processes (not this one) whose environment, as they started, has the variable `name`.
 * Every process a run starts inherits it unless a spawner drops the environment, so this finds
 * them after their parents are gone. Empty where there is no /proc.
 */
export function processesWithEnv(name: string): MarkedProcess[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter(e => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const prefix = `${name}=`;
  const found: MarkedProcess[] = [];
  for (const e of entries) {
    const pid = Number(e);
    if (pid === process.pid || !running(pid)) continue;
    const v = environ(pid).find(x => x.startsWith(prefix));
    if (v === undefined) continue;
    let command = "";
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    } catch {
      continue;
    }
    found.push({ pid, value: v.slice(prefix.length), command });
  }
  return found;
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/**
 * Stops the processes `list()` returns: waits up to `waitMs` for them to go on their own (their
 * watchdogs' orderly stop), then SIGKILLs what is left. Returns the commands it had to kill.
 */
export async function stopRemaining(list: () => MarkedProcess[], waitMs: number): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  while (list().length > 0 && Date.now() < deadline) await sleep(200);
  const left = list();
  for (const p of left) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      /* gone meanwhile */
    }
  }
  for (const end = Date.now() + 5_000; list().length > 0 && Date.now() < end; ) await sleep(100);
  return left.map(p => `${p.pid} ${p.command.slice(0, 120)}`);
}
