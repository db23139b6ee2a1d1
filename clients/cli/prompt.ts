// The confirmation question, on the terminal only: node:readline on stdin/stderr (stdout stays for
// the command's output). No terminal means no answer, and no answer is no.
import { createInterface } from "node:readline";

export function isYes(answer: string): boolean {
  return /^\s*(y|yes)\s*$/i.test(answer);
}

/** Asks on the terminal; false on anything but y/yes, on end of input (Ctrl-D), Ctrl-C, or without a terminal. */
export function confirm(question: string, input: NodeJS.ReadStream = process.stdin): Promise<boolean> {
  if (!input.isTTY) return Promise.resolve(false);
  const rl = createInterface({ input, output: process.stderr, terminal: true });
  return new Promise(resolve => {
    let answer: boolean | undefined;
    rl.on("SIGINT", () => rl.close());
    rl.on("close", () => {
      if (answer === undefined) process.stderr.write("\n");
      resolve(answer === true);
    });
    rl.question(question, text => {
      answer = isYes(text);
      rl.close();
    });
  });
}
