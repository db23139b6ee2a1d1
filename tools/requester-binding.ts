// Requester binding entries for the local stacks, the sandbox and the tests, merged into the
// broker's policy data (data.atb_config.requester_binding.entries, policies/requester.rego) without
// changing anything else in it. The local control plane's admin kubeconfig (a client certificate
// for the user atb-admin in group system:masters, tools/controlplane/cluster.ts) creates the tasks
// of the e2e tests, the sandbox and the benchmarks, claiming agents such as
// spiffe://atb.example.com/agent/planning-agent: LOCAL_ADMIN_BINDING lets exactly that user act as
// exactly those agents. It is never part of the shipped data (policies/data.json,
// samples/broker-data.json), and it binds no group, so no other identity gains anything.
import { readFileSync, writeFileSync } from "node:fs";

/** One entry of data.atb_config.requester_binding.entries (docs/authorization.md, "Holder binding"). */
export interface BindingEntry {
  name: string;
  /** Exact SPIFFE IDs, or prefixes ending in "/*". */
  agents: string[];
  users?: string[];
  groups?: string[];
  /** "<namespace>/<name>" */
  service_accounts?: string[];
}

/** The username of the local control plane's admin client certificate (its CN). */
export const LOCAL_ADMIN_USER = "atb-admin";

/** The local admin may act as the example agents of the tests, samples and benchmarks, and as nothing else. */
export const LOCAL_ADMIN_BINDING: BindingEntry = {
  name: "local-admin (tests and sandbox only)",
  agents: ["spiffe://atb.example.com/agent/*"],
  users: [LOCAL_ADMIN_USER],
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The policy data with the entries appended to requester_binding.entries (created when missing). */
export function withBindingEntries(data: unknown, entries: readonly BindingEntry[]): Record<string, unknown> {
  if (!isRecord(data)) throw new Error("policy data must be a JSON object");
  const config = isRecord(data.atb_config) ? data.atb_config : {};
  const binding = isRecord(config.requester_binding) ? config.requester_binding : {};
  const existing = Array.isArray(binding.entries) ? binding.entries : [];
  return {
    ...data,
    atb_config: { ...config, requester_binding: { ...binding, entries: [...existing, ...entries] } },
  };
}

/** Writes `base` (a policy data file) with the entries merged in to `out`; returns `out`. */
export function writeDataWithBinding(base: string, entries: readonly BindingEntry[], out: string): string {
  const merged = withBindingEntries(JSON.parse(readFileSync(base, "utf8")) as unknown, entries);
  writeFileSync(out, `${JSON.stringify(merged, null, 2)}\n`);
  return out;
}
