// Does a pod template the API server returns (a workload's, a ReplicaSet's, a ControllerRevision's)
// say what a manifest's template says? Equal up to what the API server itself adds or rewrites:
// the defaults it fills in (imagePullPolicy, terminationMessagePath, dnsPolicy, restartPolicy,
// schedulerName, securityContext {}, port protocol, probe timings, volume modes, ...), the
// pod-template-hash label the Deployment controller adds, quantities in canonical form ("0.5" →
// "500m"), and empty or false values it drops. Anything else is a difference: an extra container,
// init container, volume, env var, port, label or annotation, a field the manifest does not set
// holding something other than its default, or any changed value of a field the manifest sets.
// Pure: no I/O, so the rules are tested one by one (tests/unit/template.test.ts).
import { sameQuantity } from "./quantity";

type Rec = Record<string, unknown>;

/** What a default is, given the manifest's object that lacks the field. */
type Default = (wanted: Rec) => unknown;

/** How the fields of one kind of object compare. Fields not listed compare generically (no defaults). */
interface Shape {
  defaults?: Record<string, Default>;
  /** Field → the shape of its value (an object, or each item of a list). */
  fields?: Record<string, ShapeName>;
}

/**
 * A key of SHAPES, or `map`: string keys chosen by the user (labels, annotations, nodeSelector),
 * exactly the same keys; `quantities`: a map of quantities; `quantity`: one quantity; `any`:
 * compared as it is, without defaults.
 */
type ShapeName = string;

const is =
  (value: unknown): Default =>
  () =>
    value;

/** kubelet's rule (SetDefaults_Container): Always for `:latest` or no tag, else IfNotPresent. */
export function defaultPullPolicy(image: unknown): string {
  const s = typeof image === "string" ? image : "";
  if (s.includes("@")) return "IfNotPresent";
  const last = s.slice(s.lastIndexOf("/") + 1);
  const colon = last.lastIndexOf(":");
  const tag = colon < 0 ? "latest" : last.slice(colon + 1);
  return tag === "latest" ? "Always" : "IfNotPresent";
}

/** The API server's defaults for a pod template, from k8s.io/kubernetes pkg/apis/core/v1/defaults.go. */
const SHAPES: Record<string, Shape> = {
  template: { fields: { metadata: "meta", spec: "pod" } },
  meta: { fields: { labels: "map", annotations: "map" } },
  pod: {
    defaults: {
      restartPolicy: is("Always"),
      terminationGracePeriodSeconds: is(30),
      dnsPolicy: is("ClusterFirst"),
      schedulerName: is("default-scheduler"),
      // The deprecated alias and the field are copied into each other by the v1 conversion.
      serviceAccount: w => w.serviceAccountName,
      serviceAccountName: w => w.serviceAccount,
    },
    fields: {
      containers: "container",
      initContainers: "container",
      ephemeralContainers: "container",
      volumes: "volume",
      nodeSelector: "map",
      overhead: "quantities",
      resources: "resources",
    },
  },
  container: {
    defaults: {
      imagePullPolicy: w => defaultPullPolicy(w.image),
      terminationMessagePath: is("/dev/termination-log"),
      terminationMessagePolicy: is("File"),
    },
    fields: {
      ports: "port",
      env: "env",
      resources: "resources",
      livenessProbe: "probe",
      readinessProbe: "probe",
      startupProbe: "probe",
      lifecycle: "lifecycle",
    },
  },
  // (A host-network Pod's hostPort defaults to its containerPort, but not in templates since
  // Kubernetes 1.28: DefaultHostNetworkHostPortsInPodTemplates is off.)
  port: { defaults: { protocol: is("TCP") } },
  resources: { fields: { limits: "quantities", requests: "quantities" } },
  probe: {
    defaults: { timeoutSeconds: is(1), periodSeconds: is(10), successThreshold: is(1), failureThreshold: is(3) },
    fields: { httpGet: "httpGet" },
  },
  httpGet: { defaults: { path: is("/"), scheme: is("HTTP") } },
  lifecycle: { fields: { postStart: "handler", preStop: "handler" } },
  handler: { fields: { httpGet: "httpGet" } },
  env: { fields: { valueFrom: "envSource" } },
  envSource: { fields: { fieldRef: "fieldRef", resourceFieldRef: "resourceFieldRef" } },
  fieldRef: { defaults: { apiVersion: is("v1") } },
  resourceFieldRef: { defaults: { divisor: is("0") }, fields: { divisor: "quantity" } },
  volume: {
    fields: {
      secret: "fileMode",
      configMap: "fileMode",
      downwardAPI: "downwardAPI",
      projected: "projected",
      emptyDir: "emptyDir",
      ephemeral: "ephemeral",
    },
  },
  fileMode: { defaults: { defaultMode: is(420) } },
  downwardAPI: { defaults: { defaultMode: is(420) }, fields: { items: "downwardFile" } },
  downwardFile: { fields: { fieldRef: "fieldRef", resourceFieldRef: "resourceFieldRef" } },
  projected: { defaults: { defaultMode: is(420) }, fields: { sources: "projection" } },
  projection: { fields: { downwardAPI: "projectedDownward", serviceAccountToken: "serviceAccountToken" } },
  projectedDownward: { fields: { items: "downwardFile" } },
  serviceAccountToken: { defaults: { expirationSeconds: is(3600) } },
  emptyDir: { fields: { sizeLimit: "quantity" } },
  ephemeral: { fields: { volumeClaimTemplate: "claimTemplate" } },
  claimTemplate: { fields: { spec: "claimSpec" } },
  claimSpec: { defaults: { volumeMode: is("Filesystem") }, fields: { resources: "resources" } },
};

const POD_TEMPLATE_HASH = "pod-template-hash";
/** Differences listed in a message before "and N more". */
const SHOWN = 3;

function isRec(v: unknown): v is Rec {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** What the API server drops or never sends back: null, "", [], and objects holding only those. */
function blank(v: unknown, shape: ShapeName): boolean {
  if (v === undefined || v === null || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (!isRec(v)) return false;
  // A label with an empty value is a label: in a map, only no keys at all is blank.
  if (shape === "map" || shape === "quantities") return Object.keys(v).length === 0;
  const fields = shapeOf(shape).fields ?? {};
  return Object.entries(v).every(([k, x]) => blank(x, fields[k] ?? "any"));
}

function shapeOf(name: ShapeName): Shape {
  return Object.hasOwn(SHAPES, name) ? SHAPES[name] : {};
}

/** Where values may be literals an agent or another writer would not want shown (env values,
 * annotation values, commands): a message names the field there, not its value. */
const UNSHOWN = /(^|\.)(env|annotations|command|args)(\[|\.|$)/;

/** A value for a message, bounded: lists by their items' names, objects by their keys, and no
 * literal from an env var, an annotation or a command line. */
function show(v: unknown, path: string): string {
  if (Array.isArray(v)) {
    const names = v.map(label);
    return names.every(n => n !== undefined) ? bounded(`[${names.join(", ")}]`) : `${v.length} items`;
  }
  if (isRec(v)) return bounded(`{${Object.keys(v).join(", ")}}`);
  if (UNSHOWN.test(path)) return "(value not shown)";
  return bounded(JSON.stringify(v) ?? String(v));
}

function bounded(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

/** An item's name in a list (containers, volumes, env, mounts, ports): how messages point at it. */
function label(item: unknown): string | undefined {
  if (!isRec(item)) return undefined;
  if (typeof item.name === "string") return item.name;
  if (typeof item.containerPort === "number") return String(item.containerPort);
  if (typeof item.mountPath === "string") return item.mountPath;
  return undefined;
}

class Differ {
  readonly out: string[] = [];

  value(shape: ShapeName, w: unknown, a: unknown, path: string): void {
    if (shape === "quantity") {
      if (!sameQuantity(w, a) && w !== a) this.out.push(`${path}: wanted ${show(w, path)}, got ${show(a, path)}`);
    } else if (Array.isArray(w) && Array.isArray(a)) {
      this.list(shape, w, a, path);
    } else if (isRec(w) && isRec(a)) {
      if (shape === "map" || shape === "quantities") this.map(shape, w, a, path);
      else this.object(shape, w, a, path);
    } else if (w !== a) {
      this.out.push(`${path}: wanted ${show(w, path)}, got ${show(a, path)}`);
    }
  }

  /** User-keyed maps: the same keys, each with the same value. */
  map(shape: "map" | "quantities", w: Rec, a: Rec, path: string): void {
    const missing = Object.keys(w).filter(k => !Object.hasOwn(a, k));
    const extra = Object.keys(a).filter(k => !Object.hasOwn(w, k));
    if (missing.length) this.out.push(`${path}: missing ${missing.join(", ")}`);
    if (extra.length) this.out.push(`${path}: not in the manifest: ${extra.join(", ")}`);
    for (const k of Object.keys(w).filter(k => Object.hasOwn(a, k))) {
      this.value(shape === "quantities" ? "quantity" : "any", w[k], a[k], `${path}.${k}`);
    }
  }

  /** Lists keep their order on the API server: the same items, item by item. */
  list(shape: ShapeName, w: unknown[], a: unknown[], path: string): void {
    const wl = w.map(label);
    const al = a.map(label);
    const named = [...wl, ...al].every(l => l !== undefined);
    if (named && wl.join("\n") !== al.join("\n")) {
      this.out.push(`${path}: wanted [${wl.join(", ")}], got [${al.join(", ")}]`);
      return;
    }
    if (w.length !== a.length) {
      this.out.push(`${path}: wanted ${w.length} items, got ${a.length}`);
      return;
    }
    w.forEach((item, i) => this.value(shape, item, a[i], `${path}[${named ? wl[i] : i}]`));
  }

  object(shape: ShapeName, w: Rec, a: Rec, path: string): void {
    const { defaults = {}, fields = {} } = shapeOf(shape);
    for (const k of new Set([...Object.keys(w), ...Object.keys(a)])) {
      const child = Object.hasOwn(fields, k) ? fields[k] : "any";
      const fallback = Object.hasOwn(defaults, k) ? defaults[k](w) : undefined;
      this.field(child, [w[k], a[k]], path ? `${path}.${k}` : k, fallback);
    }
  }

  /** One field of an object: set on both sides, on one side only, or on neither. */
  field(shape: ShapeName, [w, a]: [unknown, unknown], path: string, fallback: unknown): void {
    const [wBlank, aBlank] = [blank(w, shape), blank(a, shape)];
    if (wBlank && aBlank) return;
    // false and 0 in the manifest: the API server drops them for fields that are not pointers.
    if (aBlank) {
      if (w !== false && w !== 0) this.out.push(`${path}: wanted ${show(w, path)}, missing`);
    } else if (wBlank) {
      this.unset(shape, fallback, a, path);
    } else {
      this.value(shape, w, a, path);
    }
  }

  /** A field the manifest leaves out: fine only if it holds the API server's default. */
  unset(shape: ShapeName, fallback: unknown, a: unknown, path: string): void {
    if (fallback === undefined) {
      this.out.push(`${path}: not in the manifest (got ${show(a, path)})`);
      return;
    }
    const before = this.out.length;
    this.value(shape, fallback, a, path);
    if (this.out.length > before)
      this.out.splice(before, this.out.length - before, `${path}: not in the manifest (got ${show(a, path)})`);
  }
}

/** The template without what controllers add to it: the pod-template-hash label and `$patch`. */
function withoutHash(template: unknown): Rec {
  const t = isRec(template) ? structuredClone(template) : {};
  delete t.$patch;
  const meta = t.metadata;
  if (isRec(meta) && isRec(meta.labels)) {
    delete meta.labels[POD_TEMPLATE_HASH];
  }
  return t;
}

/**
 * How `actual` (a pod template as the API server returns it) differs from `wanted` (a manifest's
 * template): one line per difference, naming the field (`spec.containers: wanted [a], got [a, b]`).
 * Empty when they match.
 */
export function templateDiff(wanted: unknown, actual: unknown): string[] {
  const w = withoutHash(wanted);
  const a = withoutHash(actual);
  const d = new Differ();
  d.object("template", w, a, "");
  return d.out;
}

/** The differences as one bounded sentence for a task's message. */
export function describeDiff(diff: readonly string[]): string {
  const more = diff.length > SHOWN ? `; and ${diff.length - SHOWN} more` : "";
  return `${diff.slice(0, SHOWN).join("; ")}${more}`;
}
