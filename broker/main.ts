// `npm run broker`: the reference ATB broker from the command line. Parses flags/env, optionally
// prepares throwaway dev material (--dev <dir>), starts OPA and the HTTPS server, and stops both
// on SIGINT/SIGTERM.
import { resolve } from "node:path";
import { createLogger } from "../capabilities/lib/logger";
import { messageOf } from "../capabilities/lib/errors";
import { BROKER_USAGE, completeOptions, parseBrokerCli, type BrokerCli } from "./config";
import { ensureDevMaterial, DEV_OPERATOR_SPIFFE_ID } from "./dev-material";
import { startBroker } from "./server";

async function withDevMaterial(cli: BrokerCli, dir: string): Promise<string[]> {
  const m = await ensureDevMaterial(dir);
  const { tls, poa } = cli.options;
  tls.certFile ??= m.server.cert;
  tls.keyFile ??= m.server.key;
  tls.clientCaFile ??= m.ca.cert;
  // The dev key signs what `npm run poa -- mint` writes: its profile vouches for every leg block
  // unless --poa-profile says otherwise.
  if (!poa.publicKeyFiles?.length && !poa.jwksFile && !poa.jwksUrl) {
    poa.publicKeyFiles = [m.poaPublicKey];
    poa.preset ??= "dev";
  }
  return [
    `dev material in ${dir} (throwaway; never for production):`,
    `  operator client cert  TLS_CERT_FILE=${m.client.cert} TLS_KEY_FILE=${m.client.key} TLS_CA_FILE=${m.ca.cert}`,
    `  operator SPIFFE ID    ${DEV_OPERATOR_SPIFFE_ID}`,
    `  mint a PoA            npm run poa -- mint --key ${m.poaPrivateKey} --agent <spiffe id> --action scale --target Deployment/<ns>/<name>`,
  ];
}

async function main(): Promise<void> {
  const cli = parseBrokerCli(process.argv.slice(2), process.env);
  if (cli.help) {
    console.log(BROKER_USAGE);
    return;
  }
  const hints = cli.devDir ? await withDevMaterial(cli, resolve(cli.devDir)) : [];
  const logger = createLogger(cli.logLevel, "broker");
  const broker = await startBroker({ ...completeOptions(cli), logger });
  for (const line of [
    `atb-broker listening on ${broker.url} (POST /api/v1/decide, GET /healthz, GET /metrics)`,
    ...hints,
  ]) {
    console.error(line);
  }
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal });
    broker.stop().then(
      () => process.exit(0),
      err => {
        console.error(`atb-broker: stop failed: ${messageOf(err)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

main().catch(err => {
  console.error(`atb-broker: ${messageOf(err)}\n\n${BROKER_USAGE}`);
  process.exit(1);
});
