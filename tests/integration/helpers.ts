// Shared set-up for the authorization integration tests: a throwaway PKI (two CAs, so "wrong CA"
// cases are real), PoA keys for the three allowed algorithms, a log capture that every client and
// broker logger of a suite writes to, and helpers to start the reference broker and a client.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../capabilities/lib/logger";
import { createBrokerClient, type BrokerClient, type BrokerClientConfig } from "../../capabilities/lib/broker/client";
import { ensureCA, issueCert, type CertPaths } from "../../broker/pki";
import { startBroker, type BrokerOptions, type RunningBroker } from "../../broker/server";
import type { Requester } from "../../capabilities/lib/requester";
import { writeDataWithBinding, type BindingEntry } from "../../tools/requester-binding";

export const OPERATOR_ID = "spiffe://atb.test/ns/atb-system/sa/atb-operator";
export const AGENT = "spiffe://atb.test/agent/planner";
/** Who created the tests' tasks (a decide request's `requester`): bound to the test agents by TEST_BINDING. */
export const REQUESTER: Requester = {
  username: "system:serviceaccount:agents:planner",
  groups: ["system:serviceaccounts", "system:serviceaccounts:agents", "system:authenticated"],
};
/** The requester binding startTestBroker adds to the policy data: REQUESTER may act as the atb.test agents. */
export const TEST_BINDING: BindingEntry = {
  name: "integration tests",
  agents: ["spiffe://atb.test/agent/*"],
  service_accounts: ["agents/planner"],
};

export interface TestPki {
  dir: string;
  ca: CertPaths;
  server: CertPaths;
  client: CertPaths;
  otherCa: CertPaths;
  otherServer: CertPaths;
  otherClient: CertPaths;
}

export function makeTempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function makePki(dir: string): TestPki {
  const ca = ensureCA(dir, "ca", "atb test CA");
  const otherCa = ensureCA(dir, "other-ca", "someone else's CA");
  const serverSans = { dns: ["localhost"], ips: ["127.0.0.1"], usage: "server" as const };
  return {
    dir,
    ca,
    otherCa,
    server: issueCert(dir, ca, "broker", { cn: "atb-broker", ...serverSans }),
    client: issueCert(dir, ca, "operator", { cn: "atb-operator", uris: [OPERATOR_ID], usage: "client" }),
    otherServer: issueCert(dir, otherCa, "impostor", { cn: "impostor", ...serverSans }),
    otherClient: issueCert(dir, otherCa, "stranger", {
      cn: "stranger",
      uris: ["spiffe://elsewhere/x"],
      usage: "client",
    }),
  };
}

export interface PoaKeys {
  es256: KeyObject;
  eddsa: KeyObject;
  rs256: KeyObject;
  /** Trusted by nobody. */
  rogue: KeyObject;
  publicPems: string[];
}

export function makePoaKeys(): PoaKeys {
  const es256 = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const eddsa = generateKeyPairSync("ed25519");
  const rs256 = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rogue = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = (k: KeyObject): string => k.export({ type: "spki", format: "pem" }).toString();
  return {
    es256: es256.privateKey,
    eddsa: eddsa.privateKey,
    rs256: rs256.privateKey,
    rogue: rogue.privateKey,
    publicPems: [pem(es256.publicKey), pem(eddsa.publicKey), pem(rs256.publicKey)],
  };
}

/** Collects every line written by the loggers and audit sinks of a suite. */
export class LogCapture {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      this.lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });

  logger(component: string): Logger {
    return createLogger("debug", component, this.stream);
  }

  text(): string {
    return this.lines.join("\n");
  }
}

/** Every piece of a token that must never be written anywhere: the whole and each segment. */
export function secretPieces(token: string): string[] {
  return [token, ...token.split(".").filter(s => s.length > 8)];
}

let dataFiles = 0;

/**
 * The reference broker on a free port with the suite's PKI and keys. Its policy data is
 * `extra.dataFile` (default policies/data.json) with `bindingEntries` (default TEST_BINDING)
 * added to requester_binding.entries.
 */
export function startTestBroker(
  pki: TestPki,
  keys: PoaKeys,
  logs: LogCapture,
  extra: Partial<BrokerOptions> & { bindingEntries?: BindingEntry[] } = {},
): Promise<RunningBroker> {
  const { bindingEntries = [TEST_BINDING], dataFile, ...options } = extra;
  const data = writeDataWithBinding(
    dataFile ?? join(__dirname, "..", "..", "policies", "data.json"),
    bindingEntries,
    join(pki.dir, `policy-data-${++dataFiles}.json`),
  );
  return startBroker({
    port: 0,
    tls: { certFile: pki.server.cert, keyFile: pki.server.key, clientCaFile: pki.ca.cert },
    // The keys of the project's dev minter (mintPoa): the leg approval blocks they sign count.
    poa: { publicKeys: keys.publicPems, preset: "dev", maxLifetimeS: 300, clockSkewS: 5 },
    audit: logs.stream,
    logger: logs.logger("broker"),
    ...options,
    dataFile: data,
  });
}

export function testClient(
  url: string,
  pki: TestPki,
  logs: LogCapture,
  over: Partial<BrokerClientConfig> = {},
): BrokerClient {
  return createBrokerClient(
    {
      brokerUrl: url,
      tls: { certFile: pki.client.cert, keyFile: pki.client.key, caFile: pki.ca.cert },
      insecure: false,
      attemptTimeoutMs: 2_000,
      maxAttempts: 3,
      baseBackoffMs: 20,
      maxBackoffMs: 100,
      ...over,
    },
    logs.logger("operator"),
  );
}

/** A deadline comfortably in the future (tests that need a short one pass their own). */
export function soon(ms = 10_000): Date {
  return new Date(Date.now() + ms);
}
