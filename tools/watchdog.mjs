// The watchdog behind tools/reaper.ts: a small detached process, one per process that started
// long-running children (control plane components, operators, OPA, a jest run). Its owner writes
// one JSON line per change on its stdin: {"op":"tie"|"untie","kind":"group"|"pid"|"path","id":...}.
// When stdin ends, the owner is gone, however it ended (exit, signal, SIGKILL, crash: the kernel
// closes the pipe), and nothing else holds the pipe's write end. The watchdog then stops every
// group and process still tied (SIGTERM, SIGKILL after a grace period), removes the tied files and folders
// and exits. It runs in a session of its own, so a terminal's Ctrl-C or a signal to the owner's
// process group does not reach it before its work is done.
//
// Plain JavaScript on purpose: it starts in tens of milliseconds under plain node, without a loader.
import { readFileSync, readdirSync, rmSync } from "node:fs";

// Short on purpose: this is the path for an owner that died, not an orderly stop. Stopped by
// SIGTERM together, kube-apiserver drains its watches and etcd waits for those streams, so both
// take longer than this and end with SIGKILL; the data they leave is thrown away.
const TERM_GRACE_MS = 2_000;
const KILL_GRACE_MS = 3_000;

/** Fields after the command name in /proc/<pid>/stat (state first), or undefined when gone. */
function statFields(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

const hasProc = statFields(process.pid) !== undefined;
/** Start time (clock ticks since boot): tells a process from a later one that reuses its pid. */
const startOf = pid => statFields(pid)?.[19];

/** The process's pid or group id no longer names what was tied: it exited and was reused. */
function reused(entry) {
  if (!hasProc || entry.start === undefined) return false;
  const now = startOf(entry.id);
  return now !== undefined && now !== entry.start;
}

/** Live (not zombie) members of a process group; zombies wait for a parent that may never reap them. */
function groupMembers(pgid) {
  if (!hasProc) {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const members = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(name);
    if (f && f[0] !== "Z" && Number(f[2]) === pgid) members.push(Number(name));
  }
  return members;
}

function processAlive(pid) {
  if (hasProc) {
    const f = statFields(pid);
    return f !== undefined && f[0] !== "Z";
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const tied = { group: new Map(), pid: new Map(), path: new Set() };

function apply(line) {
  let m;
  try {
    m = JSON.parse(line);
  } catch {
    return;
  }
  if (m.kind === "path") {
    if (m.op === "tie") tied.path.add(String(m.id));
    else tied.path.delete(String(m.id));
    return;
  }
  const table = tied[m.kind];
  if (!table || !Number.isInteger(m.id) || m.id <= 1) return;
  if (m.op === "tie") table.set(m.id, { id: m.id, start: startOf(m.id) });
  else table.delete(m.id);
}

function signal(sig) {
  for (const e of tied.group.values()) {
    try {
      process.kill(-e.id, sig);
    } catch {
      /* the group is gone */
    }
  }
  for (const e of tied.pid.values()) {
    try {
      process.kill(e.id, sig);
    } catch {
      /* the process is gone */
    }
  }
}

function remaining() {
  return (
    [...tied.group.values()].some(e => groupMembers(e.id).length > 0) ||
    [...tied.pid.values()].some(e => processAlive(e.id))
  );
}

async function waitGone(ms) {
  const deadline = Date.now() + ms;
  while (remaining() && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
}

let reaping = false;
async function reap() {
  if (reaping) return;
  reaping = true;
  // Never signal a pid that now belongs to another process.
  for (const table of [tied.group, tied.pid]) for (const [id, e] of table) if (reused(e)) table.delete(id);
  signal("SIGTERM");
  await waitGone(TERM_GRACE_MS);
  if (remaining()) {
    signal("SIGKILL");
    await waitGone(KILL_GRACE_MS);
  }
  for (const path of tied.path) rmSync(path, { recursive: true, force: true });
  process.exit(0);
}

let pending = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", chunk => {
  pending += chunk;
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) apply(line);
});
process.stdin.on("end", () => void reap());
process.stdin.on("error", () => void reap());
// Someone stopping the watchdog itself still gets the cleanup it exists for.
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(sig, () => void reap());
