// A small in-memory stand-in for KubeClient: objects by REST path for GET, lists by collection
// path (label selectors are recorded, not evaluated: the modules filter by owner uid themselves),
// and a log of every request so tests can assert that plan() never writes.
import type { AgentTask, AgentTaskSpec } from "../../../crds/agenttask";
import type { KubeObject, TaskContext } from "../../../capabilities/lib/action";
import { parseConfig, type OperatorConfig } from "../../../capabilities/lib/config";
import type { KubeClient, KubeRequest } from "../../../capabilities/lib/kube";
import { resourcePath } from "../../../capabilities/lib/kube";
import type { Logger } from "../../../capabilities/lib/logger";

export const UID = "2f7b2c1e-0000-4000-8000-000000000001";
export const CREATED = "2025-06-01T10:20:30Z";
export const NS = "shop";

export class FakeKube {
  readonly objects = new Map<string, KubeObject>();
  readonly lists = new Map<string, KubeObject[]>();
  readonly requests: KubeRequest[] = [];

  put(kind: string, obj: KubeObject): this {
    this.objects.set(resourcePath(kind, obj.metadata.namespace ?? NS, obj.metadata.name), obj);
    return this;
  }

  list(kind: string, items: KubeObject[]): this {
    this.lists.set(resourcePath(kind, NS), items);
    return this;
  }

  async get<T>(path: string): Promise<T | undefined> {
    return this.objects.get(path) as T | undefined;
  }

  async request<T>(req: KubeRequest): Promise<T> {
    this.requests.push(req);
    if (req.method !== "GET") throw new Error(`unexpected write ${req.method} ${req.path}`);
    const list = this.lists.get(req.path);
    if (list) return { items: list } as T;
    const obj = this.objects.get(req.path);
    if (!obj) throw new Error(`no object at ${req.path}`);
    return obj as T;
  }

  asClient(): KubeClient {
    return this as unknown as KubeClient;
  }
}

export const config = (env: Record<string, string> = {}): Readonly<OperatorConfig> => parseConfig(env);

export function spec(
  action: AgentTaskSpec["action"],
  kind: AgentTaskSpec["target"]["kind"],
  payload?: Record<string, unknown>,
  name = "web",
): AgentTaskSpec {
  return {
    agentId: "spiffe://atb.example.com/agent/test",
    poaToken: "a.b.c",
    action,
    target: { kind, name, namespace: NS },
    ...(payload === undefined ? {} : { payload }),
  };
}

export function ctx(s: AgentTaskSpec, kube: FakeKube, cfg = config()): TaskContext {
  const task = {
    metadata: { name: "t", namespace: NS, uid: UID, creationTimestamp: CREATED },
    spec: s,
  } as unknown as AgentTask;
  return { task, spec: s, uid: UID, kube: kube.asClient(), config: cfg, log: {} as Logger };
}

/** A Deployment-shaped workload with one or more containers. */
export function workload(
  kind: string,
  opts: { name?: string; containers?: Record<string, string>; replicas?: number; extra?: Record<string, unknown> } = {},
): KubeObject {
  const name = opts.name ?? "web";
  const containers = Object.entries(opts.containers ?? { app: "nginx:1.27" }).map(([n, image]) => ({ name: n, image }));
  return {
    apiVersion: "apps/v1",
    kind,
    metadata: { name, namespace: NS, uid: `uid-${name}`, resourceVersion: "42", generation: 3 },
    spec: {
      replicas: opts.replicas ?? 2,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers } },
      ...(opts.extra ?? {}),
    },
    status: { observedGeneration: 3 },
  };
}
