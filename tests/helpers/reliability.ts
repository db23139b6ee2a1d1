// What the reliability scenarios (tests/reliability/) share: the reduced/full switch, the one-line
// summary each scenario prints, the operator's health endpoints, and the leak check over
// everything a file collected (logs, broker audit, events, statuses and the operator's /metrics).
import { request } from "node:http";
import type { Stack } from "../../tools/stack";
import type { Harness } from "./pipeline-tasks";
import { scanForSecrets } from "./secrets";

/** `npm run test:reliability` sets ATB_RELIABILITY=full; `npm test` runs the reduced sizes. */
export const FULL = process.env.ATB_RELIABILITY === "full";

/** A count for the reduced run and one for the full run. */
export function size(reduced: number, full: number): number {
  return FULL ? full : reduced;
}

/** One line per scenario with the counts it checked. */
export function summary(scenario: string, counts: Record<string, unknown>): void {
  console.log(`[reliability] ${scenario} (${FULL ? "full" : "reduced"}): ${JSON.stringify(counts)}`);
}

/** HTTP status and body of a GET on the operator's metrics/health port (0 when unreachable). */
export function probe(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise(resolve => {
    // agent: false — a fresh connection each time. Node 20's global agent keeps sockets alive and
    // may reuse one just as the server's 5 s keep-alive timeout closes it ("socket hang up").
    const req = request({ host: "127.0.0.1", port, path, timeout: 10_000, agent: false }, res => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", c => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve({ status: 0, body: "" }));
    req.end();
  });
}

/** The operator's /metrics text (a fresh connection; fails the test when unreachable). */
export async function metricsOf(stack: Stack): Promise<string> {
  const r = await probe(stack.metricsPort, "/metrics");
  if (r.status !== 200) throw new Error(`GET /metrics on the operator answered ${r.status || "nothing"}`);
  return r.body;
}

/** The operator process is still the one the stack started (no exit, no crash). */
export function operatorAlive(stack: Stack): boolean {
  const p = stack.operator.process;
  return p.exitCode === null && p.signalCode === null;
}

/** Sum of a counter's samples in Prometheus text, optionally only those whose labels match. */
export function counter(metrics: string, name: string, labels?: RegExp): number {
  let sum = 0;
  for (const line of metrics.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels && !labels.test(line)) continue;
    const v = Number(line.trim().split(/\s+/).pop());
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

/**
 * "Secrets stay secret" (docs/invariants.md) over everything the file collected: the harness's surfaces (operator and broker
 * logs, the broker's audit, events, task statuses) plus the operator's /metrics and any extra
 * texts. Returns the number of texts and secrets scanned, for the summary.
 */
export async function checkNoLeaks(
  h: Harness,
  extra: string[] = [],
  secrets: string[] = h.secrets,
): Promise<{ texts: number; secrets: number; bytes: number }> {
  const texts = [...h.leakSurfaces(), await metricsOf(h.stack), ...extra];
  expect(secrets.length).toBeGreaterThan(3);
  // Findings name the secret by its index; add a short preview so a failure says which one.
  const findings = scanForSecrets(texts, secrets).map(f =>
    f.replace(
      /secret #(\d+)/,
      (m, i: string) => `${m} (${secrets[Number(i)].slice(0, 6)}…, ${secrets[Number(i)].length} chars)`,
    ),
  );
  expect(findings).toEqual([]);
  return { texts: texts.length, secrets: secrets.length, bytes: texts.reduce((n, t) => n + t.length, 0) };
}
