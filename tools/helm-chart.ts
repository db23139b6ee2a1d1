// The Helm chart Pepr generates (`npx pepr build` writes dist/atb-operator-chart/) against the
// generated manifests (dist/atb-operator.yaml): the values file the docs give, the manifest
// objects the chart does not carry, and the field differences between the objects both carry.
// This is the one list: tests/e2e/helm-chart.test.ts asserts it against `helm template`, and
// `npm run generate` writes it into docs/deployment.md (region helm-differences).
import { dump } from "js-yaml";
import {
  METRICS_PORT,
  METRICS_SERVICE,
  NAMESPACE,
  TLS_MOUNT,
  TLS_SECRET,
  TLS_VOLUME,
  type K8sObject,
} from "./manifests";
import { POLICY_NAME, POLICY_PARAMS } from "../capabilities/lib/scope";

export const CHART_DIR = "atb-operator-chart";
export const RELEASE = "atb-operator";
export const VALUES_FILE = "values-atb.yaml";

/** values-atb.yaml: the broker certificate on the watcher, as the manifests mount it. */
export const HELM_VALUES = {
  watcher: {
    extraVolumes: [{ name: TLS_VOLUME, secret: { secretName: TLS_SECRET, defaultMode: 0o440, optional: false } }],
    extraVolumeMounts: [{ name: TLS_VOLUME, mountPath: TLS_MOUNT, readOnly: true }],
  },
};

/**
 * What `helm lint --strict` says of the chart besides "1 chart(s) linted, 0 chart(s) failed":
 * Pepr's generator writes no `icon` into Chart.yaml.
 */
export const CHART_LINT_NOTES: readonly string[] = ["[INFO] Chart.yaml: icon is recommended"];

/**
 * The Pod Security "restricted" warnings the API server gives for the chart's objects in a
 * namespace labelled as the manifests label pepr-system: its pods set no seccompProfile (see
 * CHART_DIFFERENCES), so under `enforce: restricted` their pods would be refused.
 */
export const CHART_PSS_WARNINGS: readonly string[] = ["server", "watcher"].map(
  c =>
    `seccompProfile (pod or container "${c}" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`,
);

/** kind/namespace/name ("-" for cluster-scoped objects): how objects of the chart and the manifests are matched. */
export function objectKey(o: K8sObject): string {
  return `${o.kind}/${o.metadata.namespace ?? "-"}/${o.metadata.name}`;
}

const ADMISSION = `Deployment/${NAMESPACE}/pepr-atb-operator`;
const WATCHER = `Deployment/${NAMESPACE}/pepr-atb-operator-watcher`;

export interface Lack {
  object: string;
  why: string;
}

/** Manifest objects the chart does not carry (install them beside it: docs/deployment.md). */
export const CHART_LACKS: readonly Lack[] = [
  { object: "CustomResourceDefinition/-/peprstores.pepr.dev", why: "the controller creates it at start" },
  { object: "CustomResourceDefinition/-/agenttasks.atb.siemens.com", why: "crds/agenttask.yaml" },
  { object: "CustomResourceDefinition/-/agenttaskapprovals.atb.siemens.com", why: "crds/agenttaskapproval.yaml" },
  {
    object: `ConfigMap/${POLICY_PARAMS.namespace}/${POLICY_PARAMS.name}`,
    why: "the scope policy's parameters (crds/agenttask-scope.yaml)",
  },
  { object: `ValidatingAdmissionPolicy/-/${POLICY_NAME}`, why: "the scope policy (crds/agenttask-scope.yaml)" },
  {
    object: `ValidatingAdmissionPolicyBinding/-/${POLICY_NAME}`,
    why: "the scope policy (crds/agenttask-scope.yaml)",
  },
  { object: `Service/${NAMESPACE}/${METRICS_SERVICE}`, why: "the operator's metrics port (tools/manifests.ts)" },
  { object: `ServiceMonitor/${NAMESPACE}/atb-operator`, why: "scrapes that Service (tools/manifests.ts)" },
];

export interface Difference {
  /** objectKey of the objects (chart and manifests carry each). */
  objects: readonly string[];
  /** A field path as diffObjects writes it; the difference covers the fields under it too. */
  path: string;
  /** The chart's side, in a few words. */
  chart: string;
  /** The manifests' side and who makes it. */
  manifests: string;
}

const POD = "spec.template.spec";
const WATCHER_CONTAINER = `${POD}.containers[name=watcher]`;

/** Field differences between the rendered chart (with HELM_VALUES) and the manifests. */
export const CHART_DIFFERENCES: readonly Difference[] = [
  {
    objects: [`Namespace/-/${NAMESPACE}`],
    path: "metadata.labels",
    chart: "label `pepr.dev` only",
    manifests: "the Pod Security `restricted` labels too (enforce, warn; tools/manifests.ts)",
  },
  {
    objects: [ADMISSION, WATCHER],
    path: `${POD}.securityContext.seccompProfile`,
    chart: "none (values.schema.json does not allow it)",
    manifests: "`RuntimeDefault` (tools/manifests.ts)",
  },
  {
    objects: [ADMISSION],
    path: `${POD}.containers[name=server].securityContext.readOnlyRootFilesystem`,
    chart: "unset (values.schema.json does not allow it)",
    manifests: "explicit `false`: the controller writes /app (tools/manifests.ts)",
  },
  {
    objects: [WATCHER],
    path: `${WATCHER_CONTAINER}.securityContext.readOnlyRootFilesystem`,
    chart: "unset (values.schema.json does not allow it)",
    manifests: "explicit `false`: the controller writes /app (tools/manifests.ts)",
  },
  {
    objects: [WATCHER],
    path: `${WATCHER_CONTAINER}.ports[containerPort=${METRICS_PORT}]`,
    chart: "port 3000 only (no value for more ports)",
    manifests: `port ${METRICS_PORT} \`metrics\` too (tools/manifests.ts)`,
  },
  {
    objects: ["ClusterRole/-/pepr-atb-operator"],
    path: "metadata.namespace",
    chart: "`pepr-system` on a cluster-scoped object (Pepr's template; the API server drops it)",
    manifests: "none",
  },
];

/** One field where the chart's object and the manifests' object differ. */
export interface FieldDiff {
  object: string;
  path: string;
  chart: unknown;
  manifests: unknown;
}

type Json = unknown;

const isObject = (v: Json): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v);
/** An empty list or map is an absent field: the API server stores neither (Pepr's templates write `envFrom: []`, `nodeSelector: {}`). */
const isEmpty = (v: Json): boolean =>
  v === undefined || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);

/** The field that identifies every element of both lists (name, else containerPort), if one does. */
function listKey(a: Json[], b: Json[]): string | undefined {
  for (const key of ["name", "containerPort"]) {
    const ids = (l: Json[]) => l.map(e => (isObject(e) ? e[key] : undefined));
    const all = [...ids(a), ...ids(b)];
    const unique = (l: Json[]) => new Set(ids(l)).size === l.length;
    if (all.every(v => typeof v === "string" || typeof v === "number") && unique(a) && unique(b)) return key;
  }
  return undefined;
}

/**
 * Every path where `chart` and `manifests` differ, as `a.b[i].c`, or `a.b[name=x].c` for lists
 * whose elements are identified by a name (or containerPort): those are compared by identity,
 * not by position. A field on one side only is reported with undefined on the other. Pure.
 */
export function diffValues(chart: Json, manifests: Json, path = ""): { path: string; chart: Json; manifests: Json }[] {
  const join = (k: string) => (path ? `${path}.${k}` : k);
  if (isEmpty(chart) && isEmpty(manifests)) return [];
  if (Array.isArray(chart) && Array.isArray(manifests)) {
    const key = listKey(chart, manifests);
    if (key) {
      const id = (e: Json) => (e as Record<string, Json>)[key] as string | number;
      const byId = new Map(manifests.map(e => [id(e), e]));
      const seen = new Set(chart.map(id));
      return [
        ...chart.flatMap(e => diffValues(e, byId.get(id(e)), `${path}[${key}=${id(e)}]`)),
        ...manifests.filter(e => !seen.has(id(e))).flatMap(e => diffValues(undefined, e, `${path}[${key}=${id(e)}]`)),
      ];
    }
    const n = Math.max(chart.length, manifests.length);
    return Array.from({ length: n }, (_, i) => diffValues(chart[i], manifests[i], `${path}[${i}]`)).flat();
  }
  if (isObject(chart) && isObject(manifests)) {
    const keys = [...new Set([...Object.keys(chart), ...Object.keys(manifests)])].sort();
    return keys.flatMap(k => diffValues(chart[k], manifests[k], join(k)));
  }
  if (JSON.stringify(chart) === JSON.stringify(manifests)) return [];
  return [{ path, chart, manifests }];
}

/** diffValues of two objects, named by the manifests' object. */
export function diffObjects(chart: K8sObject, manifests: K8sObject): FieldDiff[] {
  return diffValues(chart, manifests).map(d => ({ object: objectKey(manifests), ...d }));
}

/**
 * The manifests' object a chart object stands for: the same kind/namespace/name, or, for an
 * object the manifests carry cluster-scoped, the same kind/name (a namespace on a cluster-scoped
 * object is then a field difference, not another object).
 */
function counterpart(o: K8sObject, byKey: Map<string, K8sObject>): K8sObject | undefined {
  return byKey.get(objectKey(o)) ?? byKey.get(`${o.kind}/-/${o.metadata.name}`);
}

const covers = (doc: Difference, d: FieldDiff): boolean =>
  doc.objects.includes(d.object) &&
  (d.path === doc.path || d.path.startsWith(`${doc.path}.`) || d.path.startsWith(`${doc.path}[`));

export interface ChartComparison {
  /** Manifest objects the chart does not carry (keys, in the manifests' order). */
  lacks: string[];
  /** Chart objects the manifests do not carry. */
  extra: string[];
  /** Field differences no documented difference covers. */
  undocumented: FieldDiff[];
  /** Documented differences (object and path) that no longer occur. */
  unused: string[];
}

/** The rendered chart against the manifests, by CHART_LACKS and CHART_DIFFERENCES (or the lists given). Pure. */
export function compareChart(
  rendered: K8sObject[],
  manifests: K8sObject[],
  documented: readonly Difference[] = CHART_DIFFERENCES,
): ChartComparison {
  const byKey = new Map(manifests.map(o => [objectKey(o), o]));
  const matched = new Set(rendered.map(o => counterpart(o, byKey)).filter(m => m !== undefined));
  const diffs = rendered.flatMap(o => {
    const m = counterpart(o, byKey);
    return m ? diffObjects(o, m) : [];
  });
  return {
    lacks: manifests.filter(m => !matched.has(m)).map(objectKey),
    extra: rendered.filter(o => !counterpart(o, byKey)).map(objectKey),
    undocumented: diffs.filter(d => !documented.some(doc => covers(doc, d))),
    unused: documented.flatMap(doc =>
      doc.objects.filter(o => !diffs.some(d => d.object === o && covers(doc, d))).map(o => `${o} ${doc.path}`),
    ),
  };
}

/** A readable line per undocumented difference: the object, the field path, both values. */
export function describeDiffs(diffs: FieldDiff[]): string[] {
  const show = (v: Json) => (v === undefined ? "(absent)" : JSON.stringify(v));
  return diffs.map(d => `${d.object} ${d.path}: chart ${show(d.chart)}, manifests ${show(d.manifests)}`);
}

/** docs/deployment.md, region helm-values: the values file. */
export function helmValuesDoc(): string[] {
  return [
    "```yaml",
    `# ${VALUES_FILE}`,
    ...dump(HELM_VALUES, { lineWidth: -1 })
      .trimEnd()
      .split("\n")
      .map(l => (l.includes("defaultMode: 288") ? `${l}   # 0440` : l)),
    "```",
  ];
}

/** docs/deployment.md, region helm-differences: what the chart lacks and how its objects differ. */
export function helmDifferencesDoc(): string[] {
  const cell = (s: string) => s.replace(/\|/g, "\\|");
  return [
    "| Object (kind/namespace/name) | Field | Chart | dist/atb-operator.yaml |",
    "| --- | --- | --- | --- |",
    ...CHART_LACKS.map(l => `| \`${l.object}\` | (whole object) | not carried | ${cell(l.why)} |`),
    ...CHART_DIFFERENCES.map(
      d => `| ${d.objects.map(o => `\`${o}\``).join(", ")} | \`${d.path}\` | ${cell(d.chart)} | ${cell(d.manifests)} |`,
    ),
  ];
}
