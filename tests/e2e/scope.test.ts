// GIVEN the real API server with the scope policy installed as installCrds installs it (default
// parameters: the protected namespaces refused, every other namespace allowed, since the stacks of
// the other e2e files share this plane), and an operator scoped to one namespace of this file,
// WHEN tasks are created where no operator will ever process them, THEN admission refuses them
// with the operator's own words, and once the policy is out of the way the operator's sweep marks
// them Failed/OutOfScope instead of leaving them without status; a task another operator serves
// is left alone.
//
// Sharing the plane: the "outside WATCH_NAMESPACE" case goes through a binding of this file whose
// namespaceSelector covers only the namespaces it created (with its own parameters). The
// kube-system case uses the shipped binding; this file deletes it for a few seconds to create a
// uniquely named task there (no other file creates tasks in protected namespaces, and no stack
// serves kube-system), restores it at once and deletes the task at the end. The operator marks
// only in kube-system and this file's unwatched namespace (ATB_OUT_OF_SCOPE_NAMESPACES), so it
// cannot touch another file's tasks.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dump, loadAll } from "js-yaml";
import { parseConfig } from "../../capabilities/lib/config";
import { POLICY_NAME, policyParams, scopeRefusal } from "../../capabilities/lib/scope";
import { startStack, type Stack } from "../../tools/stack";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";

const cluster = e2eCluster();
const ID = randomBytes(3).toString("hex");
const WATCHED = `scope-w-${ID}`;
const UNWATCHED = `scope-u-${ID}`;
const LABEL = "atb.siemens.com/e2e-scope";
const BINDING = `agenttask-scope-e2e-${ID}`;
/**
 * A binding of the policy that matches no namespace, kept while this file deletes the others.
 * kube-apiserver 1.36 stops the shared ConfigMap informer behind a policy's paramKind for good
 * (until it restarts) once no binding names that paramKind for one refresh (kubernetes/kubernetes
 * #133827, #141015): every binding whose ConfigMap is created later then denies with "no params
 * found", as tests/e2e/holder-binding.test.ts saw for 150 s in CI.
 */
const KEEPER = `agenttask-scope-keep-${ID}`;
const PARAMS = "atb-scope-params";
const KS_TASK = `e2e-scope-${ID}`;
const GRACE_SECONDS = 3;
const SHIPPED = (
  loadAll(readFileSync(join(__dirname, "..", "..", "crds", "agenttask-scope.yaml"), "utf8")) as {
    kind: string;
  }[]
).find(d => d?.kind === "ValidatingAdmissionPolicyBinding")!;

let stack: Stack;
let kube: Kube;
let shippedBindingDeleted = false;

interface Task {
  status?: { phase?: string; conditions?: { type: string; status: string; reason: string; message: string }[] };
}

function task(namespace: string, name: string) {
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name, namespace },
    spec: {
      agentId: "spiffe://atb.example.com/agent/scope-test",
      // Shaped like a compact JWS; no broker decision is ever asked for these tasks.
      poaToken: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
      action: "scale",
      target: { kind: "Deployment", name: "web", namespace },
      payload: { replicas: 2 },
    },
  };
}

/** What the API server says when the policy refuses a creation through `binding`. */
const refusedBy = (binding: string, message: string): string =>
  `ValidatingAdmissionPolicy '${POLICY_NAME}' with binding '${binding}' denied request: ${message}`;

const protectedMessage = scopeRefusal("kube-system", parseConfig({}))!;
const unwatchedMessage = scopeRefusal(UNWATCHED, parseConfig({ WATCH_NAMESPACE: WATCHED }))!;

function dryRun(namespace: string): { ok: boolean; stderr: string } {
  return kube.try(["create", "--dry-run=server", "-f", "-"], JSON.stringify(task(namespace, "probe")));
}

/**
 * Policies, bindings and their parameters reach admission through informers: wait until a dry run
 * shows the change (a refusal for want of parameters not yet seen is not the policy's answer).
 */
function untilAdmission(what: string, namespace: string, refused: boolean): Promise<boolean> {
  return eventually(what, 30_000, () => {
    const r = dryRun(namespace);
    return r.ok === !refused && !r.stderr.includes("no params found") ? true : undefined;
  });
}

function restoreShippedBinding(): void {
  kube.run(["apply", "--server-side", "-f", "-"], dump(SHIPPED));
  shippedBindingDeleted = false;
}

/** A binding of the policy with this file's parameters, over the namespaces labelled `LABEL=value`. */
function binding(name: string, value: string) {
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingAdmissionPolicyBinding",
    metadata: { name },
    spec: {
      policyName: POLICY_NAME,
      validationActions: ["Deny"],
      paramRef: { name: PARAMS, namespace: WATCHED, parameterNotFoundAction: "Deny" },
      matchResources: { namespaceSelector: { matchLabels: { [LABEL]: value } } },
    },
  };
}

const stored = (namespace: string, name: string) => kube.get<Task>("agenttask", name, namespace);

beforeAll(async () => {
  stack = await startStack({
    cluster,
    workDir: join(cluster.dataDir, `stack-scope-${ID}`),
    namespaces: [WATCHED],
    markOutOfScope: true,
    operatorEnv: {
      ATB_SWEEP_INTERVAL_SECONDS: "1",
      ATB_OUT_OF_SCOPE_GRACE_SECONDS: String(GRACE_SECONDS),
      ATB_OUT_OF_SCOPE_NAMESPACES: `kube-system,${UNWATCHED}`,
    },
  });
  kube = new Kube(stack.bin, cluster.kubeconfig);
  kube.namespace(UNWATCHED);
  for (const ns of [WATCHED, UNWATCHED]) kube.run(["label", "namespace", ns, `${LABEL}=${ID}`, "--overwrite"]);
  // This file's parameters: the operator's own scope, as the install would write them.
  kube.applyObject({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: PARAMS, namespace: WATCHED },
    data: policyParams(parseConfig({ WATCH_NAMESPACE: WATCHED })),
  });
  kube.applyObject(binding(BINDING, ID));
  await untilAdmission("this file's binding in force", UNWATCHED, true);
});

afterAll(async () => {
  if (kube) {
    if (shippedBindingDeleted) restoreShippedBinding();
    kube.try(["delete", "agenttask", KS_TASK, "-n", "kube-system", "--ignore-not-found"]);
    kube.try(["delete", "validatingadmissionpolicybinding", BINDING, KEEPER, "--ignore-not-found"]);
    kube.try(["delete", "namespace", WATCHED, UNWATCHED, "--ignore-not-found", "--wait=false"]);
  }
  await stack?.stop();
});

describe("admission refuses, with the operator's words", () => {
  test("a task in kube-system, through the shipped binding (Pepr's webhooks never run there)", () => {
    const r = kube.create(task("kube-system", KS_TASK));
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(refusedBy(POLICY_NAME, protectedMessage));
    expect(r.stderr).toContain('"kube-system" is protected (ATB_PROTECTED_NAMESPACES=kube-system,');
  });

  test("a task outside the operator's WATCH_NAMESPACE, through a binding with its parameters", () => {
    const r = kube.create(task(UNWATCHED, "refused"));
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(refusedBy(BINDING, unwatchedMessage));
    expect(r.stderr).toContain(`(WATCH_NAMESPACE=${WATCHED})`);
  });

  test("a task in the operator's namespace passes the policy and the operator takes it up", async () => {
    expect(kube.create(task(WATCHED, "served-here")).ok).toBe(true);
    const t = await eventually("a status on the served task", 30_000, () =>
      stored(WATCHED, "served-here").status?.phase ? stored(WATCHED, "served-here") : undefined,
    );
    expect(t.status?.phase).toBeDefined();
  });
});

describe("without the policy, the sweep marks them Failed/OutOfScope", () => {
  beforeAll(async () => {
    // The keeper first: never a moment with no binding of this policy (see KEEPER).
    kube.applyObject(binding(KEEPER, `none-${ID}`)); // no namespace carries this value
    kube.run(["delete", "validatingadmissionpolicybinding", BINDING]);
    shippedBindingDeleted = true;
    kube.run(["delete", "validatingadmissionpolicybinding", POLICY_NAME]);
    try {
      await untilAdmission("no binding refusing kube-system", "kube-system", false);
      await untilAdmission("no binding refusing the unwatched namespace", UNWATCHED, false);
      for (const [ns, name] of [
        ["kube-system", KS_TASK],
        [UNWATCHED, "orphan"],
        [UNWATCHED, "served-elsewhere"],
      ]) {
        const r = kube.create(task(ns, name));
        if (!r.ok) throw new Error(`creating ${ns}/${name}: ${r.stderr}`);
      }
      // Another operator instance serving UNWATCHED stores Pending while the task waits for its target.
      kube.run([
        "patch",
        "agenttask",
        "served-elsewhere",
        "-n",
        UNWATCHED,
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status: { phase: "Pending", reason: "Queued", message: "served by another instance" } }),
      ]);
    } finally {
      restoreShippedBinding();
    }
  });

  test.each([
    ["kube-system", KS_TASK, () => protectedMessage],
    [UNWATCHED, "orphan", () => unwatchedMessage],
  ])("a task in %s with no status after the grace", async (ns, name, message) => {
    const t = await eventually(`${ns}/${name} Failed`, 60_000, () =>
      stored(ns, name).status?.phase === "Failed" ? stored(ns, name) : undefined,
    );
    const succeeded = t.status?.conditions?.find(c => c.type === "Succeeded");
    expect(succeeded).toMatchObject({ status: "False", reason: "OutOfScope" });
    expect(succeeded?.message).toBe(`${message()}; no operator picked the task up within ${GRACE_SECONDS}s`);
    // The Event follows the terminal status write (beside the workers, lib/runtime/follow-ups.ts).
    const events = await eventually(`the Event of ${ns}/${name}`, 10_000, () => {
      const listed = JSON.parse(
        kube.run(["get", "events", "-n", ns, `--field-selector=involvedObject.name=${name}`, "-o", "json"]),
      ) as { items: { reason: string; type: string }[] };
      return listed.items.length ? listed : undefined;
    });
    expect(events.items).toEqual([expect.objectContaining({ reason: "OutOfScope", type: "Warning" })]);
  });

  test("the failures are counted, and a task another operator serves is left alone", async () => {
    const metrics = await stack.metrics();
    expect(metrics).toMatch(/atb_operator_tasks_failed\{action="scale",reason="OutOfScope"\} 2/);
    // Well past the grace and several sweeps: still the other instance's Pending.
    await new Promise(r => setTimeout(r, (GRACE_SECONDS + 3) * 1000));
    expect(stored(UNWATCHED, "served-elsewhere").status).toMatchObject({
      phase: "Pending",
      message: "served by another instance",
    });
  });

  test("the shipped binding is back in force", async () => {
    expect(await untilAdmission("the shipped binding in force", "kube-system", true)).toBe(true);
    expect(dryRun("kube-system").stderr).toContain(refusedBy(POLICY_NAME, protectedMessage));
  });
});
