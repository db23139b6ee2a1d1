// The README's first command, as a newcomer uses it: `npm run sandbox` starts everything, every
// sample ends in its expected phase, the two printed commands (mint + apply) submit a task that
// completes, and Ctrl-C stops every process the sandbox started. Runs its own control plane in
// a scratch folder (not the suite's).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readState, isAlive, COMPONENTS } from "../../tools/controlplane/cluster";

const root = join(__dirname, "..", "..");

test("npm run sandbox: samples as expected, the printed commands work, Ctrl-C cleans up", async () => {
  const dir = mkdtempSync(join(existsShm() ? "/dev/shm" : tmpdir(), "atb-sandbox-"));
  const child = spawn("npm", ["run", "sandbox"], {
    cwd: root,
    env: { ...process.env, ATB_SANDBOX_DIR: dir },
    detached: true,
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  try {
    const deadline = Date.now() + 240_000;
    while (!out.includes("Ctrl-C stops the sandbox") && Date.now() < deadline && child.exitCode === null) {
      await new Promise(r => setTimeout(r, 500));
    }
    expect(out).toContain("every sample task reached its expected phase and risk tier");
    expect(out).toMatch(/NAME\s+ACTION\s+TARGET\s+PHASE\s+RISK\s+AGE/);
    // The newcomer's commands, pasted as printed.
    const lines = out.split("\n").map(l => l.trim());
    const commands = lines.filter(l => /^(export |TOKEN=|sed )/.test(l)).map(l => l.replace(/ -w$/, ""));
    expect(commands).toHaveLength(4);
    const script = [
      ...commands,
      "kubectl wait --for=condition=Succeeded agenttask/my-task -n production --timeout=120s",
    ].join("\n");
    const r = spawnSync("bash", ["-euo", "pipefail", "-c", script], { cwd: root, encoding: "utf8" });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
    expect(r.stdout).toContain("condition met");
  } finally {
    process.kill(-child.pid!, "SIGINT");
    await new Promise(r => child.once("exit", r));
  }
  // npm exits at once; the sandbox's own cleanup (operator, broker, then the plane) takes seconds.
  const state = readState(join(dir, "cluster"));
  expect(state).toBeDefined();
  const deadline = Date.now() + 60_000;
  while (COMPONENTS.some(c => isAlive(state!.pids[c])) && Date.now() < deadline)
    await new Promise(r => setTimeout(r, 250));
  for (const c of COMPONENTS) expect({ c, alive: isAlive(state!.pids[c]) }).toEqual({ c, alive: false });
  rmSync(dir, { recursive: true, force: true });
});

function existsShm(): boolean {
  return spawnSync("test", ["-d", "/dev/shm"]).status === 0;
}
