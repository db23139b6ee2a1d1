// Polling helpers for start-up: a bounded wait with a liveness check, and the API server's
// /readyz probe over the admin client certificate.
import { request } from "node:https";
import { readFileSync } from "node:fs";
import type { CertPaths } from "../../broker/pki";

/** Polls probe every 150 ms until it returns true; check() may throw to abort early. */
export async function waitFor(
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
  check: () => void = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    check();
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise(r => setTimeout(r, 150));
  }
}

/** GET /readyz with the admin certificate; true on 200. */
export function kubeReady(server: string, k: { ca: CertPaths; admin: CertPaths }): Promise<boolean> {
  return new Promise(resolve => {
    const req = request(
      `${server}/readyz`,
      { ca: readFileSync(k.ca.cert), cert: readFileSync(k.admin.cert), key: readFileSync(k.admin.key), timeout: 2000 },
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
