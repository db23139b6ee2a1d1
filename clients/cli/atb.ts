// Entry point of `atb` / `kubectl atb` (started by bin/atb.mjs): runs the command, prints a refusal
// as one line on stderr. Exit codes: 0 done, 1 refused or not planned (nothing created unless it
// says so), 2 usage, 3 unexpected error.
import { main, UsageError } from "./main";
import { Refused } from "./approve";

main(process.argv.slice(2)).then(
  code => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`atb: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof UsageError ? 2 : err instanceof Refused ? 1 : 3);
  },
);
