// Configuration parsing for the reference broker (flags + env); the operator's broker settings
// are covered with the rest of its configuration in config.test.ts:
// pure functions, table-driven.
import { completeOptions, parseBrokerCli } from "../../broker/config";

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

  it("reads the trust settings: JWKS URL and its CA, profile, iss, aud, trust file", () => {
    const env = {
      ATB_POA_JWKS_URL: "https://agentauth.example/.well-known/jwks.json",
      ATB_POA_PROFILE: "agentauth",
      ATB_TRUST_FILE: "env-trust.yaml",
      ATB_POA_JWKS_ALLOW_HTTP: "true",
    };
    expect(parseBrokerCli([], env).options.poa).toMatchObject({
      jwksUrl: "https://agentauth.example/.well-known/jwks.json",
      preset: "agentauth",
      trustFile: "env-trust.yaml",
      jwksAllowHttp: true,
    });
    const flags = [
      "--poa-jwks-url",
      "https://a/jwks",
      "--poa-jwks-ca",
      "ca.pem",
      "--poa-profile",
      "dev",
      "--poa-issuer",
      "me",
      "--poa-audience",
      "atb-broker",
      "--trust-file",
      "t.json",
    ];
    expect(parseBrokerCli(flags, env).options.poa).toMatchObject({
      jwksUrl: "https://a/jwks",
      jwksCaFile: "ca.pem",
      preset: "dev",
      issuer: "me",
      audience: "atb-broker",
      trustFile: "t.json",
    });
    expect(parseBrokerCli([], {}).options.poa).not.toHaveProperty("preset");
    const onlyTrust = completeOptions(
      parseBrokerCli(["--tls-cert", "c", "--tls-key", "k", "--client-ca", "ca", "--trust-file", "t.yaml"], {}),
    );
    expect(onlyTrust.poa.trustFile).toBe("t.yaml");
  });

  it.each([
    [["--poa-profile", "trusting"], /--poa-profile must be one of default, dev, agentauth/],
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
      "missing --tls-cert, --tls-key, --client-ca, --poa-key, --poa-jwks, --poa-jwks-url or --trust-file",
    );
    const ok = completeOptions(
      parseBrokerCli(["--tls-cert", "c", "--tls-key", "k", "--client-ca", "ca", "--poa-jwks", "j.json"], {}),
    );
    expect(ok.tls).toEqual({ certFile: "c", keyFile: "k", clientCaFile: "ca" });
  });
});
