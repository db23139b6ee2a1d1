// Single use of PoA tokens: a bounded in-memory map of jti -> expiry. A jti is reserved while its
// request is evaluated (a concurrent second use is a replay), committed when the decision is an
// allow, and released when it is a deny or an error, so a denied token is not burned and can be
// presented again (e.g. after a maintenance window). Entries live until exp + clock skew, after
// which the token is rejected as expired anyway. Limits (documented in docs/authorization.md):
// memory only (a broker restart forgets used jtis, so run one replica with a lifetime cap), and
// when `capacity` live entries exist new tokens are refused (503) rather than evicting live ones,
// because evicting a live jti would reopen it to replay.
//
// A jti is bound to the task (context.task.uid) that first presented it: the same task may
// present it again (the operator re-authorizes a task after a crash between decision and write,
// and retries a decide whose answer was lost); any other task presenting it is a replay.

export type ReserveResult = "reserved" | "replayed" | "full";

interface Entry {
  expiresAtS: number;
  committed: boolean;
  /** The task the token was first presented for; undefined = strictly single use. */
  owner?: string;
}

export class JtiCache {
  private readonly entries = new Map<string, Entry>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new Error("jti cache capacity must be a positive integer");
  }

  get size(): number {
    return this.entries.size;
  }

  /** Claims jti for one evaluation; expiresAtS is the token's exp plus the clock skew. */
  reserve(jti: string, expiresAtS: number, nowS: number, owner?: string): ReserveResult {
    const existing = this.entries.get(jti);
    if (existing && existing.expiresAtS > nowS) {
      return owner !== undefined && existing.owner === owner ? "reserved" : "replayed";
    }
    if (existing) this.entries.delete(jti);
    if (this.entries.size >= this.capacity) this.purge(nowS);
    if (this.entries.size >= this.capacity) return "full";
    this.entries.set(jti, { expiresAtS, committed: false, owner });
    return "reserved";
  }

  /** The decision was an allow: the jti stays used until it expires. */
  commit(jti: string): void {
    const entry = this.entries.get(jti);
    if (entry) entry.committed = true;
  }

  /** The decision was a deny or failed: free the jti unless an allow already used it. */
  release(jti: string): void {
    const entry = this.entries.get(jti);
    if (entry && !entry.committed) this.entries.delete(jti);
  }

  /** Drops expired entries; O(n), run only when the cache is full. */
  purge(nowS: number): void {
    for (const [jti, entry] of this.entries) if (entry.expiresAtS <= nowS) this.entries.delete(jti);
  }
}
