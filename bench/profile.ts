// ATB_BENCH_PROFILE=1: the operator runs with node --cpu-prof; this sums the self time in its
// profile files by area (a package under node_modules, a node: module, a file of this repository)
// and by function, for the results.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { round } from "./measure";
import type { ProfileEntry, ProfileSummary } from "./results";

const ROOT = join(__dirname, "..");

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  timeDeltas: number[];
}

/** The package (scoped packages with their scope), the node: module, or the repository file. */
function areaOf(cf: CallFrame): string {
  const url = cf.url.replace(/^file:\/\//, "");
  if (!url) return `(${cf.functionName || "native"})`;
  if (url.includes("node_modules/")) {
    const parts = url.split("node_modules/").pop()!.split("/");
    return parts.slice(0, url.includes("node_modules/@") ? 2 : 1).join("/");
  }
  return url.startsWith("node:") ? url : url.replace(`${ROOT}/`, "");
}

/** Self time by package/file and by function, from the operator's --cpu-prof files. */
export function summarizeProfiles(dir: string): ProfileSummary | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter(f => f.endsWith(".cpuprofile"));
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, us: number) => m.set(k, (m.get(k) ?? 0) + us);
  let total = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), "utf8")) as CpuProfile;
    const node = new Map(p.nodes.map(n => [n.id, n.callFrame]));
    p.samples.forEach((id, i) => {
      const us = p.timeDeltas[i] ?? 0;
      const cf = node.get(id)!;
      const area = areaOf(cf);
      total += us;
      add(byArea, area, us);
      add(byFn, `${cf.functionName || "(anonymous)"} ${area}:${cf.lineNumber + 1}`, us);
    });
  }
  const top = (m: Map<string, number>, n: number): ProfileEntry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => ({ where: k, seconds: round(v / 1e6, 2), share: round(v / total, 3) }));
  return {
    files: files.length,
    totalSeconds: round(total / 1e6, 2),
    byArea: top(byArea, 20),
    byFunction: top(byFn, 25),
  };
}
