// The Grafana dashboard and the Prometheus alert rules in monitoring/ query only metrics the
// operator really exports: every metric name in their PromQL must be registered by
// OperatorMetrics (histograms as _bucket/_count/_sum). The rules file must be a valid rule file
// with a duration, a severity and a summary on every alert.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import { OperatorMetrics } from "../../capabilities/lib/metrics";

const root = join(__dirname, "..", "..");
const dashboard = JSON.parse(
  readFileSync(join(root, "monitoring", "atb-operator-dashboard.json"), "utf8"),
) as Dashboard;
const rules = load(readFileSync(join(root, "monitoring", "alerts.yaml"), "utf8")) as RuleFile;

interface Dashboard {
  panels: { type: string; title: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; query?: unknown; definition?: string }[] };
}
interface Rule {
  alert?: string;
  record?: string;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}

/** Series Prometheus writes itself for each scrape target; not exported by the operator. */
const PROMETHEUS_SYNTHETIC = new Set(["up"]);

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/**
 * Metric names referenced by a PromQL expression: identifiers that are not functions, keywords,
 * label names (inside {...} or by/without/on/ignoring/group_x lists), strings, durations or
 * Grafana variables.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ") // strings
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // range selectors and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // label lists
    .replace(/\$\{?\w+\}?/g, " "); // Grafana variables
  const names = new Set<string>();
  const re = /[a-zA-Z_:][a-zA-Z0-9_:]*/g;
  for (let m = re.exec(stripped); m; m = re.exec(stripped)) {
    const rest = stripped.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest)) continue; // function call or aggregation
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    if (/^\d/.test(m[0])) continue;
    // the identifier right after a number (1e3, 0.5) is part of the number
    if (m.index > 0 && /[\d.]/.test(stripped[m.index - 1])) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Every series name a scrape of OperatorMetrics' registry can contain. */
async function exportedNames(): Promise<Set<string>> {
  const metrics = await new OperatorMetrics().registry.getMetricsAsJSON();
  const names = new Set<string>();
  for (const m of metrics) {
    names.add(m.name);
    if (String(m.type) === "histogram") for (const s of ["_bucket", "_count", "_sum"]) names.add(m.name + s);
    if (String(m.type) === "summary") for (const s of ["_count", "_sum"]) names.add(m.name + s);
  }
  return names;
}

function dashboardExprs(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of dashboard.panels)
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of dashboard.templating.list) {
    if (typeof v.definition === "string") out.push({ where: `variable ${v.name}`, expr: v.definition });
  }
  return out;
}

function ruleExprs(): { where: string; expr: string }[] {
  return rules.groups.flatMap(g => g.rules.map(r => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr) })));
}

describe("metricNames (the PromQL scanner the checks rely on)", () => {
  test.each([
    ['sum by (phase) (atb_operator_tasks{phase=~"Pending|x"})', ["atb_operator_tasks"]],
    [
      'histogram_quantile(0.95, sum by (le, action) (rate(atb_operator_processing_seconds_bucket{action=~"$action"}[$__rate_interval])))',
      ["atb_operator_processing_seconds_bucket"],
    ],
    [
      'sum(increase(a_total[10m])) > 0 unless on() sum(increase(b_count{outcome!="error"}[10m])) > 1e3',
      ["a_total", "b_count"],
    ],
    ['up{job="x"} == 0 or absent(up{job="x"})', ["up"]],
    ["label_values(atb_operator_tasks_total, action)", ["atb_operator_tasks_total", "action"]],
  ])("%s", (expr, names) => {
    expect(metricNames(expr).sort()).toEqual([...names].sort());
  });
});

describe("the dashboard and the alert rules query exported metrics", () => {
  test("the dashboard covers phases, actions and risk tiers, denial reasons, quantiles, the broker and retries", () => {
    const all = dashboardExprs()
      .map(e => e.expr)
      .join("\n");
    for (const needle of [
      "atb_operator_tasks{",
      "atb_operator_tasks_allowed",
      "atb_operator_tasks_denied",
      "atb_operator_tasks_failed",
      "risk_tier",
      "sum by (reason)",
      "histogram_quantile(0.5, sum by (le) (rate(atb_operator_processing_seconds_bucket",
      "histogram_quantile(0.99, sum by (le) (rate(atb_operator_processing_seconds_bucket",
      "atb_operator_broker_request_seconds_bucket",
      "atb_operator_broker_errors_total",
      "atb_operator_retries_total",
    ]) {
      expect(all).toContain(needle);
    }
  });

  test("every metric name in the dashboard's queries is exported by OperatorMetrics", async () => {
    const exported = await exportedNames();
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(20);
    const missing: string[] = [];
    let seen = 0;
    for (const { where, expr } of exprs) {
      // label_values(metric, label): the second argument is a label, not a metric
      const e = expr.replace(/label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)/g, "$1");
      for (const name of metricNames(e)) {
        seen++;
        if (!exported.has(name)) missing.push(`${where}: ${name}`);
      }
    }
    expect(seen).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });

  test("every metric name in the alert rules is exported by OperatorMetrics (or is Prometheus' own `up`)", async () => {
    const exported = await exportedNames();
    const missing: string[] = [];
    const used = new Set<string>();
    for (const { where, expr } of ruleExprs()) {
      for (const name of metricNames(expr)) {
        used.add(name);
        if (!exported.has(name) && !PROMETHEUS_SYNTHETIC.has(name)) missing.push(`${where}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
    for (const m of [
      "atb_operator_broker_errors_total",
      "atb_operator_tasks_failed",
      "atb_operator_tasks",
      "atb_operator_broker_request_seconds_count",
    ]) {
      expect(used).toContain(m);
    }
  });

  test("a name that is not exported is reported (the check can fail)", async () => {
    const exported = await exportedNames();
    const names = metricNames(
      "sum(rate(atb_operator_tasks_allowed_total[5m])) + atb_operator_processing_seconds_bucket",
    );
    expect(names.filter(n => !exported.has(n))).toEqual(["atb_operator_tasks_allowed_total"]);
  });
});

describe("monitoring/alerts.yaml", () => {
  test("is a rule file whose alerts have expr, for, labels.severity and annotations.summary", () => {
    expect(Array.isArray(rules.groups)).toBe(true);
    const alerts = rules.groups.flatMap(g => g.rules);
    expect(alerts.map(r => r.alert)).toEqual(
      expect.arrayContaining(["AtbBrokerUnreachable", "AtbTasksFailing", "AtbTasksStuck"]),
    );
    for (const r of alerts) {
      expect({ alert: r.alert, expr: typeof r.expr }).toEqual({ alert: r.alert, expr: "string" });
      expect(String(r.expr).trim()).not.toBe("");
      expect(String(r.for)).toMatch(/^\d+[smhdw]$/);
      expect(["critical", "warning", "info"]).toContain(r.labels?.severity);
      expect(typeof r.annotations?.summary).toBe("string");
      expect(String(r.annotations?.summary).length).toBeGreaterThan(10);
    }
    expect(new Set(alerts.map(r => r.alert)).size).toBe(alerts.length);
  });

  test("the stuck-task alert looks only at non-terminal phases", () => {
    const stuck = rules.groups.flatMap(g => g.rules).find(r => r.alert === "AtbTasksStuck");
    expect(String(stuck?.expr)).toMatch(/atb_operator_tasks\{phase=~"Pending\|Processing\|Executing"\}/);
  });
});
