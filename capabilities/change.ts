// The canonical change of a task: what the operator sends as the decide request's params and what
// a PoA binds through `con.change_sha256 = changeDigest(canonicalChange(...))` (docs/authorization.md,
// "The change digest"). One function for everyone who computes it: the operator's plans (each
// action's changeOf, tested to agree with this), `npm run poa -- digest|mint`, the stack's minter
// and the TypeScript client. Each action's form lives in its folder (capabilities/<action>/change.ts)
// and depends on nothing but the payload, except a rollback's, which needs the revision and
// template hash the task will restore (the operator resolves them from the workload's history),
// and an update-config's Secret values given by reference, which enter as the digests of the
// values the source Secrets hold (the operator reads them; an agent knows what it put there).
import { changeDigest } from "./lib/change-digest";
import { changeOf as scaleChange } from "./scale/change";
import { changeOf as restartChange } from "./restart/change";
import { changeOf as updateConfigChange } from "./update-config/change";
import { changeOf as deployChange } from "./deploy/change";
import { changeOf as rollbackChange, type RollbackResolution } from "./rollback/change";
import { changeOf as patchChange } from "./patch/change";

export { templateHashOf, TEMPLATE_HASH_LABELS, type RollbackResolution } from "./rollback/change";

/** What a canonical change is computed from: the task's action, target kind and payload. */
export interface ChangeSpec {
  action: string;
  target: { kind: string };
  payload?: Record<string, unknown>;
}

/**
 * What the cluster decides and the payload may not say: a rollback's revision and template hash,
 * and the digests of the Secret values an update-config names by reference.
 */
export interface ChangeResolution {
  /** Default: the payload's revision. */
  revision?: number;
  /** Required for a rollback (null: the history entry has no hash label). */
  templateHash?: string | null;
  /**
   * update-config: for each data key given by reference (`valueFrom.secretKeyRef`), the digest of
   * the source Secret's value, `sha256:<hex of its bytes>` (as an inline value's would be). Required
   * for every reference, refused for any other key.
   */
  valueDigests?: Record<string, string>;
}

function rollbackResolution(spec: ChangeSpec, r: ChangeResolution | undefined): RollbackResolution {
  const revision = r?.revision ?? spec.payload?.revision;
  if (!Number.isSafeInteger(revision) || (revision as number) < 1)
    throw new Error(
      "rollback: the revision to restore is needed (the payload's revision, or the resolved previous one)",
    );
  if (r?.templateHash === undefined)
    throw new Error(
      "rollback: the template hash of the revision to restore is needed (pod-template-hash or controller revision hash)",
    );
  return { revision: revision as number, templateHash: r.templateHash };
}

/** The canonical change of a task; throws for an unknown action or a payload without one. */
export function canonicalChange(spec: ChangeSpec, resolved?: ChangeResolution): Record<string, unknown> {
  const payload = spec.payload;
  switch (spec.action) {
    case "scale":
      return scaleChange(payload);
    case "restart":
      return restartChange();
    case "update-config":
      return updateConfigChange(payload, resolved?.valueDigests);
    case "deploy":
      return deployChange(payload);
    case "rollback":
      return rollbackChange(rollbackResolution(spec, resolved));
    case "patch":
      return patchChange(spec.target.kind, payload);
    default:
      throw new Error(`no canonical change for action ${JSON.stringify(spec.action)}`);
  }
}

/** `sha256:<hex>` of the task's canonical change: the value of a PoA's `con.change_sha256`. */
export function taskChangeDigest(spec: ChangeSpec, resolved?: ChangeResolution): string {
  return changeDigest(canonicalChange(spec, resolved));
}
