// Starts the Pepr module as a child process against a control plane (the way it runs in a
// cluster: its own process, its own logs), waits for /healthz, and stops it. Logs go to a file
// so tests can scan them (for example for leaked tokens). The operator runs in a process group of
// its own, tied to the process that started it (tools/reaper.ts): if that one dies without
// stopping it, its watchdog does.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, closeSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { delimiter, join } from "node:path";
import { load } from "js-yaml";
import { ensureCA, issueCert } from "../broker/pki";
import { freePort } from "./controlplane/cluster";
import { tieGroup, untieGroup } from "./reaper";

const ROOT = join(__dirname, "..");

export interface OperatorHandle {
  port: number;
  apiPath: string;
  logFile: string;
  caFile: string;
  process: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface OperatorOptions {
  /**
   * The operator's kubeconfig: a ServiceAccount token and nothing else (tools/operator-identity.ts
   * makes one); anything else is refused, so no test hands the operator admin by mistake.
   */
  kubeconfig: string;
  workDir: string;
  env?: Record<string, string>;
  /** PEPR_MODE=dev (admission + watch in one process) or watch-only. */
  mode?: "dev" | "watch";
  timeoutMs?: number;
  /** Fixed port (a restarted operator keeps its webhook URL); a free one otherwise. */
  port?: number;
  /** Fixed admission path (likewise). */
  apiPath?: string;
  /**
   * What runs: the TypeScript sources under tsx's loader (default: what the tests exercise), or the
   * bundle `pepr build` wrote (BUNDLE: the module as it ships, under plain node; build it first with
   * `npm run build`). The benchmark measures the bundle.
   */
  entry?: "source" | "bundle";
  /** Extra node flags (e.g. --cpu-prof, which NODE_OPTIONS does not accept). */
  nodeArgs?: string[];
}

/** The module bundle `npm run build` writes (Pepr and its client inside; express, pino and the rest from node_modules). */
export const BUNDLE = join(ROOT, "dist", "pepr-atb-operator.js");

function healthz(port: number, ca: Buffer): Promise<boolean> {
  return new Promise(resolve => {
    const req = request(
      { host: "127.0.0.1", port, path: "/healthz", ca, servername: "localhost", timeout: 2000 },
      res => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** The operator's node process, in a group of its own tied to this process; kill() signals the group. */
function spawnTied(args: string[], env: NodeJS.ProcessEnv, logFd: number) {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", logFd, logFd], detached: true });
  const pid = child.pid;
  if (pid) {
    tieGroup(pid);
    child.once("exit", () => untieGroup(pid));
  }
  const kill = (signal: NodeJS.Signals) => {
    try {
      if (pid) process.kill(-pid, signal);
    } catch {
      child.kill(signal);
    }
  };
  return { child, kill };
}

/** Ways a kubeconfig user authenticates or elevates other than with a bearer token. */
const NOT_A_TOKEN = [
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "username",
  "password",
  "exec",
  "auth-provider",
  "tokenFile",
  "token-file",
  "as",
  "as-uid",
  "as-groups",
  "as-user-extra",
];

interface KubeconfigUsers {
  "current-context"?: string;
  contexts?: { name?: string; context?: { user?: string } }[];
  users?: { name?: string; user?: Record<string, unknown> }[];
}

/**
 * Why this kubeconfig (its text) may not be handed to the operator, or undefined when its current
 * user is a ServiceAccount token only: a bearer token whose claims name a ServiceAccount
 * (`sub: system:serviceaccount:<namespace>:<name>`). The token's signature is the API server's
 * to check; this only keeps the harness from handing over the admin's client certificate, a
 * password, an exec plugin or an impersonation. The message never quotes the token.
 */
export function operatorKubeconfigProblem(text: string): string | undefined {
  const found = currentUser(text);
  if (typeof found === "string") return found;
  const { name, user } = found;
  const other = NOT_A_TOKEN.filter(k => user[k] !== undefined && user[k] !== "" && user[k] !== null);
  if (other.length)
    return `user "${name}" has ${other.join(", ")}: the operator authenticates with a ServiceAccount token only`;
  if (typeof user.token !== "string" || !user.token) return `user "${name}" has no token`;
  if (!/^system:serviceaccount:[^:]+:[^:]+$/.test(jwtSubject(user.token) ?? ""))
    return `user "${name}": the token is not a ServiceAccount token (its sub claim must be system:serviceaccount:<namespace>:<name>)`;
  return undefined;
}

/** The current context's user, or what is wrong with the kubeconfig. */
function currentUser(text: string): { name: string; user: Record<string, unknown> } | string {
  let kc: KubeconfigUsers;
  try {
    kc = load(text) as KubeconfigUsers;
  } catch {
    return "is not YAML";
  }
  if (!kc || typeof kc !== "object") return "is not a kubeconfig";
  const current = kc["current-context"];
  if (!current) return "has no current-context";
  const name = kc.contexts?.find(c => c.name === current)?.context?.user;
  if (!name) return `context "${current}" names no user`;
  const user = kc.users?.find(u => u.name === name)?.user;
  return user ? { name, user } : `user "${name}" (of context "${current}") is not defined`;
}

/** The sub claim of a compact JWS, unverified; undefined if it is none. */
function jwtSubject(token: string): string | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const sub = (JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8")) as { sub?: unknown }).sub;
    return typeof sub === "string" ? sub : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Throws unless the file is a ServiceAccount-token kubeconfig (operatorKubeconfigProblem) and
 * nothing in env replaces it.
 */
export function assertOperatorKubeconfig(path: string, env: Record<string, string> = {}): void {
  if (env.KUBECONFIG !== undefined) throw new Error("startOperator: env.KUBECONFIG is not allowed; pass kubeconfig");
  if (path.includes(delimiter)) throw new Error(`operator kubeconfig "${path}": one file only, not a list`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(
      `operator kubeconfig "${path}" cannot be read: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const problem = operatorKubeconfigProblem(text);
  if (problem)
    throw new Error(
      `operator kubeconfig "${path}" ${problem}. The operator runs as its own ServiceAccount with the generated RBAC ` +
        "(tools/operator-identity.ts), never with the admin kubeconfig",
    );
}

export async function startOperator(o: OperatorOptions): Promise<OperatorHandle> {
  assertOperatorKubeconfig(o.kubeconfig, o.env);
  mkdirSync(o.workDir, { recursive: true });
  const ca = ensureCA(join(o.workDir, "pki"), "ca", "atb-operator test serving CA");
  const serving = issueCert(join(o.workDir, "pki"), ca, "pepr", {
    cn: "localhost",
    dns: ["localhost"],
    ips: ["127.0.0.1"],
    usage: "server",
  });
  const port = o.port ?? (await freePort());
  const apiPath = o.apiPath ?? randomBytes(16).toString("hex");
  const logFile = join(o.workDir, `operator-${port}.log`);
  const fd = openSync(logFile, "a");
  const env = {
    ...process.env,
    KUBECONFIG: o.kubeconfig,
    SSL_KEY_PATH: serving.key,
    SSL_CERT_PATH: serving.cert,
    ATB_PEPR_PORT: String(port),
    PEPR_RESYNC_FAILURE_MAX: "1000",
    // One Reconcile queue per kind, as the built module's env (package.json "pepr".env) sets it.
    PEPR_RECONCILE_STRATEGY: "kind",
    PINO_TIME_STAMP: "iso",
    LOG_LEVEL: "info",
    ...(o.mode === "watch" ? { PEPR_WATCH_MODE: "true" } : { PEPR_MODE: "dev", PEPR_API_PATH: apiPath }),
    ...o.env,
  };
  // One process (node, with tsx's loader for the sources), so a signal reaches the operator itself,
  // not a wrapper.
  if (o.entry === "bundle" && !existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: npm run build`);
  const args = o.entry === "bundle" ? [BUNDLE] : ["--import", "tsx", join(ROOT, "pepr.ts")];
  const { child, kill } = spawnTied([...(o.nodeArgs ?? []), ...args], env, fd);
  closeSync(fd);
  const caPem = readFileSync(ca.cert);
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  const logs = () => readFileSync(logFile, "utf8");
  while (!(await healthz(port, caPem))) {
    if (child.exitCode !== null) throw new Error(`operator exited with ${child.exitCode}:\n${logs().slice(-3000)}`);
    if (Date.now() > deadline) {
      kill("SIGKILL");
      throw new Error(`operator not healthy after ${(o.timeoutMs ?? 60_000) / 1000}s:\n${logs().slice(-3000)}`);
    }
    await new Promise(r => setTimeout(r, 200));
  }
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise(r => child.once("exit", r));
    kill(signal);
    const timer = setTimeout(() => kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { port, apiPath, logFile, caFile: ca.cert, process: child, logs, stop };
}
