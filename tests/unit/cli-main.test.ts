// The atb command line: GIVEN wrong use WHEN main runs THEN it is refused as a usage error (exit
// code 2) naming the option or argument, before any kubeconfig is read or anything is asked.
import { PassThrough } from "node:stream";
import { main, UsageError } from "../../clients/cli/main";
import { confirm, isYes } from "../../clients/cli/prompt";
import { parseTaskRef } from "../../clients/cli/task";

describe("atb command line", () => {
  const env = process.env.KUBECONFIG;
  // A kubeconfig that cannot be read: any command that got as far as connecting would fail differently.
  beforeAll(() => void (process.env.KUBECONFIG = "/nonexistent/kubeconfig"));
  afterAll(() => void (process.env.KUBECONFIG = env));

  test.each([
    [["bogus"], /unknown command "bogus"/],
    [["approve"], /approve needs the task: <namespace>\/<name>/],
    [["approve", "prod/t1", "--key", "k.pem"], /--approver is required/],
    [["approve", "prod/t1", "--approver", "alice"], /--key is required/],
    [["approve", "prod/t1", "--approver", "alice", "--key", "k", "--nope"], /Unknown option '--nope'/],
    [["explain"], /explain needs the task/],
    [["explain", "prod/t1", "prod/t2"], /too many arguments: prod\/t1 prod\/t2/],
    [["plan"], /-f <task.yaml> is required/],
    [["plan", "extra", "-f", "t.yaml"], /too many arguments: extra/],
  ])("%j is a usage error", async (argv, message) => {
    const err = await main(argv).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain("usage: atb <command>");
  });

  test("a kubeconfig that cannot be read is refused, not a usage error", async () => {
    const err = await main(["explain", "prod/t1"]).catch((e: unknown) => e as Error);
    expect(err).not.toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/loading the kubeconfig: .*ENOENT/);
  });

  test.each([
    ["prod/t1", undefined, { namespace: "prod", name: "t1" }],
    ["t1", "dev", { namespace: "dev", name: "t1" }],
  ])("parseTaskRef(%s, %s)", (ref, ns, want) => {
    expect(parseTaskRef(ref, ns)).toEqual(want);
  });

  test.each([["t1"], ["a/b/c"], ["/t1"], ["prod/"]])("parseTaskRef(%s) without a namespace is refused", ref => {
    expect(() => parseTaskRef(ref)).toThrow(/must be <namespace>\/<name>/);
  });
});

describe("the confirmation question", () => {
  test.each([
    ["y", true],
    ["Y", true],
    [" yes ", true],
    ["", false],
    ["n", false],
    ["yep", false],
    ["no", false],
  ])("answer %j is yes: %s", (answer, yes) => {
    expect(isYes(answer)).toBe(yes);
  });

  test("without a terminal nobody is asked and the answer is no", async () => {
    const input = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.ReadStream;
    await expect(confirm("Approve? [y/N] ", input)).resolves.toBe(false);
  });
});
