// The broker's trust configuration (broker/trust.ts): issuer profiles with their presets, approver
// keys, the simple flags' "default" profile, and the errors a wrong file gets. Pure but for the
// trust file read from a temporary folder.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTrustFile, mergeTrust, parseTrust, resolveTrust } from "../../broker/trust";

const PEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----";

describe("parseTrust", () => {
  it("applies presets: agentauth checks iss and typ and vouches for dual_control only; default for nothing", () => {
    const t = parseTrust({
      profiles: [
        { name: "agentauth", preset: "agentauth", jwks_url: "https://agentauth.example/.well-known/jwks.json" },
        { name: "dev", preset: "dev", keys: [PEM] },
        { name: "plain", keys: [PEM] },
        { name: "custom", preset: "agentauth", iss: "my-agentauth", vouches: [], keys: [PEM] },
      ],
    });
    expect(t.profiles.map(p => [p.name, p.iss, p.typ, p.vouches])).toEqual([
      ["agentauth", "atb-agentauth", "JWT", ["dual_control"]],
      ["dev", undefined, undefined, ["approval", "dual_control", "executive_control"]],
      ["plain", undefined, undefined, []],
      ["custom", "my-agentauth", "JWT", []],
    ]);
    expect(t.attestationMaxLifetimeS).toBeUndefined();
  });

  it("normalizes approver ids and roles and resolves key paths against the file's folder", () => {
    const t = parseTrust(
      { approvers: [{ id: "spiffe://corp/user/Alice", roles: ["Executive"], keys: ["alice.pub"] }] },
      "/etc/atb",
    );
    expect(t.approvers).toEqual([
      {
        id: "spiffe://corp/user/Alice",
        key: "alice",
        roles: ["executive"],
        keys: ["/etc/atb/alice.pub"],
        jwks_file: undefined,
      },
    ]);
  });

  it.each([
    [{ profiles: [{ name: "x" }] }, /has no keys/],
    [{ profiles: [{ name: "x", keys: [PEM], vouch: ["approval"] }] }, /unknown field\(s\) vouch/],
    [{ profiles: [{ name: "x", keys: [PEM], vouches: ["everything"] }] }, /vouches/],
    [{ profiles: [{ name: "x", keys: [PEM], preset: "trusting" }] }, /preset/],
    [{ profiles: [{ name: "bad name", keys: [PEM] }] }, /name/],
    [{ profiles: [{ name: "x", jwks_url: "http://agentauth:9090/.well-known/jwks.json" }] }, /plain http/],
    [{ profiles: [{ name: "x", jwks_url: "ftp://x/jwks" }] }, /https/],
    [{ profiles: [{ name: "x", jwks_url: "https://x/jwks", jwks_cooldown_s: -1 }] }, /jwks_cooldown_s/],
    [{ approvers: [{ id: "al ice", keys: [PEM] }] }, /printable ASCII/],
    [{ approvers: [{ id: "alice" }] }, /has no keys/],
    [{ attestation_max_lifetime_s: 0 }, /at least 1/],
    [{ attestation_max_lifetime_s: 90000 }, /0\.\.86400/],
    [{ issuers: [] }, /unknown field/],
    [[], /must be an object/],
  ])("refuses %j", (raw, message) => {
    expect(() => parseTrust(raw)).toThrow(message);
  });

  it("allows plain http for loopback, or when asked", () => {
    expect(() => parseTrust({ profiles: [{ name: "x", jwks_url: "http://127.0.0.1:9090/jwks" }] })).not.toThrow();
    expect(() =>
      parseTrust({ profiles: [{ name: "x", jwks_url: "http://agentauth:9090/jwks", jwks_allow_http: true }] }),
    ).not.toThrow();
  });
});

describe("mergeTrust and resolveTrust", () => {
  it("refuses two profiles of one name and two approvers of one id", () => {
    const a = parseTrust({ profiles: [{ name: "x", keys: [PEM] }], approvers: [{ id: "alice", keys: [PEM] }] });
    const b = parseTrust({ profiles: [{ name: "x", keys: [PEM] }] });
    const c = parseTrust({ approvers: [{ id: "ALICE/", keys: [PEM] }] });
    expect(() => mergeTrust([a, b])).toThrow(/two issuer profiles are named "x"/);
    expect(() => mergeTrust([a, c])).toThrow(/same id.*"alice"/);
  });

  it("makes the simple flags a profile named default that vouches for nothing unless a preset says so", () => {
    expect(resolveTrust({ publicKeys: [PEM] }).profiles).toMatchObject([{ name: "default", vouches: [], keys: [PEM] }]);
    const aa = resolveTrust({ jwksUrl: "https://aa.example/jwks", preset: "agentauth", audience: "atb-broker" });
    expect(aa.profiles).toMatchObject([
      { name: "default", iss: "atb-agentauth", typ: "JWT", aud: "atb-broker", vouches: ["dual_control"] },
    ]);
    expect(resolveTrust({ publicKeys: [PEM], preset: "agentauth", issuer: "mine" }).profiles[0]!.iss).toBe("mine");
  });

  it("needs at least one profile, and refuses profile settings without keys", () => {
    expect(() => resolveTrust({})).toThrow(/no PoA verification keys/);
    expect(() => resolveTrust({ preset: "agentauth", trust: { profiles: [{ name: "a", keys: [PEM] }] } })).toThrow(
      /--poa-profile.*none is given/,
    );
  });

  it("reads a YAML trust file, next to the flags' profile", () => {
    const dir = mkdtempSync(join(tmpdir(), "atb-trust-"));
    try {
      const file = join(dir, "trust.yaml");
      writeFileSync(
        file,
        [
          "profiles:",
          "  - name: agentauth",
          "    preset: agentauth",
          "    jwks_url: https://agentauth.example/.well-known/jwks.json",
          "    jwks_ca_file: ca.pem",
          "approvers:",
          "  - id: alice",
          "    keys: [keys/alice.pub]",
          "attestation_max_lifetime_s: 600",
        ].join("\n"),
      );
      expect(loadTrustFile(file)).toMatchObject({
        profiles: [{ name: "agentauth", jwks_ca_file: join(dir, "ca.pem") }],
        approvers: [{ key: "alice", keys: [join(dir, "keys", "alice.pub")] }],
        attestationMaxLifetimeS: 600,
      });
      const both = resolveTrust({ publicKeys: [PEM], preset: "dev", trustFile: file });
      expect(both.profiles.map(p => p.name)).toEqual(["default", "agentauth"]);
      writeFileSync(file, "profiles: [");
      expect(() => loadTrustFile(file)).toThrow(/trust file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
