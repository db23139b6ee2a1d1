// The operator runs as itself (the least-privilege invariant, docs/invariants.md):
// tools/operator.ts refuses any kubeconfig whose user is not a ServiceAccount token (the admin's
// client certificate, basic auth, an exec plugin, an impersonation, a token of a non-ServiceAccount
// user), before it starts anything; tools/operator-identity.ts makes the ServiceAccount's RBAC
// with Pepr's own generator (equal to the documented table), renames it per stack without
// touching a rule, and takes away exactly the grants a test omits.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kubeconfigYaml } from "../../tools/controlplane/cluster";
import { documentedGrants, grantDiff, rbacGrants, rbacWildcards, type K8sObject } from "../../tools/manifests";
import { assertOperatorKubeconfig, operatorKubeconfigProblem, startOperator } from "../../tools/operator";
import {
  generatedRbac,
  planeOf,
  renamed,
  tokenKubeconfig,
  withoutGrants,
  type RbacObject,
} from "../../tools/operator-identity";
import { readFileSync } from "node:fs";

const root = join(__dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "atb-identity-"));
const SERVER = "https://127.0.0.1:6443";
const CA = Buffer.from("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n").toString("base64");

/** An unsigned JWT with these claims (the guard reads claims; the API server checks signatures). */
function jwt(claims: object): string {
  const b = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b({ alg: "RS256" })}.${b(claims)}.c2ln`;
}
const SA_TOKEN = jwt({ sub: "system:serviceaccount:pepr-system:atb-operator-local-1", iss: SERVER });

function withUser(user: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    "current-context": "c",
    contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
    clusters: [{ name: "k", cluster: { server: SERVER, "certificate-authority-data": CA } }],
    users: [{ name: "u", user }],
  });
}

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("startOperator takes a ServiceAccount token only", () => {
  test("the admin kubeconfig (a system:masters client certificate) is refused, naming what it has", () => {
    const admin = kubeconfigYaml(SERVER, "CA", "CERT", "KEY");
    expect(operatorKubeconfigProblem(admin)).toBe(
      'user "admin" has client-certificate-data, client-key-data: the operator authenticates with a ServiceAccount token only',
    );
  });

  test.each([
    ["a client certificate file", { "client-certificate": "/x.crt", "client-key": "/x.key" }, /client-certificate/],
    ["basic auth", { username: "admin", password: "secret" }, /username, password/],
    ["an exec plugin", { exec: { command: "aws", apiVersion: "client.authentication.k8s.io/v1" } }, /has exec/],
    ["an auth provider", { "auth-provider": { name: "oidc" } }, /auth-provider/],
    ["a token file", { tokenFile: "/var/run/token" }, /tokenFile/],
    ["a ServiceAccount token with impersonation", { token: SA_TOKEN, as: "admin" }, /has as:/],
    ["impersonated groups", { token: SA_TOKEN, "as-groups": ["system:masters"] }, /as-groups/],
    ["no credentials", {}, /has no token/],
    ["a static token", { token: "s3cr3t-static-token" }, /not a ServiceAccount token/],
    ["a JWT of a user", { token: jwt({ sub: "alice" }) }, /sub claim must be system:serviceaccount/],
    ["a JWT with a malformed sub", { token: jwt({ sub: "system:serviceaccount:only-ns" }) }, /not a ServiceAccount/],
  ])("%s is refused", (_what, user, message) => {
    const problem = operatorKubeconfigProblem(withUser(user));
    expect(problem).toMatch(message);
    // The token itself is never quoted.
    for (const v of Object.values(user)) if (typeof v === "string" && v.length > 8) expect(problem).not.toContain(v);
  });

  test.each([
    ["no current-context", "apiVersion: v1\nkind: Config\n", /no current-context/],
    [
      "a context without a user",
      JSON.stringify({ "current-context": "c", contexts: [{ name: "c", context: {} }] }),
      /names no user/,
    ],
    [
      "an undefined user",
      JSON.stringify({ "current-context": "c", contexts: [{ name: "c", context: { user: "ghost" } }], users: [] }),
      /user "ghost" \(of context "c"\) is not defined/,
    ],
    ["not YAML", "{ unclosed", /is not YAML/],
  ])("a kubeconfig with %s is refused", (_what, text, message) => {
    expect(operatorKubeconfigProblem(text)).toMatch(message);
  });

  test("a ServiceAccount token kubeconfig, as operator-identity writes it, is accepted", () => {
    expect(operatorKubeconfigProblem(withUser({ token: SA_TOKEN }))).toBeUndefined();
    const text = tokenKubeconfig(SERVER, CA, SA_TOKEN, "atb-operator-local-1");
    expect(operatorKubeconfigProblem(text)).toBeUndefined();
    expect(planeOf(text)).toEqual({ server: SERVER, caData: CA });
    expect(() => assertOperatorKubeconfig(file("sa.kubeconfig", text))).not.toThrow();
  });

  test("startOperator refuses the admin kubeconfig before it starts anything", async () => {
    const admin = file("admin.kubeconfig", kubeconfigYaml(SERVER, "CA", "CERT", "KEY"));
    const workDir = join(dir, "never-created");
    await expect(startOperator({ kubeconfig: admin, workDir })).rejects.toThrow(
      /operator kubeconfig ".*admin\.kubeconfig" user "admin" has client-certificate-data.*never with the admin kubeconfig/,
    );
    expect(() => readFileSync(workDir)).toThrow(/ENOENT/);
  });

  test("startOperator refuses a KUBECONFIG in env (it would replace the checked one) and a list of files", async () => {
    const sa = file("sa2.kubeconfig", withUser({ token: SA_TOKEN }));
    const admin = file("admin2.kubeconfig", kubeconfigYaml(SERVER, "CA", "CERT", "KEY"));
    await expect(startOperator({ kubeconfig: sa, workDir: dir, env: { KUBECONFIG: admin } })).rejects.toThrow(
      /env\.KUBECONFIG is not allowed/,
    );
    await expect(startOperator({ kubeconfig: `${sa}:${admin}`, workDir: dir })).rejects.toThrow(/one file only/);
    await expect(startOperator({ kubeconfig: join(dir, "missing"), workDir: dir })).rejects.toThrow(/cannot be read/);
  });
});

describe("the operator's RBAC", () => {
  const base: RbacObject[] = [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "pepr-m" },
      rules: [
        { apiGroups: ["atb.siemens.com"], resources: ["agenttasks/status"], verbs: ["patch"] },
        { apiGroups: [""], resources: ["events", "configmaps"], verbs: ["create", "get"] },
        { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "patch"] },
        { apiGroups: ["extensions"], resources: ["deployments"], verbs: ["get"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "pepr-m" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "pepr-m" },
      subjects: [{ kind: "ServiceAccount", name: "pepr-m", namespace: "pepr-system" }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "pepr-m-store", namespace: "pepr-system" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pepr-m-store" },
      subjects: [{ kind: "ServiceAccount", name: "pepr-m-store", namespace: "pepr-system" }],
    },
  ];

  test("renamed per stack: names, role references and subjects, never a rule", () => {
    const r = renamed(base, "pepr-m", "atb-operator-local-7");
    expect(r.map(o => o.metadata.name)).toEqual([
      "atb-operator-local-7",
      "atb-operator-local-7",
      "atb-operator-local-7-store",
    ]);
    expect(r[1].roleRef?.name).toBe("atb-operator-local-7");
    expect(r[1].subjects?.[0].name).toBe("atb-operator-local-7");
    expect(r[2].subjects?.[0].name).toBe("atb-operator-local-7-store");
    expect(r[0].rules).toEqual(base[0].rules);
    expect(base[0].metadata.name).toBe("pepr-m");
  });

  test("omitting a grant removes exactly that verb on that resource", () => {
    const out = withoutGrants(base, [
      { verb: "patch", resource: "agenttasks/status" },
      { verb: "create", resource: "events" },
    ]);
    expect(out[0].rules).toEqual([
      { apiGroups: [""], resources: ["events"], verbs: ["get"] },
      { apiGroups: [""], resources: ["configmaps"], verbs: ["create", "get"] },
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "patch"] },
      { apiGroups: ["extensions"], resources: ["deployments"], verbs: ["get"] },
    ]);
    expect(out.slice(1)).toEqual(base.slice(1));
    expect(withoutGrants(base, [])).toEqual(base);
  });

  test("omitting a grant that is not generated, or is ambiguous, is an error", () => {
    expect(() => withoutGrants(base, [{ verb: "delete", resource: "agenttasks" }])).toThrow(
      'operatorGrants.omit: "delete agenttasks" is not a grant of the generated RBAC (package.json "pepr")',
    );
    expect(() => withoutGrants(base, [{ verb: "get", resource: "deployments" }])).toThrow(
      /"get deployments" is granted in several API groups \(apps, extensions\): name the group/,
    );
    const out = withoutGrants(base, [{ verb: "get", resource: "deployments", group: "apps" }]);
    expect(out[0].rules?.slice(2)).toEqual([
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["patch"] },
      { apiGroups: ["extensions"], resources: ["deployments"], verbs: ["get"] },
    ]);
  });

  test("Pepr's generator, run on this module, grants exactly the documented table and no wildcard", async () => {
    const { moduleName, objects } = await generatedRbac();
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { pepr: { uuid: string } };
    expect(moduleName).toBe(`pepr-${pkg.pepr.uuid}`);
    expect(objects.map(o => `${o.kind}/${o.metadata.name}`)).toEqual([
      `ClusterRole/${moduleName}`,
      `ClusterRoleBinding/${moduleName}`,
      `ServiceAccount/${moduleName}`,
      `Role/${moduleName}-store`,
      `RoleBinding/${moduleName}-store`,
    ]);
    const docs = renamed(objects, moduleName, "atb-operator-local-9") as unknown as K8sObject[];
    expect(rbacWildcards(docs)).toEqual([]);
    const markdown = readFileSync(join(root, "docs", "deployment.md"), "utf8");
    expect(grantDiff(rbacGrants(docs, "atb-operator-local-9"), documentedGrants(markdown))).toEqual({
      undocumented: [],
      missing: [],
    });
  }, 60_000);
});
