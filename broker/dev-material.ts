// Throwaway material for running the broker locally (`npm run broker -- --dev <dir>`) and for the
// tests: a CA, a broker server certificate for localhost/127.0.0.1, an operator client
// certificate whose URI SAN is the operator's SPIFFE ID, and a PoA signing key pair. Existing
// files are reused so the operator and the minting tool keep working across broker restarts.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ensureCA, issueCert, type CertPaths } from "./pki";
import { generateDevKeys } from "./poa";

export const DEV_OPERATOR_SPIFFE_ID = "spiffe://atb.local/ns/atb-system/sa/atb-operator";

export interface DevMaterial {
  ca: CertPaths;
  server: CertPaths;
  client: CertPaths;
  poaPrivateKey: string;
  poaPublicKey: string;
  poaJwks: string;
}

function leaf(dir: string, name: string, make: () => CertPaths): CertPaths {
  const paths = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  return existsSync(paths.cert) && existsSync(paths.key) ? paths : make();
}

export async function ensureDevMaterial(dir: string, operatorId = DEV_OPERATOR_SPIFFE_ID): Promise<DevMaterial> {
  const ca = ensureCA(dir, "ca", "atb-broker dev CA");
  const server = leaf(dir, "broker", () =>
    issueCert(dir, ca, "broker", {
      cn: "atb-broker",
      dns: ["localhost", "atb-broker", "atb-broker.atb-system.svc"],
      ips: ["127.0.0.1"],
      usage: "server",
    }),
  );
  const client = leaf(dir, "operator", () =>
    issueCert(dir, ca, "operator", { cn: "atb-operator", uris: [operatorId], usage: "client" }),
  );
  const keyFile = join(dir, "poa-signing.key");
  const keys = existsSync(keyFile)
    ? {
        privateKeyFile: keyFile,
        publicKeyFile: join(dir, "poa-signing.pub"),
        jwksFile: join(dir, "poa-signing.jwks.json"),
      }
    : await generateDevKeys(dir);
  return {
    ca,
    server,
    client,
    poaPrivateKey: keys.privateKeyFile,
    poaPublicKey: keys.publicKeyFile,
    poaJwks: keys.jwksFile,
  };
}
