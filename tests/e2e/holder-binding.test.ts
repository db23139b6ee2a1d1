// GIVEN the whole product on the real control plane with RBAC (the operator with its admission
// webhooks, the reference broker over mTLS with real OPA and the shipped policy data, which binds
// ServiceAccounts to their SPIFFE IDs in atb.example.com), and two ServiceAccounts A and B that
// may create and get AgentTasks in their namespace, each with a kubeconfig holding only its own
// token from the TokenRequest API
// WHEN A creates a task claiming B's agent with a valid token for B, B uses that token, A copies it
// from B's task into a task of its own, and someone writes the requester annotation by hand
// THEN A's tasks are Denied (requester_mismatch; sub_mismatch when the copy claims A) and change
// nothing, B's task Completes, the record of who created a task is the API server's and cannot be
// written or changed by anyone (the webhooks refuse it, and the scope policy where no webhook
// runs), and a task created with the webhooks out of the way is Denied by the operator itself.
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ANNOTATION_APPLIED_BY, ANNOTATION_REQUESTER } from "../../crds/agenttask";
import { requesterText } from "../../capabilities/lib/requester";
import { POLICY_NAME } from "../../capabilities/lib/scope";
import { planeOf, tokenKubeconfig } from "../../tools/operator-identity";
import { startStack, type Stack } from "../../tools/stack";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube, type KubeResult } from "../helpers/kube";
import { scanForSecrets } from "../helpers/secrets";

const cluster = e2eCluster();
const ID = randomBytes(3).toString("hex");
const NS = `holder-${ID}`;
/** A namespace no stack serves: no webhook runs there, only the scope policy. */
const BARE = `holder-bare-${ID}`;
/**
 * This file's own binding of the scope policy, over BARE and MARK only (tests/e2e/scope.test.ts
 * deletes the shipped binding for a few seconds): its parameters protect MARK, so a refusal
 * there shows the binding is in force.
 */
const BINDING = `agenttask-scope-holder-${ID}`;
const MARK = `holder-mark-${ID}`;
const LABEL = "atb.siemens.com/e2e-holder";
const SPIFFE = (sa: string) => `spiffe://atb.example.com/ns/${NS}/sa/${sa}`;
const USER = (sa: string) => `system:serviceaccount:${NS}:${sa}`;
const ADMIN_RECORD = requesterText({ username: "atb-admin", groups: ["system:masters", "system:authenticated"] });
const USER_SET = "metadata.annotations[atb.siemens.com/requester]: set by the admission webhook only; remove it";
const CHANGED =
  "metadata.annotations[atb.siemens.com/requester]: set by the admission webhook at creation; it never changes";

let stack: Stack;
let admin: Kube;
const as: Record<"a" | "b", Kube> = {} as never;
const minted: string[] = [];

interface Task {
  metadata: { name: string; uid: string; annotations?: Record<string, string> };
  spec: { agentId: string; poaToken: string };
  status?: {
    phase?: string;
    message?: string;
    atbResult?: { allowed?: boolean; reason?: string };
    conditions?: { type: string; status: string; reason: string }[];
  };
}

function scaleTask(name: string, agentId: string, token: string, o: { replicas?: number; annotations?: object } = {}) {
  const { replicas = 3, annotations } = o;
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name, namespace: NS, ...(annotations ? { annotations } : {}) },
    spec: {
      agentId,
      poaToken: token,
      action: "scale",
      target: { kind: "Deployment", name: "web", namespace: NS },
      payload: { replicas },
    },
  };
}

async function mintFor(agent: string, replicas = 3): Promise<string> {
  const token = await stack.mint({
    agent,
    action: "scale",
    target: { kind: "Deployment", namespace: NS, name: "web" },
    payload: { replicas },
  });
  minted.push(token);
  return token;
}

const task = (name: string, ns = NS) => admin.get<Task>("agenttask", name, ns);
const web = () =>
  admin.get<{ spec: { replicas: number }; metadata: { annotations?: Record<string, string> } }>(
    "deployment",
    "web",
    NS,
  );

function terminal(name: string): Promise<Task> {
  return eventually(`task ${name} terminal`, 90_000, () => {
    const t = task(name);
    return ["Completed", "Denied", "Failed"].includes(t.status?.phase ?? "") ? t : undefined;
  });
}

/** The requester the API server's admission recorded on a task. */
const recorded = (t: Task) =>
  JSON.parse(t.metadata.annotations?.[ANNOTATION_REQUESTER] ?? "null") as {
    username: string;
    uid?: string;
    groups: string[];
  } | null;

/** Creates obj as `who`; the API server's refusal, if any, is the test's failure message. */
function createAs(who: Kube, obj: object): void {
  const r: KubeResult = who.create(obj);
  expect(r.ok ? "" : r.stderr).toBe("");
}

/** A kubeconfig with the plane's server and CA and a TokenRequest token of the ServiceAccount, nothing else. */
function serviceAccountKube(sa: string): Kube {
  const token = admin.run(["create", "token", sa, "-n", NS, "--duration=3600s"]).trim();
  const plane = planeOf(readFileSync(cluster.kubeconfig, "utf8"));
  const file = join(cluster.dataDir, `holder-${ID}-${sa}.kubeconfig`);
  writeFileSync(file, tokenKubeconfig(plane.server, plane.caData, token, sa), { mode: 0o600 });
  return new Kube(stack.bin, file);
}

beforeAll(async () => {
  stack = await startStack({ cluster, workDir: join(cluster.dataDir, `stack-holder-${ID}`), namespaces: [NS] });
  admin = new Kube(stack.bin, cluster.kubeconfig);
  for (const ns of [BARE, MARK]) {
    admin.namespace(ns);
    admin.run(["label", "namespace", ns, `${LABEL}=${ID}`, "--overwrite"]);
  }
  for (const sa of ["a", "b"]) admin.run(["create", "serviceaccount", sa, "-n", NS]);
  admin.run(["create", "role", "agent", "-n", NS, "--verb=create,get", "--resource=agenttasks.atb.siemens.com"]);
  admin.run([
    "create",
    "rolebinding",
    "agent",
    "-n",
    NS,
    "--role=agent",
    `--serviceaccount=${NS}:a`,
    `--serviceaccount=${NS}:b`,
  ]);
  as.a = serviceAccountKube("a");
  as.b = serviceAccountKube("b");
  admin.applyObject({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", namespace: NS },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: "web" } },
      template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "app", image: "nginx:1.27" }] } },
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  admin?.try(["delete", "validatingadmissionpolicybinding", BINDING, "--ignore-not-found"]);
  admin?.try(["delete", "namespace", NS, BARE, MARK, "--ignore-not-found", "--wait=false"]);
});

describe("A and B as themselves", () => {
  let bToken: string;

  test("each may only create and read tasks in its namespace (RBAC), and the API server records who created a task", () => {
    expect(as.a.try(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]).stdout).toBe(USER("a"));
    expect(as.a.try(["auth", "can-i", "update", "agenttasks.atb.siemens.com", "-n", NS]).stdout.trim()).toBe("no");
    expect(as.a.try(["auth", "can-i", "create", "agenttasks.atb.siemens.com", "-n", NS]).stdout.trim()).toBe("yes");
  });

  test("(1) A creates a task claiming B's agent with B's valid token: Denied requester_mismatch, the target unchanged", async () => {
    bToken = await mintFor(SPIFFE("b"));
    createAs(as.a, scaleTask("a-claims-b", SPIFFE("b"), bToken));
    const t = await terminal("a-claims-b");
    expect(recorded(t)).toMatchObject({
      username: USER("a"),
      uid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      groups: expect.arrayContaining(["system:serviceaccounts", `system:serviceaccounts:${NS}`]),
    });
    expect(t.status).toMatchObject({ phase: "Denied", atbResult: { allowed: false, reason: "requester_mismatch" } });
    expect(t.status?.conditions?.find(c => c.type === "Authorized")).toMatchObject({
      status: "False",
      reason: "PolicyDenied",
    });
    expect(web().spec.replicas).toBe(2);
    // The broker's audit names who asked: A, for B's agent.
    const lines = readFileSync(stack.auditFile, "utf8")
      .trim()
      .split("\n")
      .map(l => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(
      expect.objectContaining({
        agent_identity: SPIFFE("b"),
        requester_identity: USER("a"),
        reason: "requester_mismatch",
        phase: "preflight",
      }),
    );
  });

  test("(2) B's own task with that token: Completed (the denial did not burn it)", async () => {
    createAs(as.b, scaleTask("b-own", SPIFFE("b"), bToken));
    const t = await terminal("b-own");
    expect(recorded(t)?.username).toBe(USER("b"));
    expect(t.status).toMatchObject({ phase: "Completed", atbResult: { allowed: true } });
    expect(web().spec.replicas).toBe(3);
    expect(web().metadata.annotations?.[ANNOTATION_APPLIED_BY]).toBe(t.metadata.uid);
  });

  test("(3) A copies the token from B's task into new tasks: Denied, whichever agent they claim, the target unchanged", async () => {
    // A reads B's task (it may get tasks) and takes the token out of it.
    const copied = (JSON.parse(as.a.run(["get", "agenttask", "b-own", "-n", NS, "-o", "json"])) as Task).spec.poaToken;
    expect(copied).toBe(bToken);
    createAs(as.a, scaleTask("a-copy-as-b", SPIFFE("b"), copied));
    createAs(as.a, scaleTask("a-copy-as-a", SPIFFE("a"), copied));
    const asB = await terminal("a-copy-as-b");
    const asA = await terminal("a-copy-as-a");
    expect(asB.status).toMatchObject({ phase: "Denied", atbResult: { reason: "requester_mismatch" } });
    expect(asA.status).toMatchObject({ phase: "Denied", atbResult: { reason: "sub_mismatch" } });
    const b = task("b-own");
    expect(web().spec.replicas).toBe(3);
    expect(web().metadata.annotations?.[ANNOTATION_APPLIED_BY]).toBe(b.metadata.uid);
  });

  test("A as itself, with a token for its own agent, is allowed: the binding is the SPIFFE Kubernetes form, not a denylist", async () => {
    const token = await mintFor(SPIFFE("a"), 4);
    createAs(as.a, scaleTask("a-own", SPIFFE("a"), token, { replicas: 4 }));
    expect((await terminal("a-own")).status).toMatchObject({ phase: "Completed" });
    expect(web().spec.replicas).toBe(4);
  });
});

describe("(4) the record of who created a task is admission's alone", () => {
  test("a requester annotation the creator writes is refused at creation, even a true one's look-alike", async () => {
    const forged = requesterText({ username: USER("b"), groups: ["system:serviceaccounts", "system:authenticated"] });
    const r = as.a.create(
      scaleTask("a-forges-b", SPIFFE("b"), await mintFor(SPIFFE("b")), {
        annotations: { [ANNOTATION_REQUESTER]: forged },
      }),
    );
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(USER_SET);
    expect(admin.try(["get", "agenttask", "a-forges-b", "-n", NS]).ok).toBe(false);
  });

  test("an update that changes the annotation is refused, one that removes it gets it back, and it stays as recorded", () => {
    const before = task("b-own").metadata.annotations![ANNOTATION_REQUESTER];
    const change = admin.try([
      "annotate",
      "agenttask",
      "b-own",
      "-n",
      NS,
      "--overwrite",
      `${ANNOTATION_REQUESTER}=${requesterText({ username: USER("a"), groups: [] })}`,
    ]);
    expect(change.ok).toBe(false);
    expect(change.stderr).toContain(CHANGED);
    // A removal is put back by the mutating webhook (a second server-side apply never owned it).
    const removal = admin.try(["annotate", "agenttask", "b-own", "-n", NS, `${ANNOTATION_REQUESTER}-`]);
    expect(removal.stderr).toBe("");
    expect(task("b-own").metadata.annotations![ANNOTATION_REQUESTER]).toBe(before);
    // Other metadata stays the owner's to change.
    expect(admin.try(["label", "agenttask", "b-own", "-n", NS, "team=payments"]).ok).toBe(true);
  });

  test("the same task applied server-side twice: the second apply passes, the record is unchanged", () => {
    // A token of the right shape that no broker accepts: the task ends Denied and touches nothing.
    const obj = JSON.stringify(scaleTask("ssa-twice", "spiffe://atb.example.com/agent/ssa", "bm90.YSB0b2tlbg.c2ln"));
    const first = admin.try(["apply", "--server-side", "-f", "-"], obj);
    expect(first.stderr).toBe("");
    const recordedFirst = task("ssa-twice").metadata.annotations![ANNOTATION_REQUESTER];
    expect(recordedFirst).toBe(ADMIN_RECORD);
    const second = admin.try(["apply", "--server-side", "-f", "-"], obj);
    expect(second.stderr).toBe("");
    expect(task("ssa-twice").metadata.annotations![ANNOTATION_REQUESTER]).toBe(recordedFirst);
  });

  test("where no webhook runs, the scope policy refuses a forged record and any change, and lets the true one in", async () => {
    admin.applyObject({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "scope-params", namespace: BARE },
      data: { protectedNamespaces: MARK, watchNamespaces: "" },
    });
    admin.applyObject({
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: { name: BINDING },
      spec: {
        policyName: POLICY_NAME,
        validationActions: ["Deny"],
        paramRef: { name: "scope-params", namespace: BARE, parameterNotFoundAction: "Deny" },
        matchResources: { namespaceSelector: { matchLabels: { [LABEL]: ID } } },
      },
    });
    const probe = { ...scaleTask("probe", SPIFFE("a"), "a.b.c"), metadata: { name: "probe", namespace: MARK } };
    // In force with its parameters: until the API server's informer has the ConfigMap, the binding
    // denies everything with "no params found" (which names the binding too). While scope.test.ts
    // deletes and re-creates bindings of the same policy (jest may run it alongside), the API
    // server kept answering so for over 30 s here: its churn is over within about a minute.
    await eventually("this file's binding in force with its parameters", 150_000, () => {
      const err = admin.try(["create", "--dry-run=server", "-f", "-"], JSON.stringify(probe)).stderr;
      if (err.includes(`with binding '${BINDING}'`) && !err.includes("no params found")) return true;
      throw new Error(`the probe's answer: ${err.trim() || "allowed"}`);
    });
    const bare = (name: string, annotations?: Record<string, string>) => ({
      ...scaleTask(name, "spiffe://atb.example.com/agent/x", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
      metadata: { name, namespace: BARE, ...(annotations ? { annotations } : {}) },
    });
    const forged = admin.create(
      bare("forged", { [ANNOTATION_REQUESTER]: requesterText({ username: USER("a"), groups: [] }) }),
    );
    expect(forged.ok).toBe(false);
    expect(forged.stderr).toContain(`ValidatingAdmissionPolicy '${POLICY_NAME}'`);
    expect(forged.stderr).toContain(USER_SET);
    // The admin's own record, as the webhook would write it: the policy rebuilds the same text.
    createAs(admin, bare("true-record", { [ANNOTATION_REQUESTER]: ADMIN_RECORD }));
    const change = admin.try([
      "annotate",
      "agenttask",
      "true-record",
      "-n",
      BARE,
      "--overwrite",
      `${ANNOTATION_REQUESTER}=x`,
    ]);
    expect(change.ok).toBe(false);
    expect(change.stderr).toContain(`ValidatingAdmissionPolicy '${POLICY_NAME}'`);
    expect(change.stderr).toContain(CHANGED);
    // Without a record it is let in (the operator denies such a task; see below), but cannot gain one later.
    createAs(admin, bare("no-record"));
    const late = admin.try([
      "annotate",
      "agenttask",
      "no-record",
      "-n",
      BARE,
      `${ANNOTATION_REQUESTER}=${ADMIN_RECORD}`,
    ]);
    expect(late.ok).toBe(false);
    expect(late.stderr).toContain(CHANGED);
  });
});

describe("a task created with the webhooks out of the way", () => {
  /** This stack's webhook configuration of a kind: the one whose namespaceSelector names NS. */
  function mine(kind: string): { name: string; json: string } {
    const list = JSON.parse(admin.run(["get", kind, "-o", "json"])) as {
      items: { metadata: { name: string }; webhooks: { namespaceSelector?: unknown }[] }[];
    };
    const found = list.items.filter(c => JSON.stringify(c.webhooks.map(w => w.namespaceSelector)).includes(`"${NS}"`));
    expect(found).toHaveLength(1);
    return { name: found[0].metadata.name, json: admin.run(["get", kind, found[0].metadata.name, "-o", "json"]) };
  }

  function restore(saved: { json: string }): void {
    const obj = JSON.parse(saved.json) as { metadata: Record<string, unknown> };
    for (const k of ["resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"])
      delete obj.metadata[k];
    admin.run(["apply", "--server-side", "--force-conflicts", "-f", "-"], JSON.stringify(obj));
  }

  test("has no record and is Denied requester_mismatch by the operator, without asking the broker", async () => {
    const token = await mintFor(SPIFFE("b"), 5);
    const mutating = mine("mutatingwebhookconfiguration");
    const validating = mine("validatingwebhookconfiguration");
    const dryRun = () =>
      admin.try(
        ["create", "--dry-run=server", "-f", "-"],
        JSON.stringify(scaleTask("x", SPIFFE("b"), token, { replicas: 5 })),
      );
    try {
      // The mutating webhook first: once admission has forgotten it, the validating webhook
      // refuses a task without a record (so none can slip in with one), then that one too.
      admin.run(["delete", "mutatingwebhookconfiguration", mutating.name]);
      await eventually("admission without the mutating webhook", 30_000, () =>
        dryRun().stderr.includes("did not record the creating identity") ? true : undefined,
      );
      admin.run(["delete", "validatingwebhookconfiguration", validating.name]);
      await eventually("admission without the validating webhook", 30_000, () => (dryRun().ok ? true : undefined));
      createAs(admin, scaleTask("unrecorded", SPIFFE("b"), token, { replicas: 5 }));
    } finally {
      restore(mutating);
      restore(validating);
    }
    const t = await terminal("unrecorded");
    expect(t.metadata.annotations?.[ANNOTATION_REQUESTER]).toBeUndefined();
    expect(t.status).toMatchObject({ phase: "Denied", atbResult: { allowed: false, reason: "requester_mismatch" } });
    expect(t.status?.message).toContain("no requester was recorded at admission");
    expect(t.status?.conditions?.find(c => c.type === "Succeeded")).toMatchObject({ reason: "RequesterNotRecorded" });
    // No broker call for it: the broker's request ids start with the task's uid.
    expect(readFileSync(stack.auditFile, "utf8")).not.toContain(t.metadata.uid);
    expect(web().spec.replicas).toBe(4);
  });
});

test("no token or segment of one appears in the operator's logs or the broker's audit", () => {
  const texts = [readFileSync(stack.operator.logFile, "utf8"), readFileSync(stack.auditFile, "utf8")];
  expect(scanForSecrets(texts, minted)).toEqual([]);
});
