// The logger redacts tokens and secret-named fields before anything is written.
import { PassThrough } from "node:stream";
import fc from "fast-check";
import {
  boundedString,
  createLogger,
  MAX_LOGGED_CHARS,
  redact,
  redactString,
  REDACTED,
} from "../../capabilities/lib/logger";

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

  test("property: a token anywhere in any text is gone after redaction, whatever surrounds it", () => {
    const around = fc.string({ unit: fc.constantFrom("a", "Z", "0", "_", "-", ".", " ", "/", '"', "e", "y", "J") });
    fc.assert(
      fc.property(around, around, (before, after) => {
        const out = redactString(`${before} ${TOKEN} ${after}`);
        expect(out).not.toContain("c2lnbmF0dXJlLXZhbHVl");
        expect(out).toContain(REDACTED);
      }),
    );
  });

  test("a token glued to other base64url text or dots is redacted with it (the whole run)", () => {
    expect(redactString(`id.${TOKEN}.tail and more`)).toBe(`${REDACTED} and more`);
    expect(redactString(`xx${TOKEN}`)).toBe(REDACTED);
    expect(redactString("eyJnot.a")).toBe("eyJnot.a");
    expect(redactString("plain text, no token")).toBe("plain text, no token");
  });

  test("long strings are cut after redaction, with the count of what was left out", () => {
    const long = `${"x".repeat(MAX_LOGGED_CHARS)} ${TOKEN}`;
    expect(boundedString(long)).toBe(`${"x".repeat(MAX_LOGGED_CHARS)}...(${REDACTED.length + 1} more characters)`);
    expect(redact({ m: "y".repeat(MAX_LOGGED_CHARS + 10) })).toEqual({
      m: `${"y".repeat(MAX_LOGGED_CHARS)}...(10 more characters)`,
    });
  });

  test("hostile input costs linear time: a megabyte of eyJ runs is about as fast as a megabyte of plain text", () => {
    const time = (s: string): number => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 3; i++) redactString(s);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const n = 1 << 20;
    const benign = `eyJ ${"a".repeat(n)}`;
    const hostile = ["eyJ".repeat(n / 3), "eyJ".repeat(n / 6).replace(/J/g, "J."), "eyJabcde.".repeat(n / 9)];
    time(benign); // warm up
    const base = time(benign);
    for (const h of hostile) {
      // The quadratic pattern took seconds on 60 KB; linear scans stay within a small factor.
      expect(time(h)).toBeLessThan(base * 40 + 200);
    }
  });
});
