// Throwaway PKI for the local control plane, the reference broker and the tests: a CA and
// leaf certificates (server, client, or both) with DNS/IP/URI SANs, made with the openssl CLI
// (EC P-256 keys, short validity). Nothing here is meant for production use.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";

export interface CertPaths {
  cert: string;
  key: string;
}

export interface LeafOptions {
  /** Subject common name. */
  cn: string;
  /** Subject organisation (e.g. system:masters for a Kubernetes admin). */
  org?: string;
  dns?: string[];
  ips?: string[];
  /** URI SANs, e.g. the operator's SPIFFE ID. */
  uris?: string[];
  usage: "server" | "client" | "both";
  days?: number;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`);
  }
}

function newKey(path: string, dir: string): void {
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path], dir);
  chmodSync(path, 0o600);
}

/** Creates (or reuses) a CA in dir as `<name>.crt`/`<name>.key`. */
export function ensureCA(dir: string, name = "ca", cn = "atb-operator local CA", days = 30): CertPaths {
  mkdirSync(dir, { recursive: true });
  const paths = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  if (existsSync(paths.cert) && existsSync(paths.key)) return paths;
  newKey(paths.key, dir);
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      paths.key,
      "-sha256",
      "-days",
      String(days),
      "-subj",
      `/CN=${cn}`,
      "-out",
      paths.cert,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  return paths;
}

function sanLine(o: LeafOptions): string {
  const sans = [
    ...(o.dns ?? []).map(d => `DNS:${d}`),
    ...(o.ips ?? []).map(i => `IP:${i}`),
    ...(o.uris ?? []).map(u => `URI:${u}`),
  ];
  return sans.length ? `subjectAltName=${sans.join(",")}\n` : "";
}

/** Issues a leaf certificate signed by ca, written as `<name>.crt`/`<name>.key` in dir. */
export function issueCert(dir: string, ca: CertPaths, name: string, o: LeafOptions): CertPaths {
  mkdirSync(dir, { recursive: true });
  const paths = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  newKey(paths.key, dir);
  const subj = `/CN=${o.cn}` + (o.org ? `/O=${o.org}` : "");
  openssl(["req", "-new", "-key", paths.key, "-subj", subj, "-out", csr], dir);
  const eku = o.usage === "server" ? "serverAuth" : o.usage === "client" ? "clientAuth" : "serverAuth,clientAuth";
  writeFileSync(
    ext,
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=${eku}\n${sanLine(o)}`,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.cert,
      "-CAkey",
      ca.key,
      "-CAcreateserial",
      "-days",
      String(o.days ?? 30),
      "-sha256",
      "-extfile",
      ext,
      "-out",
      paths.cert,
    ],
    dir,
  );
  return paths;
}

/** An EC P-256 key pair in PEM (private PKCS#8 + public SPKI), e.g. for service-account tokens. */
export function keyPair(dir: string, name: string): { key: string; pub: string } {
  const key = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub`);
  if (!existsSync(key)) newKey(key, dir);
  if (!existsSync(pub)) openssl(["pkey", "-in", key, "-pubout", "-out", pub], dir);
  return { key, pub };
}

export function readPem(path: string): string {
  return readFileSync(path, "utf8");
}
