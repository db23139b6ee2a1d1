// Kubernetes watches in the kube adapter: the incremental parser of the API server's
// newline-delimited events (lines split across chunks anywhere, bookmarks, ERROR 410), and
// KubeClient.watch over a real HTTP connection to a local server playing the API server (query,
// impersonation, one counted request, events as they arrive, refusals as KubeError, abort, a
// broken connection, and watches that do not take the connections other requests need).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import {
  isGone,
  KubeClient,
  KubeError,
  MAX_EVENT_BYTES,
  watchEventError,
  WatchParser,
  type WatchEvent,
} from "../../capabilities/lib/kube";

const dep = (name: string, rv: string) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name, namespace: "shop", resourceVersion: rv },
});
const line = (e: unknown) => `${JSON.stringify(e)}\n`;

describe("WatchParser", () => {
  test("a line split across chunks at every position parses to the same events", () => {
    const text =
      line({ type: "ADDED", object: dep("web", "5") }) +
      line({ type: "BOOKMARK", object: { kind: "Deployment", metadata: { resourceVersion: "9" } } }) +
      line({
        type: "MODIFIED",
        object: { ...dep("web", "11"), metadata: { ...dep("web", "11").metadata, labels: { ü: "∑" } } },
      });
    const whole = new WatchParser().push(text);
    expect(whole.map(e => e.type)).toEqual(["ADDED", "BOOKMARK", "MODIFIED"]);
    const bytes = Buffer.from(text, "utf8");
    for (let cut = 1; cut < bytes.length; cut++) {
      const p = new WatchParser();
      // Byte cuts also split the multi-byte characters (ü, ∑) in two.
      const events = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut)), ...p.end()];
      expect(events).toEqual(whole);
    }
  });

  test("one byte at a time, blank lines skipped, a last line without newline kept by end()", () => {
    const text = `\n${line({ type: "DELETED", object: dep("a", "3") })}\n\n${JSON.stringify({ type: "ADDED", object: dep("b", "4") })}`;
    const p = new WatchParser();
    const events: WatchEvent[] = [];
    for (const b of Buffer.from(text)) events.push(...p.push(Uint8Array.of(b)));
    expect(events.map(e => e.type)).toEqual(["DELETED"]);
    expect(p.end()).toEqual([{ type: "ADDED", object: dep("b", "4") }]);
  });

  test("bookmarks carry the resourceVersion; ERROR 410 is Gone, another ERROR is not", () => {
    const [bm, gone, other] = new WatchParser().push(
      line({ type: "BOOKMARK", object: { metadata: { resourceVersion: "12345" } } }) +
        line({
          type: "ERROR",
          object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 1 (500)" },
        }) +
        line({ type: "ERROR", object: { kind: "Status", code: 500, reason: "InternalError", message: "boom" } }),
    );
    expect(bm).toEqual({ type: "BOOKMARK", object: { metadata: { resourceVersion: "12345" } } });
    expect(isGone(gone)).toBe(true);
    expect(isGone(other)).toBe(false);
    const err = watchEventError(gone as { object: { code: number } }, "/apis/apps/v1/namespaces/shop/deployments");
    expect([err.status, err.apiReason, err.message]).toEqual([410, "Expired", "too old resource version: 1 (500)"]);
    expect(isGone(err)).toBe(true);
    expect(isGone(new KubeError(404, "NotFound", "x"))).toBe(false);
  });

  test("a line that is not an event, or too long, throws", () => {
    expect(() => new WatchParser().push("not json\n")).toThrow(/not JSON/);
    expect(() => new WatchParser().push(line({ type: "SOMETHING", object: {} }))).toThrow(/not an event/);
    expect(() => new WatchParser().push(line({ type: "ADDED", object: null }))).toThrow(/not an event/);
    expect(() => new WatchParser(100).push("x".repeat(101))).toThrow(/longer than 100/);
    expect(MAX_EVENT_BYTES).toBeGreaterThan(2 * 1024 * 1024);
  });
});

// ---- KubeClient.watch over HTTP ----

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let server: Server;
let handler: Handler;
let base: string;
const sockets = new Set<import("node:net").Socket>();

beforeAll(async () => {
  server = createServer((req, res) => handler(req, res));
  server.on("connection", s => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>(r => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise(r => server.close(r));
});

async function client(qps = 100): Promise<KubeClient> {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: base, skipTLSVerify: true }],
    users: [{ name: "u", token: "operator-token" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return KubeClient.fromEnvironment({ qps, kubeconfig: kc });
}

const PATH = "/apis/apps/v1/namespaces/shop/deployments";
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

describe("KubeClient.watch", () => {
  test("query, impersonation, one counted request, and events handed over as they arrive", async () => {
    const seen: IncomingMessage[] = [];
    let push: (s: string) => void = () => undefined;
    let finish: () => void = () => undefined;
    handler = (req, res) => {
      seen.push(req);
      res.writeHead(200, { "content-type": "application/json" });
      res.flushHeaders();
      push = s => res.write(s);
      finish = () => res.end();
    };
    const kube = await client();
    const events: WatchEvent[] = [];
    const done = kube
      .as("system:serviceaccount:shop:atb-executor")
      .watch({ path: PATH, resourceVersion: "42", labelSelector: "app=web", timeoutSeconds: 300 }, e => events.push(e));
    await waitFor(() => seen.length === 1);
    const url = new URL(seen[0].url!, base);
    expect(url.pathname).toBe(PATH);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      watch: "1",
      allowWatchBookmarks: "true",
      resourceVersion: "42",
      labelSelector: "app=web",
      timeoutSeconds: "300",
    });
    expect(seen[0].headers["impersonate-user"]).toBe("system:serviceaccount:shop:atb-executor");
    expect(seen[0].headers.authorization).toBe("Bearer operator-token");
    expect(kube.counts).toEqual({ requests: 1, writes: 0, watches: 1 });

    // Half a line: nothing yet. The rest of it: the event, before the stream ends.
    const first = line({ type: "ADDED", object: dep("web", "43") });
    push(first.slice(0, 20));
    await sleep(50);
    expect(events).toEqual([]);
    push(first.slice(20) + line({ type: "BOOKMARK", object: { metadata: { resourceVersion: "50" } } }));
    await waitFor(() => events.length === 2);
    expect(events[0]).toEqual({ type: "ADDED", object: dep("web", "43") });
    expect(events[1].type).toBe("BOOKMARK");
    push(line({ type: "MODIFIED", object: dep("web", "51") }));
    finish();
    await expect(done).resolves.toBeUndefined();
    expect(events.map(e => e.type)).toEqual(["ADDED", "BOOKMARK", "MODIFIED"]);
    expect(kube.counts.requests).toBe(1);
    await kube.close();
  });

  test("a refusal is a KubeError with the API server's Status: 403, 410", async () => {
    handler = (req, res) => {
      const gone = new URL(req.url!, base).searchParams.get("resourceVersion") === "1";
      res.writeHead(gone ? 410 : 403, { "content-type": "application/json" });
      res.end(
        JSON.stringify(
          gone
            ? { kind: "Status", code: 410, reason: "Expired", message: "too old resource version: 1 (900)" }
            : {
                kind: "Status",
                code: 403,
                reason: "Forbidden",
                message:
                  'deployments.apps is forbidden: User "system:serviceaccount:shop:atb-executor" cannot watch resource "deployments"',
              },
        ),
      );
    };
    const kube = await client();
    const as = kube.as("system:serviceaccount:shop:atb-executor");
    const forbidden = await as.watch({ path: PATH, resourceVersion: "7" }, () => undefined).catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(KubeError);
    expect([(forbidden as KubeError).status, (forbidden as KubeError).apiReason]).toEqual([403, "Forbidden"]);
    expect((forbidden as KubeError).message).toMatch(/cannot watch resource "deployments"/);
    const gone = await as.watch({ path: PATH, resourceVersion: "1" }, () => undefined).catch((e: unknown) => e);
    expect(isGone(gone)).toBe(true);
    expect(kube.counts.watches).toBe(2);
    await kube.close();
  });

  test("abort ends the watch quietly; a connection that breaks off is a KubeError with status 0", async () => {
    const responses: ServerResponse[] = [];
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(line({ type: "ADDED", object: dep("web", "2") }));
      responses.push(res);
    };
    const kube = await client();
    const ac = new AbortController();
    const events: WatchEvent[] = [];
    const aborted = kube.watch({ path: PATH, resourceVersion: "1", signal: ac.signal }, e => events.push(e));
    await waitFor(() => events.length === 1);
    ac.abort();
    await expect(aborted).resolves.toBeUndefined();

    const more: WatchEvent[] = [];
    const broken = kube.watch({ path: PATH, resourceVersion: "1" }, e => more.push(e)).catch((e: unknown) => e);
    await waitFor(() => more.length === 1);
    responses[1].socket?.destroy();
    const err = await broken;
    expect(err).toBeInstanceOf(KubeError);
    expect((err as KubeError).status).toBe(0);
    expect((err as KubeError).message).toMatch(/broke off/);
    await kube.close();
  });

  test("an exception in the handler ends the stream and reaches the caller", async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write(line({ type: "ADDED", object: dep("web", "2") }));
    };
    const kube = await client();
    const boom = new Error("handler failed");
    await expect(
      kube.watch({ path: PATH }, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    await kube.close();
  });

  test("twenty open watches leave the sixteen request connections free", async () => {
    const open: ServerResponse[] = [];
    handler = (req, res) => {
      if (new URL(req.url!, base).searchParams.get("watch") === "1") {
        res.writeHead(200);
        res.flushHeaders();
        open.push(res);
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(dep("web", "9")));
    };
    const kube = await client(1000);
    const ac = new AbortController();
    const watches = Array.from({ length: 20 }, () =>
      kube.watch({ path: PATH, resourceVersion: "1", signal: ac.signal }, () => undefined),
    );
    await waitFor(() => open.length === 20);
    const got = await Promise.all(
      Array.from({ length: 16 }, () => kube.get<{ metadata: { name: string } }>(`${PATH}/web`)),
    );
    expect(got.map(o => o?.metadata.name)).toEqual(Array(16).fill("web"));
    ac.abort();
    await Promise.all(watches);
    expect(kube.counts).toEqual({ requests: 36, writes: 0, watches: 20 });
    await kube.close();
  }, 20_000);
});

async function waitFor(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(5);
  }
}
