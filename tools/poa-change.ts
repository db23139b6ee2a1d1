// The change a development token binds (`npm run poa -- digest`, and `mint`'s change options):
// con.change_sha256 from a change given whole (--change), a digest (--change-sha256), or the
// task's payload (--payload, or --task-file with an AgentTask manifest), digested as the operator will
// (capabilities/change.ts canonicalChange, capabilities/lib/change-digest.ts changeDigest).
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { load } from "js-yaml";
import { canonicalChange, type ChangeResolution } from "../capabilities/change";
import { canonicalJson, changeDigest, DIGEST_PATTERN } from "../capabilities/lib/change-digest";
import { parseTarget } from "../broker/poa";
import { referencedKeys, secretKeyRef } from "../capabilities/update-config/ref";
import { crdAction } from "./task-change";

export const CHANGE_USAGE = `  change options (mint binds con.change_sha256, which MEDIUM and higher tiers require; digest
  prints it), at most one of:
        --payload <json|file>      the task's payload: its canonical change is digested here
                                   (rollback: with --template-hash <hash> and, without a revision
                                   in the payload, --revision <n>; update-config of a Secret: with
                                   --value-digest <key>=sha256:<hex of the value> for each key
                                   given by reference, repeated)
        --task-file <file>         an AgentTask (YAML or JSON): its action, target kind and payload
        --change <json|file>       the canonical change itself
        --change-sha256 <sha256:…> the digest itself (mint only)`;

/** parseArgs options for the change (spread into a command's options). */
export const CHANGE_OPTIONS = {
  payload: { type: "string" },
  "task-file": { type: "string" },
  change: { type: "string" },
  "change-sha256": { type: "string" },
  "template-hash": { type: "string" },
  revision: { type: "string" },
  "value-digest": { type: "string", multiple: true },
} as const;

export interface ChangeArgs {
  payload?: string;
  "task-file"?: string;
  change?: string;
  "change-sha256"?: string;
  "template-hash"?: string;
  revision?: string;
  "value-digest"?: string[];
}

interface TaskFile {
  agentId?: string;
  action: string;
  target: { kind: string; namespace: string; name: string };
  payload?: Record<string, unknown>;
}

/** JSON given inline (it starts with { [ or ") or the path of a file holding it. */
function jsonArg(name: string, value: string): unknown {
  const inline = /^\s*[[{"]/.test(value) || !existsSync(value);
  try {
    return JSON.parse(inline ? value : readFileSync(value, "utf8")) as unknown;
  } catch (err) {
    throw new Error(`--${name}: not JSON${inline ? "" : ` (file ${value})`}: ${(err as Error).message}`);
  }
}

/** An AgentTask manifest (YAML or JSON): its spec. */
export function readTask(file: string): TaskFile {
  const doc = load(readFileSync(file, "utf8")) as { spec?: Partial<TaskFile> } | undefined;
  const spec = doc?.spec;
  if (!spec?.action || !spec.target?.kind)
    throw new Error(`--task-file ${file}: not an AgentTask (spec.action and spec.target)`);
  return spec as TaskFile;
}

/** --value-digest key=sha256:<hex>, repeated: the digest of each value given by reference. */
function valueDigests(args: string[] | undefined): Record<string, string> | undefined {
  if (!args?.length) return undefined;
  const out: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.lastIndexOf("=");
    const [key, digest] = [arg.slice(0, eq), arg.slice(eq + 1)];
    if (eq < 1 || !DIGEST_PATTERN.test(digest))
      throw new Error(
        "--value-digest must be <key>=sha256:<64 lowercase hex digits of the SHA-256 of the value's bytes>",
      );
    if (Object.hasOwn(out, key)) throw new Error(`--value-digest: key ${JSON.stringify(key)} given twice`);
    Object.defineProperty(out, key, { value: digest, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function resolution(v: ChangeArgs): ChangeResolution | undefined {
  const digests = valueDigests(v["value-digest"]);
  if (v.revision === undefined && v["template-hash"] === undefined && !digests) return undefined;
  const revision = v.revision === undefined ? undefined : Number(v.revision);
  if (revision !== undefined && (!Number.isSafeInteger(revision) || revision < 1))
    throw new Error("--revision must be a whole number >= 1");
  const hash = v["template-hash"];
  return {
    revision,
    templateHash: hash === undefined ? undefined : hash === "none" ? null : hash,
    ...(digests ? { valueDigests: digests } : {}),
  };
}

interface PayloadSpec {
  action?: string;
  kind?: string;
  payload?: unknown;
}

/** What to digest: the task file's action, kind and payload, or --payload with the command's. */
function payloadSpec(v: ChangeArgs, action?: string, kind?: string): PayloadSpec | undefined {
  if (v["task-file"] !== undefined) {
    const t = readTask(v["task-file"]);
    return { action: t.action, kind: t.target.kind, payload: t.payload };
  }
  return v.payload === undefined ? undefined : { action, kind, payload: jsonArg("payload", v.payload) };
}

/** Refuses what cannot make a change, naming the option that is missing. */
function checkSpec(spec: PayloadSpec, v: ChangeArgs): asserts spec is PayloadSpec & { action: string } {
  if (!spec.action) throw new Error("--action is needed to digest a payload");
  const p = spec.payload;
  if (p !== undefined && (p === null || typeof p !== "object" || Array.isArray(p)))
    throw new Error("--payload must be a JSON object");
  const action = crdAction(spec.action);
  if (action === "patch" && !spec.kind)
    throw new Error(
      "a patch's change depends on the target's kind (ConfigMap values enter as digests): give --kind or --target",
    );
  if (action === "rollback") rollbackHints(v, p as Record<string, unknown> | undefined);
  if (action === "update-config") referenceHints(v, p as Record<string, unknown> | undefined);
}

/** A Secret value given by reference enters the change as its digest: say how to give it. */
function referenceHints(v: ChangeArgs, payload: Record<string, unknown> | undefined): void {
  const given = new Set((v["value-digest"] ?? []).map(a => a.slice(0, a.lastIndexOf("="))));
  for (const key of referencedKeys(payload?.data)) {
    if (given.has(key)) continue;
    const ref = secretKeyRef((payload!.data as Record<string, unknown>)[key]);
    // jsonpath needs the dots of a key escaped (tls.key -> tls\.key).
    const hex = ref
      ? `, the hex of: kubectl get secret ${ref.name} -n <namespace> -o jsonpath='{.data.${ref.key.replace(/\./g, "\\.")}}' | base64 -d | sha256sum`
      : "";
    throw new Error(
      `data[${JSON.stringify(key)}] is given by reference: its change needs --value-digest ${key}=sha256:<hex>, the SHA-256 of the value's bytes${hex}`,
    );
  }
}

/** A rollback's change needs what the cluster knows: say which options give it. */
function rollbackHints(v: ChangeArgs, payload: Record<string, unknown> | undefined): void {
  if (v.revision === undefined && payload?.revision === undefined)
    throw new Error(
      "a rollback's change names the revision it restores: give --revision <n> (kubectl rollout history)",
    );
  if (v["template-hash"] === undefined)
    throw new Error(
      "a rollback's change names the template it restores: give --template-hash <the pod-template-hash label of that revision's ReplicaSet, or the hash label of the ControllerRevision; none if it has none>",
    );
}

/** The canonical change given by the arguments; undefined when none of them is given. */
export function changeFromArgs(v: ChangeArgs, action?: string, kind?: string): unknown {
  const given = (["payload", "task-file", "change", "change-sha256"] as const).filter(k => v[k] !== undefined);
  if (given.length > 1) throw new Error(`give one of --${given.join(", --")}, not several`);
  if (v.change !== undefined) return jsonArg("change", v.change);
  const spec = payloadSpec(v, action, kind);
  if (!spec) return undefined;
  checkSpec(spec, v);
  const payload = spec.payload as Record<string, unknown> | undefined;
  return canonicalChange({ action: crdAction(spec.action), target: { kind: spec.kind ?? "" }, payload }, resolution(v));
}

/** con.change_sha256 from the arguments; undefined when none is given. */
export function changeSha256FromArgs(v: ChangeArgs, action?: string, kind?: string): string | undefined {
  const digest = v["change-sha256"];
  if (digest !== undefined) {
    if (!DIGEST_PATTERN.test(digest)) throw new Error("--change-sha256 must be sha256:<64 lowercase hex digits>");
    if (v.payload !== undefined || v["task-file"] !== undefined || v.change !== undefined)
      throw new Error("give --change-sha256 or the change, not both");
    return digest;
  }
  const change = changeFromArgs(v, action, kind);
  return change === undefined ? undefined : changeDigest(change);
}

/** `npm run poa -- digest`: prints the change digest (or, with --canonical, the canonical JSON). */
export function digestCommand(args: string[]): void {
  const { values: v } = parseArgs({
    args,
    options: {
      ...CHANGE_OPTIONS,
      action: { type: "string" },
      kind: { type: "string" },
      target: { type: "string" },
      canonical: { type: "boolean" },
    },
  });
  const kind = v.kind ?? (v.target ? parseTarget(v.target).kind : undefined);
  if (v["change-sha256"] !== undefined)
    throw new Error("digest computes the digest: give --payload, --task-file or --change");
  const change = changeFromArgs(v, v.action, kind);
  if (change === undefined) throw new Error("digest needs --action with --payload, or --task-file, or --change");
  process.stdout.write(`${v.canonical ? canonicalJson(change) : changeDigest(change)}\n`);
}
