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
//
// Each successful reserve() hands out a ticket, and only that ticket can release or commit its
// reservation: a release from an attempt whose entry was meanwhile purged and taken by another
// reservation is a no-op, and an entry stays while any reservation of it is still being judged,
// so a release racing a later commit of the same task can never forget a used token. commit()
// re-inserts the entry if it was purged meanwhile: a used token is never forgotten before it
// expires (the cache may then hold one entry over its capacity, which is bounded by the number of
// decisions in flight).

export type ReserveResult = "reserved" | "replayed" | "full";

/** Proof of one reservation, handed to commit() or release(). */
export interface JtiTicket {
  readonly jti: string;
  readonly id: number;
  readonly expiresAtS: number;
  readonly owner?: string;
}

export type Reservation = { result: "reserved"; ticket: JtiTicket } | { result: "replayed" | "full" };

interface Entry {
  expiresAtS: number;
  committed: boolean;
  /** The task the token was first presented for; undefined = strictly single use. */
  owner?: string;
  /** Tickets of the reservations still being judged. */
  holders: Set<number>;
}

export class JtiCache {
  private readonly entries = new Map<string, Entry>();
  private nextTicket = 1;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new Error("jti cache capacity must be a positive integer");
  }

  get size(): number {
    return this.entries.size;
  }

  /** Claims jti for one evaluation; expiresAtS is the token's exp plus the clock skew. */
  reserve(jti: string, expiresAtS: number, nowS: number, owner?: string): Reservation {
    const existing = this.entries.get(jti);
    if (existing && existing.expiresAtS > nowS) {
      if (owner === undefined || existing.owner !== owner) return { result: "replayed" };
      return { result: "reserved", ticket: this.hold(jti, existing, expiresAtS, owner) };
    }
    if (existing) this.entries.delete(jti);
    if (this.entries.size >= this.capacity) this.purge(nowS);
    if (this.entries.size >= this.capacity) return { result: "full" };
    const entry: Entry = { expiresAtS, committed: false, owner, holders: new Set() };
    this.entries.set(jti, entry);
    return { result: "reserved", ticket: this.hold(jti, entry, expiresAtS, owner) };
  }

  /** The decision was an allow: the jti stays used until it expires, whatever happened meanwhile. */
  commit(ticket: JtiTicket): void {
    const entry = this.entries.get(ticket.jti);
    if (!entry) {
      this.entries.set(ticket.jti, {
        expiresAtS: ticket.expiresAtS,
        committed: true,
        owner: ticket.owner,
        holders: new Set(),
      });
      return;
    }
    entry.holders.delete(ticket.id);
    entry.committed = true;
    entry.expiresAtS = Math.max(entry.expiresAtS, ticket.expiresAtS);
  }

  /**
   * The decision was a deny or failed: ends this ticket's reservation, and frees the jti when no
   * allow used it and no other reservation of it is still being judged. A ticket that does not
   * hold the current entry (it was purged and reserved again) changes nothing.
   */
  release(ticket: JtiTicket): void {
    const entry = this.entries.get(ticket.jti);
    if (!entry?.holders.delete(ticket.id)) return;
    if (!entry.committed && entry.holders.size === 0) this.entries.delete(ticket.jti);
  }

  /** Drops expired entries; O(n), run only when the cache is full. */
  /**
   * Whether presenting jti for `owner` now would be refused as a replay, without reserving it
   * (the token preflight asks this; the decision reserves).
   */
  wouldReplay(jti: string, nowS: number, owner?: string): boolean {
    const existing = this.entries.get(jti);
    return existing !== undefined && existing.expiresAtS > nowS && (owner === undefined || existing.owner !== owner);
  }

  purge(nowS: number): void {
    for (const [jti, entry] of this.entries) if (entry.expiresAtS <= nowS) this.entries.delete(jti);
  }

  private hold(jti: string, entry: Entry, expiresAtS: number, owner?: string): JtiTicket {
    const ticket: JtiTicket = { jti, id: this.nextTicket++, expiresAtS, owner };
    entry.holders.add(ticket.id);
    return ticket;
  }
}
