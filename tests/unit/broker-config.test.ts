// Configuration parsing for the broker client (env map) and the reference broker (flags + env):
// pure functions, table-driven.
import { brokerClientConfigFromEnv, BROKER_CLIENT_DEFAULTS } from "../../capabilities/lib/broker-config";
import { completeOptions, parseBrokerCli } from "../../broker/config";

describe("brokerClientConfigFromEnv", () => {
  const base = {
    ATB_BROKER_URL: "https://atb-broker.atb-system.svc:8443",
    TLS_CERT_FILE: "/tls/tls.crt",
    TLS_KEY_FILE: "/tls/tls.key",
    TLS_CA_FILE: "/tls/ca.crt",
  };

  it("reads URL, TLS files and defaults, and freezes the result", () => {
    const c = brokerClientConfigFromEnv(base);
    expect(c).toMatchObject({
      brokerUrl: base.ATB_BROKER_URL,
      insecure: false,
      tls: { certFile: "/tls/tls.crt", keyFile: "/tls/tls.key", caFile: "/tls/ca.crt" },
      ...BROKER_CLIENT_DEFAULTS,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    ["true", true],
    ["1", true],
    ["false", false],
    ["", false],
    ["TRUE", true],
  ])("ATB_INSECURE=%p -> %p", (v, expected) => {
    expect(brokerClientConfigFromEnv({ ...base, ATB_INSECURE: v }).insecure).toBe(expected);
  });

  it("reads the retry settings", () => {
    const c = brokerClientConfigFromEnv({
      ...base,
      ATB_BROKER_TIMEOUT_MS: "750",
      ATB_BROKER_MAX_ATTEMPTS: "3",
      ATB_BROKER_BACKOFF_BASE_MS: "50",
      ATB_BROKER_BACKOFF_MAX_MS: "400",
    });
    expect(c).toMatchObject({ attemptTimeoutMs: 750, maxAttempts: 3, baseBackoffMs: 50, maxBackoffMs: 400 });
  });

  it.each([
    ["no URL", { ATB_BROKER_URL: undefined }, /ATB_BROKER_URL is required/],
    ["plain http", { ATB_BROKER_URL: "http://broker:8080" }, /must use https/],
    ["not a URL", { ATB_BROKER_URL: "broker:8443" }, /must use https|not a URL/],
    ["cert without key", { TLS_KEY_FILE: "" }, /set together/],
    ["bad boolean", { ATB_INSECURE: "yes" }, /ATB_INSECURE/],
    ["zero timeout", { ATB_BROKER_TIMEOUT_MS: "0" }, /ATB_BROKER_TIMEOUT_MS/],
    ["fractional attempts", { ATB_BROKER_MAX_ATTEMPTS: "2.5" }, /ATB_BROKER_MAX_ATTEMPTS/],
    ["cap below base", { ATB_BROKER_BACKOFF_BASE_MS: "500", ATB_BROKER_BACKOFF_MAX_MS: "100" }, /maxBackoffMs/],
  ])("rejects %s with CONFIG_INVALID", (_n, over, message) => {
    const run = () => brokerClientConfigFromEnv({ ...base, ...over });
    expect(run).toThrow(message);
    expect(run).toThrow(expect.objectContaining({ code: "AT_ERR_CONFIG_INVALID" }));
  });
});

describe("parseBrokerCli", () => {
  it("has loopback and safe defaults", () => {
    const { options, logLevel, help } = parseBrokerCli([], {});
    expect(options).toMatchObject({
      host: "127.0.0.1",
      port: 8443,
      jtiCacheSize: 100000,
      audit: "stdout",
      poa: { maxLifetimeS: 300, clockSkewS: 30, publicKeyFiles: [] },
    });
    expect({ logLevel, help }).toEqual({ logLevel: "info", help: false });
  });

  it("lets flags win over env and reads repeatable keys", () => {
    const env = {
      ATB_BROKER_PORT: "9000",
      ATB_POA_PUBLIC_KEYS: "a.pem, b.pem",
      ATB_CLOCK_SKEW: "10",
      ATB_BROKER_TLS_CERT: "env.crt",
    };
    const a = parseBrokerCli(["--port", "9443", "--tls-cert", "flag.crt"], env).options;
    expect(a).toMatchObject({
      port: 9443,
      tls: { certFile: "flag.crt" },
      poa: { publicKeyFiles: ["a.pem", "b.pem"], clockSkewS: 10 },
    });
    const b = parseBrokerCli(["--poa-key", "x.pem", "--poa-key", "y.pem", "--max-token-lifetime", "900"], env).options;
    expect(b.poa).toMatchObject({ publicKeyFiles: ["x.pem", "y.pem"], maxLifetimeS: 900 });
  });

  it.each([
    [["--max-token-lifetime", "901"], /1\.\.900/],
    [["--max-token-lifetime", "0"], /1\.\.900/],
    [["--port", "-1"], /--port/],
    [["--port", "70000"], /65535/],
    [["--jti-cache-size", "0"], /at least 1/],
    [["--clock-skew", "abc"], /--clock-skew/],
    [["--unknown"], /Unknown option/],
  ])("rejects %p", (argv, message) => {
    expect(() => parseBrokerCli(argv as string[], {})).toThrow(message);
  });

  it("lists what is missing before the broker can start", () => {
    expect(() => completeOptions(parseBrokerCli([], {}))).toThrow(
      "missing --tls-cert, --tls-key, --client-ca, --poa-key or --poa-jwks",
    );
    const ok = completeOptions(
      parseBrokerCli(["--tls-cert", "c", "--tls-key", "k", "--client-ca", "ca", "--poa-jwks", "j.json"], {}),
    );
    expect(ok.tls).toEqual({ certFile: "c", keyFile: "k", clientCaFile: "ca" });
  });
});
