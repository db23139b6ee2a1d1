// A small test client for the real API server: kubectl for writes and reads (so errors are the
// API server's own messages), and raw HTTPS for what kubectl hides (Table responses).
import { spawnSync } from "node:child_process";
import type { Binaries } from "../../tools/controlplane/binaries";

export interface KubeResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

export class Kube {
  constructor(
    readonly bin: Binaries,
    readonly kubeconfig: string,
  ) {}

  /** Runs kubectl; returns the result without throwing. */
  try(args: string[], input?: string): KubeResult {
    const r = spawnSync(this.bin.kubectl, [`--kubeconfig=${this.kubeconfig}`, ...args], {
      input,
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    return { ok: r.status === 0, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  run(args: string[], input?: string): string {
    const r = this.try(args, input);
    if (!r.ok) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  apply(file: string): string {
    return this.run(["apply", "--server-side", "-f", file]);
  }

  /** kubectl create -f - with a JSON object; returns the result (creation may be meant to fail). */
  create(obj: object): KubeResult {
    return this.try(["create", "-f", "-", "-o", "json"], JSON.stringify(obj));
  }

  applyObject(obj: object): string {
    return this.run(["apply", "-f", "-"], JSON.stringify(obj));
  }

  get<T = Record<string, unknown>>(kind: string, name: string, namespace?: string): T {
    const ns = namespace ? ["-n", namespace] : [];
    return JSON.parse(this.run(["get", kind, name, ...ns, "-o", "json"])) as T;
  }

  raw(path: string): unknown {
    return JSON.parse(this.run(["get", "--raw", path]));
  }

  namespace(name: string): void {
    this.try(["create", "namespace", name]);
  }
}

/** Polls fn until it returns a value other than undefined, or fails after timeoutMs. */
export async function eventually<T>(what: string, timeoutMs: number, fn: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise(r => setTimeout(r, 250));
  }
}
