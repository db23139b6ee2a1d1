// The operator's own identity on a local control plane (the least-privilege invariant,
// docs/invariants.md): what the sandbox, the e2e and reliability tests and the benchmark run the
// operator as, instead of the admin kubeconfig. For one stack it creates, with the admin
// kubeconfig (the harness sets up; the operator never gets admin):
//   * the RBAC objects `npx pepr build` generates for this module (ServiceAccount, ClusterRole and
//     binding, the store Role and binding), made by Pepr's own generator code
//     (node_modules/pepr/src/lib/assets/rbac.ts, with the capabilities Pepr's build loader reads
//     from pepr.ts and the rbac/rbacMode in package.json, read at run time), only renamed to a
//     per-stack ServiceAccount: jest runs e2e files in parallel on one control plane, and a test
//     that takes a grant away must not take it from the others;
//   * a token for that ServiceAccount from the TokenRequest API (`kubectl create token`);
//   * a kubeconfig holding the plane's server and CA and that token, nothing else.
// Tests may take generated grants away (OperatorGrants.omit), never add any: a rule the operator
// lacks goes into package.json "pepr".rbac (and the table in docs/deployment.md).
//
// Pepr's generator is TypeScript inside node_modules, which jest does not compile: it runs in a
// child process under tsx (this file, run directly), once per process.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import type { Binaries } from "./controlplane/binaries";
import { kubectl } from "./controlplane/cluster";
import { tieGroup, untieGroup } from "./reaper";

const ROOT = join(__dirname, "..");
/** Where `npx pepr build` puts the module's ServiceAccount and namespaced RBAC. */
export const OPERATOR_NAMESPACE = "pepr-system";
/**
 * Lifetime of the operator's token. The API server runs without
 * --service-account-max-token-expiration (tools/controlplane/cluster.ts), so it issues what is
 * asked: a week, longer than any run (the full reliability suite and the benchmark take hours; a
 * sandbox left running is restarted within that). The plane's signing key is thrown away with it.
 */
export const OPERATOR_TOKEN_SECONDS = 7 * 24 * 3600;
const MARKER = "ATB-GENERATED-RBAC ";

export interface RbacRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface RbacObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  rules?: RbacRule[];
  roleRef?: { apiGroup: string; kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

/** One generated grant to take away: a verb on a resource (`agenttasks/status`), of `group` if given. */
export interface GrantRef {
  verb: string;
  resource: string;
  /** API group ("" = core); needed only when the resource name is in several groups. */
  group?: string;
}

export interface OperatorGrants {
  /** Generated grants the operator does not get (to show what breaks without them). */
  omit?: GrantRef[];
}

export const grantName = (g: GrantRef): string =>
  `${g.verb} ${g.group === undefined ? "" : `${g.group || "core"}/`}${g.resource}`;

const isRole = (o: RbacObject): boolean => o.kind === "ClusterRole" || o.kind === "Role";

/**
 * Pepr's RBAC objects for the module's ServiceAccount, renamed for `name`: every name that Pepr
 * derives from the module's (`pepr-<uuid>`, `pepr-<uuid>-store`) is derived from `name` instead,
 * in metadata, roleRef and subjects. Rules are untouched.
 */
export function renamed(objects: RbacObject[], moduleName: string, name: string): RbacObject[] {
  const swap = (n: string) =>
    n === moduleName || n.startsWith(`${moduleName}-`) ? name + n.slice(moduleName.length) : n;
  return objects.map(o => {
    const c = structuredClone(o);
    c.metadata.name = swap(c.metadata.name);
    if (c.roleRef) c.roleRef.name = swap(c.roleRef.name);
    for (const s of c.subjects ?? []) s.name = swap(s.name);
    return c;
  });
}

function matches(rule: RbacRule, g: GrantRef): boolean {
  return (
    (rule.resources ?? []).includes(g.resource) &&
    rule.verbs.includes(g.verb) &&
    (g.group === undefined || (rule.apiGroups ?? []).includes(g.group))
  );
}

/**
 * The objects with the omitted grants taken out of their Roles' rules (a rule left without verbs
 * is dropped). Throws for a grant the generated RBAC does not have, or names ambiguously: a test
 * that removes nothing must not pass for showing that nothing broke.
 */
export function withoutGrants(objects: RbacObject[], omit: GrantRef[] = []): RbacObject[] {
  const out = structuredClone(objects);
  for (const g of omit) {
    const hits = out.filter(isRole).flatMap(o => (o.rules ?? []).filter(r => matches(r, g)));
    if (hits.length === 0)
      throw new Error(
        `operatorGrants.omit: "${grantName(g)}" is not a grant of the generated RBAC (package.json "pepr")`,
      );
    const groups = new Set(hits.flatMap(r => r.apiGroups ?? []));
    if (g.group === undefined && groups.size > 1)
      throw new Error(
        `operatorGrants.omit: "${grantName(g)}" is granted in several API groups (${[...groups].join(", ")}): name the group`,
      );
    for (const o of out.filter(isRole)) {
      o.rules = (o.rules ?? [])
        .map(r => {
          if (!matches(r, g)) return r;
          // A rule over several resources keeps the verb for the others.
          const others = (r.resources ?? []).filter(x => x !== g.resource);
          const split: RbacRule[] = [{ ...r, verbs: r.verbs.filter(v => v !== g.verb), resources: [g.resource] }];
          if (others.length) split.push({ ...r, resources: others });
          return split;
        })
        .flat()
        .filter(r => r.verbs.length > 0);
    }
  }
  return out;
}

/** A kubeconfig with the plane's server and CA and a bearer token: nothing else. */
export function tokenKubeconfig(server: string, caData: string, token: string, user: string): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: atb-local\n  cluster:\n    server: ${server}\n    certificate-authority-data: ${caData}`,
    "users:",
    `- name: ${user}\n  user:\n    token: ${token}`,
    "contexts:",
    `- name: atb-local\n  context:\n    cluster: atb-local\n    user: ${user}`,
    "current-context: atb-local",
    "",
  ].join("\n");
}

interface KubeconfigFile {
  "current-context"?: string;
  contexts?: { name: string; context: { cluster: string; user?: string } }[];
  clusters?: { name: string; cluster: { server: string; "certificate-authority-data"?: string } }[];
}

/** The server and CA of a kubeconfig's current context (the plane's, from the admin kubeconfig). */
export function planeOf(kubeconfigText: string): { server: string; caData: string } {
  const kc = load(kubeconfigText) as KubeconfigFile;
  const ctx = kc.contexts?.find(c => c.name === kc["current-context"])?.context;
  const cluster = kc.clusters?.find(c => c.name === ctx?.cluster)?.cluster;
  if (!cluster?.server || !cluster["certificate-authority-data"])
    throw new Error("the admin kubeconfig's current context has no server with certificate-authority-data");
  return { server: cluster.server, caData: cluster["certificate-authority-data"] };
}

// ---- Pepr's generator, in a child process ------------------------------------------------------

interface Generated {
  moduleName: string;
  objects: RbacObject[];
}

let generated: Promise<Generated> | undefined;

/**
 * The RBAC objects `npx pepr build` writes for this module (ClusterRole, ClusterRoleBinding,
 * ServiceAccount, store Role and RoleBinding, as pepr's generateAllYaml lists them), computed by
 * Pepr's own code from package.json as it is now. Once per process (about 3 s).
 */
export function generatedRbac(): Promise<Generated> {
  generated ??= new Promise<Generated>((resolve, reject) => {
    // In a process group of its own (with the module Pepr's loader forks), tied to this process
    // (tools/reaper.ts): stopped with it however it ends.
    const child = spawn(process.execPath, ["--import", "tsx", __filename, "--print-generated-rbac"], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const pid = child.pid;
    if (pid) tieGroup(pid);
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", reject);
    child.on("exit", code => {
      if (pid) untieGroup(pid);
      const line = out.split("\n").find(l => l.startsWith(MARKER));
      if (code !== 0 || !line) {
        reject(new Error(`Pepr's RBAC generator exited ${code}:\n${(err + out).slice(-3000)}`));
        return;
      }
      resolve(JSON.parse(line.slice(MARKER.length)) as Generated);
    });
  });
  generated.catch(() => (generated = undefined));
  return generated;
}

/** The child: Pepr's loader runs pepr.ts in build mode for its capabilities, then Pepr's rbac.ts. */
async function printGenerated(): Promise<void> {
  // Non-literal specifiers: tsc does not type-check pepr's sources under this project's settings.
  const imp = (p: string): Promise<Record<string, (...a: unknown[]) => unknown>> =>
    import(p) as Promise<Record<string, (...a: unknown[]) => unknown>>;
  const rbac = await imp("pepr/src/lib/assets/rbac");
  const { loadCapabilities } = await imp("pepr/src/lib/assets/loader");
  const { determineRbacMode } = await imp("pepr/src/cli/build/build.helpers");
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    pepr: { uuid: string; rbacMode?: string; rbac?: RbacRule[] };
  };
  // As `pepr build` (src/cli/build/index.ts, src/lib/assets/assets.ts and yaml/generateAllYaml.ts).
  const capabilities = await loadCapabilities(join(ROOT, "pepr.ts"));
  const mode = determineRbacMode({}, pkg);
  const name = `pepr-${pkg.pepr.uuid}`;
  const objects = [
    rbac.clusterRole(name, capabilities, mode, pkg.pepr.rbac),
    rbac.clusterRoleBinding(name),
    rbac.serviceAccount(name),
    rbac.storeRole(name),
    rbac.storeRoleBinding(name),
  ];
  process.stdout.write(`${MARKER}${JSON.stringify({ moduleName: name, objects })}\n`);
}

// ---- One stack's identity ----------------------------------------------------------------------

export interface IdentityOptions {
  bin: Binaries;
  /** The admin kubeconfig: used to set up, never handed to the operator. */
  adminKubeconfig: string;
  /** The per-stack ServiceAccount name (a DNS label). */
  name: string;
  /** Where the operator's kubeconfig is written (mode 0600). */
  dir: string;
  grants?: OperatorGrants;
  tokenSeconds?: number;
}

export interface OperatorIdentity {
  serviceAccount: string;
  namespace: string;
  /** system:serviceaccount:<namespace>:<name>, as the API server (and its audit log) names it. */
  username: string;
  /** The operator's kubeconfig: the plane's server and CA, this ServiceAccount's token. */
  kubeconfig: string;
  /** The RBAC objects as applied (generated, renamed, minus the omitted grants). */
  objects(): RbacObject[];
  /** Re-applies the generated RBAC minus `grants.omit`, and waits until the API server enforces it. */
  setGrants(grants: OperatorGrants): Promise<void>;
  /** Whether the API server lets the ServiceAccount do this (kubectl auth can-i --as). */
  can(verb: string, resource: string, group?: string, name?: string): boolean;
  /** A fresh token in the kubeconfig (for an operator started after this). */
  renewToken(): void;
  /** Deletes the ServiceAccount and its RBAC. */
  remove(): void;
}

export async function createOperatorIdentity(o: IdentityOptions): Promise<OperatorIdentity> {
  const { moduleName, objects: template } = await generatedRbac();
  const base = renamed(template, moduleName, o.name);
  const admin = (args: string[], input?: string) => kubectl(o.bin, o.adminKubeconfig, args, input);
  const sa = base.find(x => x.kind === "ServiceAccount");
  if (!sa) throw new Error("Pepr's generated RBAC has no ServiceAccount");
  const namespace = sa.metadata.namespace ?? OPERATOR_NAMESPACE;
  const username = `system:serviceaccount:${namespace}:${sa.metadata.name}`;
  const plane = planeOf(readFileSync(o.adminKubeconfig, "utf8"));
  mkdirSync(o.dir, { recursive: true });
  const kubeconfig = join(o.dir, `${sa.metadata.name}.kubeconfig`);
  let current: RbacObject[] = [];
  let omitted: GrantRef[] = [];

  const apply = (objs: RbacObject[]) =>
    admin(
      ["apply", "--server-side", "--force-conflicts", "--field-manager=atb-test-harness", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "List", items: objs }),
    );
  const can = (verb: string, resource: string, group?: string, name?: string) => {
    const r = spawnSync(
      o.bin.kubectl,
      [
        `--kubeconfig=${o.adminKubeconfig}`,
        "auth",
        "can-i",
        verb,
        `${resource.split("/")[0]}${group ? `.${group}` : ""}${name ? `/${name}` : ""}`,
        ...(resource.includes("/") ? [`--subresource=${resource.split("/")[1]}`] : []),
        "--all-namespaces",
        `--as=${username}`,
      ],
      { encoding: "utf8" },
    );
    return r.stdout.trim() === "yes";
  };
  /** The group and a resource name of the generated rule that holds g (for can-i). */
  const ruleOf = (g: GrantRef) => {
    const r = base
      .filter(isRole)
      .flatMap(x => x.rules ?? [])
      .find(x => matches(x, g));
    return { group: g.group ?? r?.apiGroups?.[0] ?? "", name: r?.resourceNames?.[0] };
  };
  const untilCan = async (g: GrantRef, want: boolean) => {
    const { group, name } = ruleOf(g);
    const deadline = Date.now() + 30_000;
    while (can(g.verb, g.resource, group, name) !== want) {
      if (Date.now() > deadline)
        throw new Error(`the API server does not enforce "${grantName(g)}" as ${want ? "granted" : "omitted"}`);
      await new Promise(r => setTimeout(r, 200));
    }
  };
  const setGrants = async (grants: OperatorGrants) => {
    const omit = grants.omit ?? [];
    const next = withoutGrants(base, omit);
    apply(next.filter(isRole));
    const changed = [...omitted, ...omit];
    current = next;
    omitted = omit;
    // The API server's authorizer follows RBAC objects through an informer: wait until it agrees.
    for (const g of changed) await untilCan(g, !omit.some(x => grantName(x) === grantName(g)));
  };
  const renewToken = () => {
    const token = admin([
      "create",
      "token",
      sa.metadata.name,
      "-n",
      namespace,
      `--duration=${o.tokenSeconds ?? OPERATOR_TOKEN_SECONDS}s`,
    ]).trim();
    writeFileSync(kubeconfig, tokenKubeconfig(plane.server, plane.caData, token, sa.metadata.name), { mode: 0o600 });
  };

  if (spawnSync(o.bin.kubectl, [`--kubeconfig=${o.adminKubeconfig}`, "get", "namespace", namespace]).status !== 0)
    admin(["create", "namespace", namespace]);
  apply(base.filter(x => !isRole(x)));
  await setGrants(o.grants ?? {});
  // Wait until the API server authorizes the new ServiceAccount at all (one grant it keeps).
  const kept = current.find(x => x.kind === "ClusterRole")?.rules?.[0];
  if (kept)
    await untilCan({ verb: kept.verbs[0], resource: kept.resources?.[0] ?? "", group: kept.apiGroups?.[0] }, true);
  renewToken();
  return {
    serviceAccount: sa.metadata.name,
    namespace,
    username,
    kubeconfig,
    objects: () => structuredClone(current),
    setGrants,
    can,
    renewToken,
    remove() {
      // Best effort, like the rest of a stack's stop: the plane may already be gone.
      for (const x of base) {
        spawnSync(o.bin.kubectl, [
          `--kubeconfig=${o.adminKubeconfig}`,
          "delete",
          x.kind.toLowerCase(),
          x.metadata.name,
          ...(x.metadata.namespace ? ["-n", x.metadata.namespace] : []),
          "--ignore-not-found",
          "--wait=false",
          "--request-timeout=10s",
        ]);
      }
    },
  };
}

if (require.main === module && process.argv.includes("--print-generated-rbac")) {
  printGenerated().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exit(1);
    },
  );
}
