// The Python virtualenv the e2e tests run Python with: <repo>/.venv with clients/python/requirements.txt
// installed by the docs' own setup block (docs/agents.md, `<!-- test:python-setup -->`), re-created
// only when the requirements or the python3 version change (a stamp file inside .venv says which).
// Several e2e files need it and jest runs them in parallel, so it is prepared under a cross-process
// lock; withLock also guards the Go client's build cache (tests/e2e/clients.test.ts).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

export const ROOT = join(__dirname, "..", "..");
export const AGENTS_DOC = join(ROOT, "docs", "agents.md");
export const VENV_PYTHON = join(ROOT, ".venv", "bin", "python");
const VENV_STAMP = join(ROOT, ".venv", ".atb-clients-requirements.sha256");

/** Shared by every e2e run on this machine: the venv lock and the Go client's build cache. */
export const cacheRoot = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "atb-operator", "clients");

export function sha256(...parts: (string | Buffer)[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** The code of the fenced block that follows `<!-- test:ID -->` in docs/agents.md. */
export function docBlock(id: string): string {
  const text = readFileSync(AGENTS_DOC, "utf8");
  const m = new RegExp(`<!-- test:${id} -->\\s*\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\``).exec(text);
  if (!m?.[1]) throw new Error(`docs/agents.md has no block marked <!-- test:${id} -->`);
  return m[1];
}

/** Whether the process that holds a lock still runs (true while its pid file is being written). */
export function lockOwnerAlive(dir: string): boolean {
  let owner = 0;
  try {
    owner = Number(readFileSync(join(dir, "pid"), "utf8"));
  } catch {
    // No pid file: being written right now, or left by a process that died in between.
    try {
      return Date.now() - statSync(dir).mtimeMs < 30_000;
    } catch {
      return false;
    }
  }
  if (!owner) return true;
  try {
    process.kill(owner, 0);
    return true;
  } catch {
    return false;
  }
}

/** A cross-process lock (mkdir is atomic): other e2e runs on this machine share .venv and the Go cache. */
export async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(dir), { recursive: true });
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, "pid"), String(process.pid));
      break;
    } catch {
      if (!lockOwnerAlive(dir)) rmSync(dir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`could not take the lock ${dir}`);
      await new Promise(r => setTimeout(r, 1_000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Output {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program in the repository folder without a shell; never throws for a non-zero exit. */
function run(cmd: string, args: string[], timeoutMs: number, logFile?: string): Promise<Output> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", err => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", code => {
      clearTimeout(timer);
      if (logFile) writeFileSync(logFile, `$ ${cmd} ${args.join(" ")}\n${stdout}\n${stderr}`);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Makes .venv/bin/python ready: runs docs/agents.md's python-setup block (bash, repository folder)
 * unless the stamp says .venv already holds these requirements for this python3. Its output goes
 * to <logDir>/python-setup.log.
 */
export async function ensureVenv(logDir: string, progress: (line: string) => void): Promise<void> {
  const req = readFileSync(join(ROOT, "clients", "python", "requirements.txt"));
  const version = (await run("python3", ["--version"], 60_000)).stdout.trim();
  const want = sha256(req, version);
  await withLock(join(cacheRoot, `venv-${sha256(ROOT).slice(0, 12)}.lock`), async () => {
    if (existsSync(VENV_PYTHON) && existsSync(VENV_STAMP) && readFileSync(VENV_STAMP, "utf8").trim() === want) {
      progress(`Python virtualenv .venv is up to date (${version})`);
      return;
    }
    const t0 = Date.now();
    progress(
      `creating the Python virtualenv .venv and installing clients/python/requirements.txt (${version}; about a minute on a cold machine)...`,
    );
    const script = ["set -euo pipefail", docBlock("python-setup")].join("\n");
    const r = await run("bash", ["-c", script], 15 * 60_000, join(logDir, "python-setup.log"));
    if (r.code !== 0)
      throw new Error(`python-setup failed (exit ${r.code}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
    writeFileSync(VENV_STAMP, `${want}\n`);
    progress(`Python virtualenv ready in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  });
}
