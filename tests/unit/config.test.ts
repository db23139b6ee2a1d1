// parseConfig: defaults, the empty-WATCH_NAMESPACE rule, and errors that name the variable.
import fc from "fast-check";
import { parseConfig } from "../../capabilities/lib/config";
import { AtbError } from "../../capabilities/lib/errors";

describe("parseConfig", () => {
  test("defaults: all namespaces, cross-namespace denied, TLS verification on", () => {
    const c = parseConfig({});
    expect(c.watchNamespaces).toEqual([]);
    expect(c.allowCrossNamespace).toBe(false);
    expect(c.broker.insecure).toBe(false);
    expect(c.broker.url).toBe("https://127.0.0.1:8443");
    expect(Object.isFrozen(c)).toBe(true);
  });

  test("defaults that bound memory: sweep pages of 100 tasks, Liftoff only, heap growth 20 %", () => {
    // docs/benchmarks.md: pages of 500 made a restart with 100,000 finished tasks peak 20-60 MiB higher.
    const c = parseConfig({});
    expect(c.sweepPageSize).toBe(100);
    expect(c.wasmTierUp).toBe(false);
    expect(c.heapGrowingPercent).toBe(20);
  });

  test("broker client settings: URL, TLS files, retry bounds", () => {
    const c = parseConfig({
      ATB_BROKER_URL: "https://atb-broker.atb-system.svc:8443/",
      TLS_CERT_FILE: "/tls/tls.crt",
      TLS_KEY_FILE: "/tls/tls.key",
      TLS_CA_FILE: "/tls/ca.crt",
      ATB_BROKER_TIMEOUT_MS: "750",
      ATB_BROKER_MAX_ATTEMPTS: "3",
      ATB_BROKER_BACKOFF_BASE_MS: "50",
      ATB_BROKER_BACKOFF_MAX_MS: "400",
    });
    expect(c.broker).toMatchObject({
      url: "https://atb-broker.atb-system.svc:8443",
      tls: { certFile: "/tls/tls.crt", keyFile: "/tls/tls.key", caFile: "/tls/ca.crt" },
      attemptTimeoutMs: 750,
      maxAttempts: 3,
      baseBackoffMs: 50,
      maxBackoffMs: 400,
    });
  });

  test("WATCH_NAMESPACE lists namespaces; empty means all", () => {
    expect(parseConfig({ WATCH_NAMESPACE: "production, staging" }).watchNamespaces).toEqual(["production", "staging"]);
    expect(parseConfig({ WATCH_NAMESPACE: "" }).watchNamespaces).toEqual([]);
  });

  test("ATB_PROTECTED_NAMESPACES: the default list unless set; a value replaces it", () => {
    const c = parseConfig({});
    expect(c.protectedNamespaces).toEqual(["kube-system", "kube-public", "kube-node-lease", "pepr-system"]);
    expect(parseConfig({ ATB_PROTECTED_NAMESPACES: " " }).protectedNamespaces).toEqual(c.protectedNamespaces);
    expect(parseConfig({ ATB_PROTECTED_NAMESPACES: "kube-public, pepr-system" }).protectedNamespaces).toEqual([
      "kube-public",
      "pepr-system",
    ]);
    // allowed explicitly: kube-system is not in the list, so an operator may serve it
    expect(
      parseConfig({ ATB_PROTECTED_NAMESPACES: "kube-public,pepr-system", WATCH_NAMESPACE: "kube-system" })
        .watchNamespaces,
    ).toEqual(["kube-system"]);
  });

  test("the out-of-scope check: 60 s grace by default, 0 turns it off, optionally limited to namespaces", () => {
    expect(parseConfig({}).outOfScopeGraceMs).toBe(60_000);
    expect(parseConfig({}).outOfScopeNamespaces).toEqual([]);
    expect(parseConfig({ ATB_OUT_OF_SCOPE_GRACE_SECONDS: "0" }).outOfScopeGraceMs).toBe(0);
    const c = parseConfig({ WATCH_NAMESPACE: "shop", ATB_OUT_OF_SCOPE_NAMESPACES: "kube-system,orphans" });
    expect(c.outOfScopeNamespaces).toEqual(["kube-system", "orphans"]);
  });

  test.each([
    [{ ATB_PROTECTED_NAMESPACES: "kube_system" }, /^ATB_PROTECTED_NAMESPACES: must be a comma-separated list/],
    [
      { WATCH_NAMESPACE: "shop,kube-system" },
      /^WATCH_NAMESPACE: must not name a protected namespace \(kube-system: in ATB_PROTECTED_NAMESPACES=kube-system,/,
    ],
    [{ ATB_OUT_OF_SCOPE_GRACE_SECONDS: "-1" }, /^ATB_OUT_OF_SCOPE_GRACE_SECONDS: must be a whole number/],
    [{ ATB_OUT_OF_SCOPE_NAMESPACES: "orphans" }, /^ATB_OUT_OF_SCOPE_NAMESPACES: applies only when WATCH_NAMESPACE/],
    [
      { WATCH_NAMESPACE: "shop", ATB_OUT_OF_SCOPE_NAMESPACES: "shop" },
      /^ATB_OUT_OF_SCOPE_NAMESPACES: must not name a namespace in WATCH_NAMESPACE \(shop\)/,
    ],
  ])("namespace settings: rejects %p, naming the variable", (env, message) => {
    expect(() => parseConfig(env)).toThrow(message);
  });

  test.each([
    [{ ATB_BROKER_URL: "http://broker:8443" }, /ATB_BROKER_URL: must use https/],
    [{ ATB_BROKER_URL: "::" }, /ATB_BROKER_URL: must be an absolute https URL/],
    [{ ATB_WORKERS: "0" }, /ATB_WORKERS: must be between 1 and 256/],
    [{ ATB_WORKERS: "eight" }, /ATB_WORKERS: must be a whole number/],
    [{ ATB_INSECURE: "maybe" }, /ATB_INSECURE: must be true or false/],
    [{ LOG_LEVEL: "verbose" }, /LOG_LEVEL: must be one of/],
    [{ WATCH_NAMESPACE: "Prod_1" }, /WATCH_NAMESPACE: must be a comma-separated list/],
    [{ TLS_CERT_FILE: "/x.crt" }, /TLS_CERT_FILE\/TLS_KEY_FILE: must be set together/],
  ])("rejects %p with a message naming the variable", (env, message) => {
    expect(() => parseConfig(env)).toThrow(message);
    expect(() => parseConfig(env)).toThrow(AtbError);
  });

  test("never throws anything but a config error, whatever the environment holds", () => {
    const keys = [
      "WATCH_NAMESPACE",
      "ATB_PROTECTED_NAMESPACES",
      "ATB_OUT_OF_SCOPE_NAMESPACES",
      "ATB_OUT_OF_SCOPE_GRACE_SECONDS",
      "ATB_PENDING_CLAIM_SECONDS",
      "ATB_BROKER_URL",
      "ATB_WORKERS",
      "ATB_INSECURE",
      "LOG_LEVEL",
      "ATB_METRICS_PORT",
    ];
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), fc.string()), env => {
        try {
          parseConfig(env);
        } catch (err) {
          expect(err).toBeInstanceOf(AtbError);
          expect((err as AtbError).code).toBe("AT_ERR_CONFIG_INVALID");
        }
      }),
    );
  });
});

describe("ATB_PENDING_CLAIM_SECONDS", () => {
  test.each([
    [{}, 20_000],
    [{ ATB_OUT_OF_SCOPE_GRACE_SECONDS: "3" }, 1_000],
    [{ ATB_OUT_OF_SCOPE_GRACE_SECONDS: "0" }, undefined],
    [{ ATB_OUT_OF_SCOPE_GRACE_SECONDS: "0", ATB_PENDING_CLAIM_SECONDS: "600" }, 600_000],
    [{ ATB_PENDING_CLAIM_SECONDS: "0" }, 0],
  ])("%p gives %p ms (default: a third of the out-of-scope grace; never when that check is off)", (env, ms) => {
    expect(parseConfig(env).pendingClaimMs).toBe(ms);
  });

  test("GIVEN a claim not below the grace THEN a clear refusal naming both", () => {
    expect(() => parseConfig({ ATB_OUT_OF_SCOPE_GRACE_SECONDS: "30", ATB_PENDING_CLAIM_SECONDS: "30" })).toThrow(
      /ATB_PENDING_CLAIM_SECONDS.*must be less than ATB_OUT_OF_SCOPE_GRACE_SECONDS \(30\)/,
    );
  });
});
