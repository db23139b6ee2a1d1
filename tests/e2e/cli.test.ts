// The atb CLI as a user runs it, against the whole product on the real control plane: the shim
// (clients/cli/bin/atb.mjs) as a child process, in a real pseudo-terminal (Python's pty module)
// where it asks for confirmation, as the kubectl plugin kubectl-atb (a symlink on PATH, run by
// kubectl), and through `npx atb` in the repository.
// GIVEN a HIGH deploy whose PoA carries no approvals, waiting for approval, WHEN approvers run
// `atb approve` THEN "no" creates nothing, an approver the broker does not know does not count,
// alice's and bob's approvals (made by the CLI, signed with their own keys) move it to Completed,
// and a finished task is refused. `atb plan -f` prints the digest the clients compute, the tier and
// the diff; `atb explain` says why a task is where it is.
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { promisify } from "node:util";
import { dump } from "js-yaml";
import { generateDevKeys } from "../../broker/poa";
import { planeOf, tokenKubeconfig } from "../../tools/operator-identity";
import { taskChangeSha256 } from "../../tools/task-change";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually } from "../helpers/kube";
import { AGENT, Harness, type Task } from "../helpers/pipeline-tasks";

const h = new Harness(e2eCluster(), "cli", "stack-cli");
const root = join(__dirname, "..", "..");
const SHIM = join(root, "clients", "cli", "bin", "atb.mjs");
const dir = join(e2eCluster().dataDir, "cli-test");
const keys: Record<string, string> = {};
const PAYLOAD = { image: "nginx:1.28" };
const TARGET = { kind: "Deployment", name: "web", namespace: "cli" };
const kubeconfigs: Record<string, string> = {};

/** A kubeconfig holding only a TokenRequest token of the ServiceAccount (the plane's server and CA). */
function serviceAccountKubeconfig(sa: string): string {
  const token = h.kube.run(["create", "token", sa, "-n", h.ns, "--duration=3600s"]).trim();
  const plane = planeOf(readFileSync(e2eCluster().kubeconfig, "utf8"));
  const file = join(dir, `${sa}.kubeconfig`);
  writeFileSync(file, tokenKubeconfig(plane.server, plane.caData, token, sa), { mode: 0o600 });
  return file;
}

interface Run {
  rc: number;
  out: string;
  answered?: boolean;
}

/**
 * Runs argv in a new pseudo-terminal (stdin, stdout and stderr are the terminal, as in a shell),
 * types `answer` + Enter once the question "[y/N]" shows, and returns the exit code and all output.
 */
const PTY = `
import json, os, pty, select, sys, time
argv, answer, timeout = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out, answered, deadline = b"", False, time.time() + timeout
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if fd not in r:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if not answered and answer != "-" and b"[y/N]" in out:
        os.write(fd, answer.encode() + b"\\r")
        answered = True
else:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "out": out.decode("utf8", "replace"), "answered": answered}))
`;

async function inTerminal(argv: string[], answer: string, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const { stdout } = await promisify(execFile)("python3", ["-c", PTY, JSON.stringify(argv), answer, "120"], {
    env,
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as Run;
}

/** Runs the CLI without a terminal (stdin is a pipe), as a script would. */
async function piped(args: string[], cmd = [process.execPath, SHIM]): Promise<Run> {
  const r = await promisify(execFile)(cmd[0]!, [...cmd.slice(1), ...args], { cwd: root, env: process.env }).then(
    ok => ({ rc: 0, out: ok.stdout + ok.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      rc: e.code ?? -1,
      out: `${e.stdout ?? ""}${e.stderr ?? ""}`,
    }),
  );
  return r;
}

const atb = (...args: string[]) => [process.execPath, SHIM, ...args];
const approvals = () =>
  (
    JSON.parse(h.kube.run(["get", "agenttaskapprovals", "-n", h.ns, "-o", "json", "--show-managed-fields"])) as {
      items: {
        metadata: { name: string; managedFields?: { manager: string }[] };
        spec: { taskRef: { name: string } };
      }[];
    }
  ).items;

type Waiting = Task & { status?: Task["status"] & { approvals?: { counted?: string[]; ignored?: { why: string }[] } } };
const task = (name: string) => h.kube.get<Waiting>("agenttask", name, h.ns);

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  for (const who of ["alice", "bob", "mallory"])
    keys[who] = (await generateDevKeys(join(dir, "approvers"), "EdDSA", who)).privateKeyFile;
  // The broker knows alice and bob (their public keys); mallory's key is nobody's.
  const approvers = ["alice", "bob"].map(who => ({
    id: `${who}@example.com`,
    keys: [keys[who]!.replace(/\.key$/, ".pub")],
  }));
  await h.start({}, { brokerTrust: { trust: { approvers } } });
  await h.ready("Deployment", "web", "nginx:1.27");
  // Alice approves as herself: a ServiceAccount with the approver's Role (read tasks, create
  // approvals); a viewer may read tasks only.
  h.kube.run(["create", "role", "approver", "-n", h.ns, "--verb=get", "--resource=agenttasks.atb.siemens.com"]);
  h.kube.run([
    "patch",
    "role",
    "approver",
    "-n",
    h.ns,
    "--type=json",
    "-p",
    JSON.stringify([
      {
        op: "add",
        path: "/rules/-",
        value: { apiGroups: ["atb.siemens.com"], resources: ["agenttaskapprovals"], verbs: ["create"] },
      },
    ]),
  ]);
  h.kube.run(["create", "role", "viewer", "-n", h.ns, "--verb=get", "--resource=agenttasks.atb.siemens.com"]);
  for (const [sa, role] of [
    ["alice", "approver"],
    ["viewer", "viewer"],
  ]) {
    h.kube.run(["create", "serviceaccount", sa!, "-n", h.ns]);
    h.kube.run(["create", "rolebinding", sa!, "-n", h.ns, `--role=${role}`, `--serviceaccount=${h.ns}:${sa}`]);
    kubeconfigs[sa!] = serviceAccountKubeconfig(sa!);
  }
});
afterAll(() => h.stop());

test("atb plan -f prints the change digest the clients compute, the tier and the diff, and writes nothing", async () => {
  const file = join(dir, "deploy-web.yaml");
  writeFileSync(
    file,
    dump({
      apiVersion: "atb.siemens.com/v1alpha1",
      kind: "AgentTask",
      metadata: { name: "deploy-web", namespace: h.ns },
      spec: { agentId: AGENT, action: "deploy", target: TARGET, payload: PAYLOAD },
    }),
  );
  const before = h.get("Deployment", "web").metadata.resourceVersion;
  const r = await piped(["plan", "-f", file, "--timeout", "150"]);
  expect(r.out).toContain(`Created Plan task ${h.ns}/deploy-web-plan-`);
  expect(r.rc).toBe(0);
  const digest = await taskChangeSha256({ action: "deploy", target: TARGET, payload: PAYLOAD });
  expect(r.out).toContain(`Change:     ${digest}`);
  expect(r.out).toContain("Risk tier:  HIGH");
  expect(r.out).toMatch(/^\+.*image: nginx:1\.28$/m);
  expect(h.get("Deployment", "web").metadata.resourceVersion).toBe(before);
});

test("approvers approve in a terminal (no, an unknown key, alice, bob as kubectl atb); the task Completes", async () => {
  const token = await h.token("deploy", "Deployment", "web", { approvers: [], payload: PAYLOAD });
  h.create(h.task("deploy-web", { action: "deploy", kind: "Deployment", target: "web", payload: PAYLOAD }, token));
  await eventually("deploy-web AwaitingApproval", 120_000, () =>
    task("deploy-web").status?.phase === "AwaitingApproval" ? true : undefined,
  );
  const ref = `${h.ns}/deploy-web`;
  const digest = await taskChangeSha256({ action: "deploy", target: TARGET, payload: PAYLOAD });

  // No: the change is shown, the answer defaults to no, nothing is created.
  const asAlice = ["--kubeconfig", kubeconfigs.alice!];
  const no = await inTerminal(
    atb("approve", ref, "--key", keys.alice!, "--approver", "alice@example.com", ...asAlice),
    "n",
  );
  expect(no.answered).toBe(true);
  expect(no.out).toContain(`Change:     ${digest}`);
  expect(no.out).toContain("image: nginx:1.28");
  expect(no.out).toContain(`Approve change ${digest} of ${ref} as alice@example.com? [y/N]`);
  expect(no.out).toContain("not approved: nothing was signed or created");
  expect(no.rc).toBe(1);
  // Without a terminal and without --yes there is nobody to ask: refused.
  const script = await piped(["approve", ref, "--key", keys.alice!, "--approver", "alice@example.com"]);
  expect(script.out).toContain("no terminal to ask for confirmation on");
  expect(script.rc).toBe(1);
  expect(approvals()).toEqual([]);

  // An approver the broker has no key for: the approval is filed, the broker does not count it.
  const mallory = await piped(["approve", ref, "--key", keys.mallory!, "--approver", "mallory@example.com", "--yes"]);
  expect(mallory.rc).toBe(0);
  await eventually("mallory's approval ignored", 60_000, () =>
    task("deploy-web").status?.approvals?.ignored?.some(i => i.why === "approver_unknown") ? true : undefined,
  );
  expect(task("deploy-web").status?.phase).toBe("AwaitingApproval");

  // Kubernetes RBAC decides who may approve: the viewer may read the task but not approve it.
  const viewer = await piped([
    "approve",
    ref,
    "--key",
    keys.alice!,
    "--approver",
    "alice@example.com",
    "--yes",
    "--kubeconfig",
    kubeconfigs.viewer!,
  ]);
  expect(viewer.out).toMatch(/Kubernetes RBAC refused it: .*cannot create resource "agenttaskapprovals"/);
  expect(viewer.rc).toBe(1);

  const alice = await inTerminal(
    atb("approve", ref, "--key", keys.alice!, "--approver", "alice@example.com", ...asAlice),
    "y",
  );
  expect(alice.out).toContain("Created agenttaskapproval");
  expect(alice.rc).toBe(0);
  await eventually("alice counted", 60_000, () =>
    task("deploy-web").status?.approvals?.counted?.includes("alice@example.com") ? true : undefined,
  );
  expect(task("deploy-web").status?.phase).toBe("AwaitingApproval");

  // Bob runs it as a kubectl plugin: kubectl finds kubectl-atb (a symlink to the shim) on PATH.
  const plugins = join(dir, "plugins");
  mkdirSync(plugins, { recursive: true });
  symlinkSync(SHIM, join(plugins, "kubectl-atb"));
  const env = { ...process.env, PATH: [plugins, dirname(h.stack.bin.kubectl), process.env.PATH].join(delimiter) };
  const bob = await inTerminal(
    [h.stack.bin.kubectl, "atb", "approve", ref, "--key", keys.bob!, "--approver", "bob@example.com"],
    "y",
    env,
  );
  expect(bob.out).toContain("Created agenttaskapproval");
  expect(bob.rc).toBe(0);

  const done = await h.terminal("deploy-web");
  expect(done.status?.phase).toBe("Completed");
  const filed = approvals();
  expect(filed.map(a => a.spec.taskRef.name)).toEqual(["deploy-web", "deploy-web", "deploy-web"]);
  expect(filed.every(a => a.metadata.managedFields?.some(f => f.manager === "atb-cli"))).toBe(true);

  // A finished task is refused; explain says where it is (through `npx atb`, as in the README).
  const late = await piped(["approve", ref, "--key", keys.alice!, "--approver", "alice@example.com", "--yes"]);
  expect(late.out).toContain(`${ref} is finished (Completed`);
  expect(late.rc).toBe(1);
  const explained = await piped(["explain", ref], ["npx", "--offline", "atb"]);
  expect(explained.out).toContain(`${ref} is Completed (Completed): applied and verified.`);
  expect(explained.rc).toBe(0);
});

test("atb explain says why a task was denied and what to do next", async () => {
  const payload = { image: "nginx:1.29" };
  const token = await h.token("deploy", "Deployment", "web", { approvers: [], payload: { image: "nginx:9.9" } });
  h.create(h.task("deploy-mismatch", { action: "deploy", kind: "Deployment", target: "web", payload }, token));
  const t = await h.terminal("deploy-mismatch");
  expect(t.status?.phase).toBe("Denied");
  const r = await piped(["explain", `${h.ns}/deploy-mismatch`]);
  expect(r.rc).toBe(0);
  expect(r.out).toContain(`${h.ns}/deploy-mismatch is Denied (PolicyDenied)`);
  expect(r.out).toContain("The broker's answer: change_mismatch");
  expect(r.out).toMatch(/Next: get a token bound to this change's digest/);
  expect(r.out).not.toContain(token);
});
