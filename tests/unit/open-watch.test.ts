// The watch of open tasks (capabilities/lib/open-watch.ts): Pepr 1.1.4 hands its Reconcile
// binding's filters to kubernetes-fluent-client's Watch, and kfc turns `fields` into the
// fieldSelector of the watch's LIST and WATCH. This builds the URL the way kfc's Watch does
// (its pathBuilder, with the binding's filters as Pepr passes them), so a Pepr or kfc upgrade
// that stops carrying the field selector fails here, not silently in a cluster.
import "../helpers/pepr-build-mode";
import { Capability } from "pepr";
import { pathBuilder } from "kubernetes-fluent-client/dist/fluent/utils";
import { agentTaskCapability } from "../../capabilities/agent-task";
import { parseConfig } from "../../capabilities/lib/config";
import { OPEN_FIELDS, selectOpenTasks } from "../../capabilities/lib/open-watch";
import { actions } from "../../capabilities/registry";
import { AgentTask, LABEL_SHARD, OPEN_SELECTOR } from "../../crds/agenttask";

interface WatchBinding {
  isWatch?: boolean;
  isQueue?: boolean;
  kind: { group: string; version: string; kind: string; plural?: string };
  model: typeof AgentTask;
  filters: Record<string, unknown>;
}

const watchUrl = (env: Record<string, string>): URL => {
  const cap = agentTaskCapability({ actions, config: parseConfig(env) });
  const b = (cap.bindings as unknown as WatchBinding[]).find(x => x.isQueue && x.kind.kind === "AgentTask")!;
  // As Pepr's runBinding calls it: K8s(binding.model, { ...binding.filters, kindOverride: binding.kind }).Watch(...)
  return pathBuilder("https://api.example:6443", b.model, { ...b.filters, kindOverride: b.kind } as never, true);
};

describe("the watch of open tasks", () => {
  test("kfc builds the watch's URL with the open tasks' field selector", () => {
    const url = watchUrl({});
    expect(url.pathname).toBe("/apis/atb.siemens.com/v1alpha1/agenttasks");
    expect(url.searchParams.get("fieldSelector")).toBe(OPEN_SELECTOR);
    expect(OPEN_SELECTOR).toBe("status.finishedAt=");
    // kfc sends an empty label selector (every task) when the binding has no label.
    expect(url.searchParams.get("labelSelector") ?? "").toBe("");
  });

  test("a shard's watch selects its label as well", () => {
    const url = watchUrl({ ATB_SHARDS: "4", ATB_SHARD: "3" });
    expect(url.searchParams.get("fieldSelector")).toBe(OPEN_SELECTOR);
    expect(url.searchParams.get("labelSelector")).toBe(`${LABEL_SHARD}=3`);
  });

  test("selectOpenTasks changes the watch bindings registered in its callback only, and keeps other fields", () => {
    const cap = new Capability({ name: "t", description: "t" });
    cap
      .When(AgentTask)
      .IsCreated()
      .Validate(req => req.Approve());
    const changed = selectOpenTasks(cap, () => {
      cap
        .When(AgentTask)
        .IsCreatedOrUpdated()
        .Reconcile(async () => {});
    });
    expect(changed).toBe(1);
    const [admission, watch] = cap.bindings as unknown as WatchBinding[];
    expect(admission.filters.fields).toBeUndefined();
    expect(watch.filters.fields).toEqual(OPEN_FIELDS);
    expect(selectOpenTasks(cap, () => {})).toBe(0);
  });
});
