// atb-mcp: an MCP server through which an agent plans, submits and follows AgentTasks.
//
//   atb-mcp [--kubeconfig PATH]                          stdio (what desktop agent clients spawn)
//   atb-mcp --http PORT [--host 127.0.0.1] [--kubeconfig PATH]   Streamable HTTP on /mcp
//
// It acts with the kubeconfig it is started with (--kubeconfig, else $KUBECONFIG, ~/.kube/config
// or the in-cluster ServiceAccount): the cluster's RBAC, the operator's webhooks and the broker
// decide what happens, never this server. The HTTP transport has no authentication of its own:
// whoever reaches the port acts with that kubeconfig, so it binds 127.0.0.1 unless told otherwise
// and must stay local or behind an authenticating proxy. Nothing is written to stdout but the
// protocol (stdio); the log on stderr never holds a token or a tool's arguments.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { AtbTools } from "./tools";

const VERSION = (JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string })
  .version;

export interface Options {
  kubeconfig?: string;
  http?: number;
  host: string;
}

const USAGE = "usage: atb-mcp [--kubeconfig PATH] [--http PORT [--host ADDRESS]]";

export function parseArgs(argv: string[]): Options {
  const o: Options = { host: "127.0.0.1" };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value (${USAGE})`);
      return v;
    };
    if (flag === "--kubeconfig") o.kubeconfig = value();
    else if (flag === "--host") o.host = value();
    else if (flag === "--http") {
      const v = value();
      const port = Number(v);
      if (!/^\d+$/.test(v) || port < 0 || port > 65535)
        throw new Error(`--http: must be a port number 0..65535 (${USAGE})`);
      o.http = port;
    } else if (flag === "--help" || flag === "-h") throw new Error(USAGE);
    else throw new Error(`unknown argument ${JSON.stringify(flag).slice(0, 80)} (${USAGE})`);
  }
  return o;
}

/** One MCP server (protocol session) on the given tools. */
export function mcpServer(tools: AtbTools): Server {
  const server = new Server({ name: "atb-mcp", version: VERSION }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools.defs }));
  server.setRequestHandler(CallToolRequestSchema, req => tools.call(req.params.name, req.params.arguments));
  return server;
}

const log = (line: string) => process.stderr.write(`atb-mcp: ${line}\n`);

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

function jsonRpcError(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
}

/** Streamable HTTP on /mcp, stateless: a server and a transport per request. */
export async function serveHttp(
  tools: AtbTools,
  port: number,
  host: string,
): Promise<{ port: number; close: () => Promise<void> }> {
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/mcp") return jsonRpcError(res, 404, "not found: the MCP endpoint is /mcp");
    if (req.method !== "POST") return jsonRpcError(res, 405, "method not allowed: this server is stateless, POST only");
    const address = http.address();
    const bound = typeof address === "object" && address ? address.port : port;
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
      // A web page on the agent's machine must not drive a local server through DNS rebinding.
      ...(isLoopback(host)
        ? {
            enableDnsRebindingProtection: true,
            allowedHosts: [`127.0.0.1:${bound}`, `localhost:${bound}`, `[::1]:${bound}`],
          }
        : {}),
    });
    const server = mcpServer(tools);
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    server
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch((err: unknown) => {
        log(`HTTP request failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
        if (!res.headersSent) jsonRpcError(res, 500, "internal error");
      });
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(port, host, () => resolve());
  });
  const address = http.address();
  const bound = typeof address === "object" && address ? address.port : port;
  return {
    port: bound,
    close: () =>
      new Promise<void>(resolve => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

export async function main(argv: string[]): Promise<void> {
  let o: Options;
  try {
    o = parseArgs(argv);
  } catch (err) {
    log((err as Error).message);
    process.exit(2);
  }
  const kc = new KubeConfig();
  try {
    if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    log(`loading the kubeconfig: ${(err as Error).message.split("\n")[0]}`);
    process.exit(2);
  }
  const tools = new AtbTools(kc);
  if (o.http !== undefined) {
    const { port } = await serveHttp(tools, o.http, o.host);
    // The one line a supervisor (or a test) waits for; the URL has no secret.
    log(
      `listening on http://${o.host.includes(":") ? `[${o.host}]` : o.host}:${port}/mcp (no authentication: keep it local)`,
    );
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(0));
    return;
  }
  await mcpServer(tools).connect(new StdioServerTransport());
  process.stdin.on("end", () => process.exit(0));
}

if (require.main === module) void main(process.argv.slice(2));
