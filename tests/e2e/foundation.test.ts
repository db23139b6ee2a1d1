// GIVEN the project's own control plane (real kube-apiserver, controller-manager, scheduler,
// KWOK nodes) and the AgentTask CRD, WHEN tasks and workloads are created, THEN the API server
// enforces the CRD's rules, serves the seed's table, rolls Deployments out on KWOK nodes, and the
// Pepr module (a child process) observes tasks and writes their status.
import { join } from "node:path";
import { ensureBinaries } from "../../tools/controlplane/binaries";
import { e2eCluster } from "../helpers/cluster-env";
import { eventually, Kube } from "../helpers/kube";
import { startOperator, type OperatorHandle } from "../../tools/operator";
import { createOperatorIdentity, type OperatorIdentity } from "../../tools/operator-identity";

const cluster = e2eCluster();
const kube = new Kube(ensureBinaries(), cluster.kubeconfig);
const NS = "foundation";
// A syntactically valid compact JWS; its content does not matter to the API server.
const TOKEN = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

function task(name: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: "atb.siemens.com/v1alpha1",
    kind: "AgentTask",
    metadata: { name, namespace: NS },
    spec: {
      agentId: "spiffe://atb.example.com/agent/planning-agent",
      poaToken: TOKEN,
      action: "scale",
      target: { kind: "Deployment", name: "web-frontend", namespace: NS },
      payload: { replicas: 3 },
      ...spec,
    },
  };
}

beforeAll(() => kube.namespace(NS));

describe("the AgentTask CRD on the real API server", () => {
  test("the API server talks to us and reports the pinned Kubernetes version", () => {
    const v = kube.raw("/version") as { gitVersion: string };
    expect(v.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
  });

  test.each([
    ["an unknown action", { action: "delete" }, /spec\.action.*Unsupported value: "delete"/s],
    ["a non-SPIFFE agentId", { agentId: "planning-agent" }, /spec\.agentId.*should match/s],
    [
      "a kind the action does not support",
      { action: "scale", target: { kind: "ConfigMap", name: "x", namespace: NS } },
      /spec\.target\.kind.*kind ConfigMap is not supported by action scale/s,
    ],
    ["a negative replica count", { payload: { replicas: -1 } }, /spec\.payload\.replicas.*greater than or equal to 0/s],
    ["scale without replicas", { payload: {} }, /spec\.payload.*payload\.replicas is required for action scale/s],
  ])("rejects %s, naming the field", (_what, spec, message) => {
    const r = kube.create(task(`bad-${Math.random().toString(36).slice(2, 8)}`, spec));
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(message);
  });

  test("rejects any spec change after creation", () => {
    expect(kube.create(task("immutable")).ok).toBe(true);
    const r = kube.try([
      "patch",
      "agenttask",
      "immutable",
      "-n",
      NS,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { target: { kind: "Deployment", name: "other", namespace: NS } } }),
    ]);
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(/spec.*spec is immutable after creation/s);
  });

  test("serves the seed's columns in the Table view (kubectl get agenttasks)", () => {
    // kubectl asks the API server for a Table and prints its columns as served.
    const r = kube.run(["get", "agenttasks", "-n", NS]);
    expect(r.split("\n")[0].split(/\s+/).filter(Boolean)).toEqual(["NAME", "ACTION", "TARGET", "PHASE", "RISK", "AGE"]);
    const short = kube.run(["get", "atask", "-n", NS, "-o", "name"]);
    expect(short).toContain("agenttask.atb.siemens.com/immutable");
  });
});

describe("workloads on KWOK nodes", () => {
  test("a Deployment gets a ReplicaSet and becomes available", async () => {
    kube.applyObject({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web-frontend", namespace: NS },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "web-frontend" } },
        template: {
          metadata: { labels: { app: "web-frontend" } },
          spec: { containers: [{ name: "web", image: "nginx:1.27" }] },
        },
      },
    });
    const available = await eventually("Deployment available", 90_000, () => {
      const d = kube.get<{ status?: { availableReplicas?: number } }>("deployment", "web-frontend", NS);
      return d.status?.availableReplicas === 2 ? d : undefined;
    });
    expect(available.status?.availableReplicas).toBe(2);
    const rs = JSON.parse(kube.run(["get", "replicasets", "-n", NS, "-l", "app=web-frontend", "-o", "json"])) as {
      items: unknown[];
    };
    expect(rs.items.length).toBe(1);
  });
});

describe("the Pepr module against the control plane", () => {
  let operator: OperatorHandle;
  let identity: OperatorIdentity;
  beforeAll(async () => {
    // As everywhere: the operator runs as a ServiceAccount of its own with the generated RBAC.
    identity = await createOperatorIdentity({
      bin: kube.bin,
      adminKubeconfig: cluster.kubeconfig,
      name: "atb-operator-foundation",
      dir: join(cluster.dataDir, "operator-foundation"),
    });
    operator = await startOperator({
      kubeconfig: identity.kubeconfig,
      workDir: join(cluster.dataDir, "operator-foundation"),
      mode: "watch",
      env: { WATCH_NAMESPACE: NS, ATB_METRICS_PORT: "0" },
    });
  });
  afterAll(async () => {
    await operator?.stop();
    identity?.remove();
  });

  test("observes a new AgentTask and records it in status", async () => {
    expect(kube.create(task("observed")).ok).toBe(true);
    const seen = await eventually("status.phase on the task", 60_000, () => {
      const t = kube.get<{
        metadata: { generation: number };
        status?: { phase?: string; observedGeneration?: number };
      }>("agenttask", "observed", NS);
      return t.status?.phase ? t : undefined;
    });
    // No broker and no admission webhook run for this test, so the task never gets past
    // authorization: it has no record of who created it (the mutating webhook writes that), and
    // the operator denies it requester_mismatch without asking a broker.
    expect(["Pending", "Processing", "Denied"]).toContain(seen.status?.phase);
    expect(seen.status?.observedGeneration).toBe(seen.metadata.generation);
  });
});
