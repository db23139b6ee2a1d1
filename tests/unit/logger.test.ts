// The logger redacts tokens and secret-named fields before anything is written.
import { PassThrough } from "node:stream";
import { createLogger, redact, REDACTED } from "../../capabilities/lib/logger";

const TOKEN = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzcGlmZmU6Ly94In0.c2lnbmF0dXJlLXZhbHVl";

function capture(): { lines: () => string[]; stream: PassThrough } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on("data", c => chunks.push(String(c)));
  return { stream, lines: () => chunks.join("").split("\n").filter(Boolean) };
}

describe("logger redaction", () => {
  test("a token inside a message, a nested field or an error never reaches the output", async () => {
    const out = capture();
    const log = createLogger("debug", "test", out.stream);
    log.info(`got ${TOKEN}`);
    log.info("nested", { spec: { poaToken: TOKEN, other: "ok" }, note: `Bearer ${TOKEN}` });
    log.error("failed", { err: new Error(`bad token ${TOKEN}`) });
    log.info("secret", { data: { password: "hunter2" } });
    await new Promise(r => setImmediate(r));
    const text = out.lines().join("\n");
    expect(out.lines()).toHaveLength(4);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain("hunter2");
    expect(text).toContain(REDACTED);
    expect(text).toContain('"other":"ok"');
  });

  test("redact keeps shapes and non-secret values", () => {
    expect(redact({ a: 1, b: [TOKEN, "x"], poaToken: TOKEN })).toEqual({
      a: 1,
      b: [REDACTED, "x"],
      poaToken: REDACTED,
    });
  });
});
