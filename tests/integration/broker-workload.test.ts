// GIVEN the reference broker (real OPA on policies/, real mTLS) and a deploy token for
//   Deployment/production/payment-service with two approvers (issue 13, "Why" 1)
// WHEN the operator's decide request carries, as context.after, the object the dry run would store
//   with each escalation of the issue (and the same for a patch and a Service patch)
// THEN each is Denied with its own reason code and the details name the container and field;
//   a harmless manifest is allowed.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, request as httpRequest } from "undici";
import type { BrokerClient, DecideRequest } from "../../capabilities/lib/broker/client";
import type { KubeObject } from "../../capabilities/lib/action";
import { objectView } from "../../capabilities/lib/pipeline/object-view";
import { changeDigest } from "../../capabilities/lib/change-digest";
import { mintPoa } from "../../broker/poa";
import type { RunningBroker } from "../../broker/server";
import {
  AGENT,
  REQUESTER,
  LogCapture,
  makePki,
  makePoaKeys,
  makeTempDir,
  soon,
  startTestBroker,
  testClient,
  type TestPki,
} from "./helpers";

const logs = new LogCapture();
const keys = makePoaKeys();
const tmp = makeTempDir("atb-workload-");
let pki: TestPki;
/** policies/data.json with namespace production at the restricted level. */
let broker: RunningBroker;
/** policies/data.json as shipped (every namespace baseline). */
let plain: RunningBroker;
let client: BrokerClient;
let plainClient: BrokerClient;
let seq = 0;

const NS = "production";
const RESTRICTED_OK = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
};

type Obj = Record<string, unknown>;

/** payment-service as the sandbox runs it, hardened for the restricted level. */
function paymentService(over: { pod?: Obj; container?: Obj; meta?: Obj } = {}): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: "payment-service",
      namespace: NS,
      labels: { app: "payment-service" },
      resourceVersion: "41",
      managedFields: [{ manager: "kubectl" }],
      ...over.meta,
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: "payment-service" } },
      template: {
        metadata: { labels: { app: "payment-service" } },
        spec: {
          securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "payment",
              image: "registry.example.com/payment-service:2.0.0",
              securityContext: RESTRICTED_OK,
              ...over.container,
            },
          ],
          ...over.pod,
        },
      },
    },
  } as KubeObject;
}

function service(spec: Obj = {}): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "payment-service", namespace: NS, labels: { app: "payment-service" } },
    spec: {
      type: "ClusterIP",
      clusterIP: "10.96.0.42",
      selector: { app: "payment-service" },
      ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }],
      ...spec,
    },
  } as KubeObject;
}

const OWNER = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  name: "api-server",
  uid: "8d0a3c0e-3f0d-4b7e-9f5a-2f4f1f9a0b11",
  controller: true,
};

/** The whole manifest from the issue: every escalation at once. */
const ALL_AT_ONCE = paymentService({
  meta: { ownerReferences: [OWNER] },
  pod: {
    hostPID: true,
    serviceAccountName: "payments-admin",
    volumes: [{ name: "host", hostPath: { path: "/" } }],
    initContainers: [{ name: "setup", image: "docker.io/attacker/tools:latest", securityContext: RESTRICTED_OK }],
  },
  container: {
    securityContext: { ...RESTRICTED_OK, runAsUser: 0, capabilities: { drop: ["ALL"], add: ["SYS_ADMIN"] } },
    volumeMounts: [{ name: "host", mountPath: "/host" }],
  },
});

/** The target before the change and as the dry run would store it (null: does not exist). */
type Change = [before: KubeObject | null, after: KubeObject | null];

/** The change as the decide request's params (a deploy's manifest, a patch's operations). */
function paramsOf(verb: string, after: KubeObject | null): Record<string, unknown> {
  const view = objectView(after);
  return verb === "deploy"
    ? { manifest: view }
    : { patch: [{ op: "replace", path: "/spec", value: view?.spec ?? null }] };
}

/** A token with two approvers, bound to exactly these params (con.change_sha256). */
function tokenFor(verb: string, kind: string, params: Record<string, unknown>): Promise<string> {
  const target = { kind, namespace: NS, name: "payment-service" };
  const constraints = { change_sha256: changeDigest(params) };
  return mintPoa({ key: keys.es256, agent: AGENT, action: verb, target, approvers: ["alice", "bob"], constraints });
}

async function ask(
  verb: string,
  kind: string,
  [before, after]: Change,
  via: BrokerClient = client,
): Promise<{ allowed: boolean; reason: string; riskTier: string }> {
  const target = { kind, namespace: NS, name: "payment-service" };
  const params = paramsOf(verb, after);
  const request: DecideRequest = {
    action: `k8s.${kind}.${verb}`,
    token: await tokenFor(verb, kind, params),
    agentId: AGENT,
    requester: REQUESTER,
    target,
    params,
    context: {
      task: { uid: `uid-${++seq}`, name: "t", namespace: NS },
      before: objectView(before, kind),
      after: objectView(after, kind),
    },
  };
  const d = await via.decide(request, { deadline: soon(), requestIdBase: `workload-${seq}` });
  return { allowed: d.allowed, reason: d.reason, riskTier: d.riskTier };
}

const deploy = (after: KubeObject, via?: BrokerClient) => ask("deploy", "Deployment", [paymentService(), after], via);

beforeAll(async () => {
  pki = makePki(tmp.dir);
  const data = JSON.parse(readFileSync(join(__dirname, "../../policies/data.json"), "utf8"));
  data.atb_config.pod_security = { default_level: "baseline", namespaces: { [NS]: "restricted" } };
  const restrictedData = join(tmp.dir, "restricted.json");
  writeFileSync(restrictedData, JSON.stringify(data));
  broker = await startTestBroker(pki, keys, logs, { dataFile: restrictedData });
  plain = await startTestBroker(pki, keys, logs);
  client = testClient(broker.url, pki, logs);
  plainClient = testClient(plain.url, pki, logs);
});

afterAll(async () => {
  await client?.close();
  await plainClient?.close();
  await broker?.stop();
  await plain?.stop();
  tmp.remove();
});

describe("a harmless change is allowed", () => {
  it("allows a deploy of a new image from an allowed registry (HIGH, two approvers)", async () => {
    const after = paymentService({ container: { image: "registry.example.com/payment-service:2.1.0" } });
    await expect(deploy(after)).resolves.toEqual({ allowed: true, reason: "allowed", riskTier: "HIGH" });
  });

  it("allows a harmless Service patch (a new target port)", async () => {
    const after = service({ ports: [{ port: 80, targetPort: 9090, protocol: "TCP" }] });
    await expect(ask("patch", "Service", [service(), after])).resolves.toMatchObject({ allowed: true });
  });
});

describe("each escalation of the issue is denied with its reason", () => {
  it.each([
    ["hostPID", paymentService({ pod: { hostPID: true } }), "pod_security_baseline"],
    [
      "a hostPath: / volume",
      paymentService({ pod: { volumes: [{ name: "host", hostPath: { path: "/" } }] } }),
      "pod_security_baseline",
    ],
    [
      "SYS_ADMIN",
      paymentService({ container: { securityContext: { ...RESTRICTED_OK, capabilities: { add: ["SYS_ADMIN"] } } } }),
      "pod_security_baseline",
    ],
    [
      "runAsUser: 0 (restricted namespace)",
      paymentService({ container: { securityContext: { ...RESTRICTED_OK, runAsUser: 0 } } }),
      "pod_security_restricted",
    ],
    [
      "another serviceAccountName",
      paymentService({ pod: { serviceAccountName: "payments-admin" } }),
      "service_account_change",
    ],
    [
      "an init container from any registry",
      paymentService({
        pod: {
          initContainers: [{ name: "setup", image: "docker.io/attacker/tools:latest", securityContext: RESTRICTED_OK }],
        },
      }),
      "image_registry_not_allowed",
    ],
    ["an ownerReference", paymentService({ meta: { ownerReferences: [OWNER] } }), "ownership_change"],
    ["all of them at once", ALL_AT_ONCE, "pod_security_baseline"],
  ] as const)("deploy with %s", async (_name, after, reason) => {
    await expect(deploy(after)).resolves.toEqual({ allowed: false, reason, riskTier: "HIGH" });
  });

  it.each([
    [
      "a hostPath volume",
      paymentService({ pod: { volumes: [{ name: "node", hostPath: { path: "/var/run" } }] } }),
      "pod_security_baseline",
    ],
    [
      "privileged",
      paymentService({ container: { securityContext: { ...RESTRICTED_OK, privileged: true } } }),
      "pod_security_baseline",
    ],
  ] as const)("patch adding %s", async (_name, after, reason) => {
    await expect(ask("patch", "Deployment", [paymentService(), after])).resolves.toMatchObject({
      allowed: false,
      reason,
    });
  });

  it.each([
    ["externalIPs", service({ externalIPs: ["203.0.113.10"] }), "service_exposure"],
    ["type NodePort", service({ type: "NodePort" }), "service_exposure"],
    ["type LoadBalancer", service({ type: "LoadBalancer" }), "service_exposure"],
    ["a swapped selector", service({ selector: { app: "api-server" } }), "service_selector_change"],
    [
      "externalIPs and a swapped selector",
      service({ externalIPs: ["203.0.113.10"], selector: { app: "api-server" } }),
      "service_exposure",
    ],
  ] as const)("Service patch adding %s", async (_name, after, reason) => {
    await expect(ask("patch", "Service", [service(), after])).resolves.toMatchObject({ allowed: false, reason });
  });

  it("judges runAsUser: 0 as restricted only: allowed where the namespace is baseline", async () => {
    const root = paymentService({ container: { securityContext: { ...RESTRICTED_OK, runAsUser: 0 } } });
    await expect(deploy(root, plainClient)).resolves.toMatchObject({ allowed: true });
    await expect(deploy(paymentService({ pod: { hostPID: true } }), plainClient)).resolves.toMatchObject({
      allowed: false,
      reason: "pod_security_baseline",
    });
  });
});

describe("the decision's details", () => {
  it("list every deny and name each container and field", async () => {
    const target = { kind: "Deployment", namespace: NS, name: "payment-service" };
    const params = paramsOf("deploy", ALL_AT_ONCE);
    const token = await tokenFor("deploy", "Deployment", params);
    const dispatcher = new Agent({
      connect: {
        cert: readFileSync(pki.client.cert),
        key: readFileSync(pki.client.key),
        ca: readFileSync(pki.ca.cert),
      },
    });
    const body = JSON.stringify({
      action: "k8s.Deployment.deploy",
      token,
      agent_id: AGENT,
      requester: REQUESTER,
      target,
      params,
      context: {
        task: { uid: "uid-details", name: "t", namespace: NS },
        before: objectView(paymentService()),
        after: objectView(ALL_AT_ONCE),
      },
    });
    const res = await httpRequest(`${broker.url}/api/v1/decide`, { method: "POST", body, dispatcher });
    const answer = (await res.body.json()) as {
      allowed: boolean;
      reason: string;
      metadata: { details: { denies: string[]; workload: { findings: { rule: string; field: string }[] } } };
    };
    await dispatcher.close();
    expect(res.statusCode).toBe(200);
    expect(answer).toMatchObject({ allowed: false, reason: "pod_security_baseline" });
    const { denies, workload } = answer.metadata.details;
    expect(denies).toEqual(
      expect.arrayContaining([
        "pod_security_baseline",
        "pod_security_restricted",
        "service_account_change",
        "image_registry_not_allowed",
        "ownership_change",
      ]),
    );
    const found = workload.findings.map(f => `${f.rule} ${f.field}`);
    expect(found).toEqual(
      expect.arrayContaining([
        "pod_security_baseline spec.template.spec.hostPID",
        "pod_security_baseline spec.template.spec.volumes[host].hostPath",
        "pod_security_baseline spec.template.spec.containers[payment].securityContext.capabilities.add",
        "pod_security_restricted spec.template.spec.containers[payment].securityContext.runAsUser",
        "service_account_change spec.template.spec.serviceAccountName",
        "image_registry_not_allowed spec.template.spec.initContainers[setup].image",
        "ownership_change metadata.ownerReferences",
      ]),
    );
  });
});
