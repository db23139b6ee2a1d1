// The pod runner's plan (tools/pods/spec.ts): what it makes of the generated pods, and that it
// refuses, naming the field, everything it cannot honour without a container engine.
/* eslint-disable @typescript-eslint/no-explicit-any -- pods and manifests as arbitrary JSON */
import { cpuMillis, expand, memoryBytes, planPod, PodRefused } from "../../tools/pods/spec";
import { PEPR_IMAGE, productionClosure, type ImageFs } from "../../tools/pods/image";

const IMAGE = "ghcr.io/defenseunicorns/pepr/controller:v1.1.4";
const fs: ImageFs = {
  image: IMAGE,
  entrypoint: ["node"],
  cmd: [],
  workingDir: "/app",
  user: { uid: 65532, gid: 65532 },
  env: { PATH: "/usr/bin" },
  content: { "/app/node_modules": "/cache/node_modules" },
};
const images = (image: string): ImageFs => {
  if (!PEPR_IMAGE.test(image)) throw new Error(`image "${image}": unknown`);
  return fs;
};

/** The watcher pod as the generated Deployment makes it (plus the token volume admission adds). */
function watcherPod(): Record<string, any> {
  return {
    metadata: { name: "pepr-atb-operator-watcher-abc", namespace: "pepr-system", uid: "u-1" },
    spec: {
      serviceAccountName: "pepr-atb-operator",
      terminationGracePeriodSeconds: 5,
      securityContext: {
        fsGroup: 65532,
        runAsGroup: 65532,
        runAsNonRoot: true,
        runAsUser: 65532,
        seccompProfile: { type: "RuntimeDefault" },
      },
      containers: [
        {
          name: "watcher",
          image: IMAGE,
          args: ["/app/node_modules/pepr/dist/controller.js", "hash"],
          env: [
            { name: "PEPR_WATCH_MODE", value: "true" },
            { name: "POD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          ],
          ports: [{ containerPort: 3000 }, { containerPort: 9464, name: "metrics" }],
          readinessProbe: { httpGet: { path: "/healthz", port: 3000, scheme: "HTTPS" }, initialDelaySeconds: 10 },
          livenessProbe: { httpGet: { path: "/healthz", port: 3000, scheme: "HTTPS" }, initialDelaySeconds: 10 },
          resources: { limits: { memory: "512Mi", cpu: "500m" } },
          securityContext: {
            allowPrivilegeEscalation: false,
            capabilities: { drop: ["ALL"] },
            runAsGroup: 65532,
            runAsNonRoot: true,
            runAsUser: 65532,
            readOnlyRootFilesystem: false,
          },
          volumeMounts: [
            { mountPath: "/app/load", name: "module", readOnly: true },
            { mountPath: "/etc/atb/tls", name: "atb-broker-tls", readOnly: true },
            { mountPath: "/var/run/secrets/kubernetes.io/serviceaccount", name: "kube-api-access", readOnly: true },
          ],
        },
      ],
      volumes: [
        { name: "module", secret: { secretName: "pepr-atb-operator-module" } },
        { name: "atb-broker-tls", secret: { secretName: "atb-operator-tls", defaultMode: 0o440, optional: false } },
        {
          name: "kube-api-access",
          projected: {
            defaultMode: 0o644,
            sources: [
              { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
              { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
              { downwardAPI: { items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }] } },
            ],
          },
        },
      ],
    },
  };
}

function refusal(pod: Record<string, any>): string[] {
  try {
    planPod(pod, images);
  } catch (err) {
    if (err instanceof PodRefused) return err.problems;
    throw err;
  }
  throw new Error("the pod was not refused");
}

describe("planPod", () => {
  test("the generated watcher pod: argv, user, groups, mounts, probes, limits", () => {
    const plan = planPod(watcherPod(), images);
    expect(plan.serviceAccount).toBe("pepr-atb-operator");
    expect(plan.graceSeconds).toBe(5);
    const [c] = plan.containers;
    expect(c.argv).toEqual(["node", "/app/node_modules/pepr/dist/controller.js", "hash"]);
    expect(c.workingDir).toBe("/app");
    expect({ uid: c.uid, gid: c.gid, groups: c.groups, nnp: c.noNewPrivileges }).toEqual({
      uid: 65532,
      gid: 65532,
      groups: [65532],
      nnp: true,
    });
    expect(c.mounts.map(m => m.mountPath)).toEqual([
      "/app/load",
      "/etc/atb/tls",
      "/var/run/secrets/kubernetes.io/serviceaccount",
    ]);
    expect(plan.volumes.get("atb-broker-tls")).toMatchObject({ kind: "secret", defaultMode: 0o440, optional: false });
    expect(plan.volumes.get("module")).toMatchObject({ kind: "secret", defaultMode: 0o644 });
    expect(c.readiness).toMatchObject({
      kind: "http",
      port: 3000,
      scheme: "HTTPS",
      path: "/healthz",
      periodSeconds: 10,
    });
    expect(c.limits).toEqual({ memoryBytes: 512 * 1024 ** 2, cpuMillis: 500 });
    expect(c.env).toContainEqual({ name: "POD", from: { fieldRef: { fieldPath: "metadata.name" } } });
    // Said, not hidden: what the runner cannot apply.
    expect(plan.notes.join("\n")).toMatch(/seccompProfile RuntimeDefault is not applied/);
  });

  test("command replaces the entrypoint and drops the image's CMD; the image's user applies without runAsUser", () => {
    const pod = watcherPod();
    const c = pod.spec.containers[0];
    c.command = ["/bin/true"];
    delete c.args;
    delete c.securityContext.runAsUser;
    delete c.securityContext.runAsGroup;
    delete pod.spec.securityContext.runAsUser;
    delete pod.spec.securityContext.runAsGroup;
    const plan = planPod(pod, images);
    expect(plan.containers[0].argv).toEqual(["/bin/true"]);
    expect(plan.containers[0].uid).toBe(65532);
  });

  test.each([
    [
      "another image",
      (p: any) => (p.spec.containers[0].image = "nginx:1.27"),
      /spec.containers\[watcher\].image: image "nginx:1.27"/,
    ],
    [
      "a hostPath volume",
      (p: any) => p.spec.volumes.push({ name: "h", hostPath: { path: "/" } }),
      /spec.volumes\[h\]: volume type hostPath/,
    ],
    ["privileged", (p: any) => (p.spec.containers[0].securityContext.privileged = true), /securityContext.privileged/],
    [
      "added capabilities",
      (p: any) => (p.spec.containers[0].securityContext.capabilities.add = ["NET_ADMIN"]),
      /capabilities.add/,
    ],
    ["hostNetwork", (p: any) => (p.spec.hostNetwork = true), /spec.hostNetwork/],
    [
      "an exec probe",
      (p: any) => (p.spec.containers[0].livenessProbe = { exec: { command: ["true"] } }),
      /livenessProbe: only httpGet and tcpSocket/,
    ],
    [
      "a mount of a missing volume",
      (p: any) => p.spec.containers[0].volumeMounts.push({ name: "nope", mountPath: "/x" }),
      /volumeMounts\[\/x\]: no volume named nope/,
    ],
    [
      "a subPath",
      (p: any) => (p.spec.containers[0].volumeMounts[0].subPath = "a"),
      /volumeMounts\[\/app\/load\].subPath/,
    ],
    [
      "root with runAsNonRoot",
      (p: any) => (p.spec.containers[0].securityContext.runAsUser = 0),
      /runAsNonRoot is set but the container would run as uid 0/,
    ],
    ["an init container", (p: any) => (p.spec.initContainers = [{ name: "i" }]), /spec.initContainers/],
    [
      "a resourceFieldRef env",
      (p: any) =>
        p.spec.containers[0].env.push({ name: "M", valueFrom: { resourceFieldRef: { resource: "limits.memory" } } }),
      /env\[M\].valueFrom/,
    ],
    [
      "a GPU limit",
      (p: any) => (p.spec.containers[0].resources.limits["nvidia.com/gpu"] = 1),
      /resources.limits.nvidia.com\/gpu/,
    ],
    [
      "a Localhost seccomp profile",
      (p: any) => (p.spec.securityContext.seccompProfile = { type: "Localhost", localhostProfile: "x" }),
      /seccompProfile: Localhost/,
    ],
  ])("refuses %s, naming the field", (_what, mutate, message) => {
    const pod = watcherPod();
    mutate(pod);
    expect(refusal(pod).join("\n")).toMatch(message);
  });

  test("every problem is listed at once", () => {
    const pod = watcherPod();
    pod.spec.hostPID = true;
    pod.spec.containers[0].securityContext.privileged = true;
    expect(refusal(pod)).toHaveLength(2);
  });
});

describe("helpers", () => {
  test("quantities", () => {
    expect(memoryBytes("256Mi")).toBe(256 * 1024 ** 2);
    expect(memoryBytes("1G")).toBe(1e9);
    expect(memoryBytes("100m")).toBeUndefined();
    expect(cpuMillis("500m")).toBe(500);
    expect(cpuMillis("2")).toBe(2000);
    expect(cpuMillis("1.5")).toBe(1500);
    expect(cpuMillis("1Gi")).toBeUndefined();
  });

  test("$(VAR) expansion as Kubernetes does it", () => {
    const env = new Map([["A", "x"]]);
    expect(expand("$(A)/$(B)/$$(A)", env)).toBe("x/$(B)/$(A)");
  });

  test("the image's node_modules: Pepr's production dependencies, resolved as npm nests them", () => {
    const packages = {
      "node_modules/pepr": { version: "1.1.4", dependencies: { a: "1", b: "2" } },
      "node_modules/a": { version: "1.0.0", dependencies: { c: "1" } },
      "node_modules/b": { version: "2.0.0", dependencies: { c: "2" }, optionalDependencies: { fsevents: "1" } },
      "node_modules/b/node_modules/c": { version: "2.0.0" },
      "node_modules/c": { version: "1.0.0" },
      "node_modules/unrelated": { version: "9.0.0" },
    };
    expect(productionClosure(packages, "node_modules/pepr")).toEqual([
      "node_modules/a",
      "node_modules/b",
      "node_modules/b/node_modules/c",
      "node_modules/c",
      "node_modules/pepr",
    ]);
    expect(() => productionClosure({ "node_modules/pepr": { dependencies: { x: "1" } } }, "node_modules/pepr")).toThrow(
      /node_modules\/pepr needs x/,
    );
  });
});
