import { createHash } from 'node:crypto';
import { KindredError } from '../../errors.js';
import type { Account, AccountStore, RevocationStore } from '../types.js';
import { CAS_ATTEMPTS, backoff, isRetryable, isUnknownOutcome, toNum, type Row, type Session } from './client.js';

/** Usernames are case-insensitive: stored and looked up in lowercase (the same rule as the embedded backend). */
export function normalizeUsername(username: string): string {
  return username.normalize('NFC').toLowerCase();
}

const COLUMNS = `user_id, username, password_hash,
  scram1_salt, scram1_iterations, scram1_stored_key, scram1_server_key,
  scram256_salt, scram256_iterations, scram256_stored_key, scram256_server_key, created_at`;
const MARKS = '?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?';

function toParams(a: Account, username: string): unknown[] {
  return [
    a.userId,
    username,
    a.passwordHash,
    a.scramSha1.salt,
    a.scramSha1.iterations,
    a.scramSha1.storedKey,
    a.scramSha1.serverKey,
    a.scramSha256.salt,
    a.scramSha256.iterations,
    a.scramSha256.storedKey,
    a.scramSha256.serverKey,
    a.createdAt,
  ];
}

function toAccount(r: Row): Account {
  return {
    userId: r.user_id,
    username: r.username,
    passwordHash: r.password_hash,
    scramSha1: { salt: r.scram1_salt, iterations: r.scram1_iterations, storedKey: r.scram1_stored_key, serverKey: r.scram1_server_key },
    scramSha256: { salt: r.scram256_salt, iterations: r.scram256_iterations, storedKey: r.scram256_stored_key, serverKey: r.scram256_server_key },
    createdAt: toNum(r.created_at),
  };
}

/**
 * The username claim is a lightweight transaction on accounts_by_username that carries
 * the whole account, so a claim is never without its account data; the by-id row is
 * written after the claim is won (a crash between the two is repaired by a retried
 * create of the same account, which finds its own claim). Losers write nothing.
 */
export class CassandraAccountStore implements AccountStore {
  private readonly claimQ: string;
  private readonly byNameQ: string;
  private readonly insertQ: string;
  private readonly byIdQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
  ) {
    this.claimQ = `INSERT INTO ${ks}.accounts_by_username (${COLUMNS}) VALUES (${MARKS}) IF NOT EXISTS`;
    this.byNameQ = `SELECT ${COLUMNS} FROM ${ks}.accounts_by_username WHERE username = ?`;
    this.insertQ = `INSERT INTO ${ks}.accounts (${COLUMNS}) VALUES (${MARKS})`;
    this.byIdQ = `SELECT ${COLUMNS} FROM ${ks}.accounts WHERE user_id = ?`;
  }

  async create(account: Account): Promise<void> {
    const username = normalizeUsername(account.username);
    const params = toParams(account, username);
    const owner = await this.claim(username, params);
    if (owner !== account.userId) throw new KindredError('CONFLICT', 'username taken');
    await this.s.execute(this.insertQ, params, { idempotent: true });
  }

  /** Claims the username; returns the user id that holds it afterwards. */
  private async claim(username: string, params: unknown[]): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        const rs = await this.s.execute(this.claimQ, params);
        return rs.wasApplied() ? (params[0] as string) : (rs.first().user_id as string);
      } catch (err) {
        if (attempt + 1 >= CAS_ATTEMPTS || !(isUnknownOutcome(err) || isRetryable(err))) throw err;
        // The claim may have been applied: a SERIAL read tells (and completes an in-progress Paxos round).
        const current = await this.s.execute(this.byNameQ, [username], { serial: true, idempotent: true }).catch(() => undefined);
        const holder = current?.first()?.user_id as string | undefined;
        if (holder !== undefined) return holder;
        await backoff(attempt);
      }
    }
  }

  async byUsername(username: string): Promise<Account | undefined> {
    const rs = await this.s.execute(this.byNameQ, [normalizeUsername(username)], { idempotent: true });
    const r = rs.first();
    return r ? toAccount(r) : undefined;
  }

  async byId(userId: string): Promise<Account | undefined> {
    const rs = await this.s.execute(this.byIdQ, [userId], { idempotent: true });
    const r = rs.first();
    return r ? toAccount(r) : undefined;
  }
}

/** Revocations are spread over this many partitions; active() reads them all. */
export const REVOCATION_SHARDS = 16;
/** Rows outlive their expiry by this much before the TTL drops them (clock skew between nodes). */
const REVOCATION_TTL_MARGIN_S = 300;
/** Cassandra's largest TTL (20 years). */
export const MAX_TTL_S = 630_720_000;

function shardOf(tokenId: string): number {
  return createHash('sha1').update(tokenId).digest().readUInt16BE(0) % REVOCATION_SHARDS;
}

/**
 * revoked_tokens ((shard), token_id): each row is written USING TTL until its expiry (plus a
 * margin), so expired revocations disappear by themselves, and USING TIMESTAMP = the expiry,
 * so when a token is revoked twice the later expiry wins whatever the order of the writes.
 */
export class CassandraRevocationStore implements RevocationStore {
  private readonly upsertQ: string;
  private readonly shardQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
  ) {
    this.upsertQ = `INSERT INTO ${ks}.revoked_tokens (shard, token_id, expires_at) VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?`;
    this.shardQ = `SELECT token_id, expires_at FROM ${ks}.revoked_tokens WHERE shard = ?`;
  }

  async revoke(tokenId: string, expiresAt: number): Promise<void> {
    const ttl = Math.min(MAX_TTL_S, Math.max(1, Math.ceil((expiresAt - Date.now()) / 1000)) + REVOCATION_TTL_MARGIN_S);
    await this.s.execute(this.upsertQ, [shardOf(tokenId), tokenId, expiresAt, ttl, expiresAt * 1000], { idempotent: true });
  }

  async active(now: number): Promise<Array<{ tokenId: string; expiresAt: number }>> {
    const shards = await Promise.all(
      Array.from({ length: REVOCATION_SHARDS }, (_, shard) => this.s.all(this.shardQ, [shard])),
    );
    return shards
      .flat()
      .map((r) => ({ tokenId: r.token_id as string, expiresAt: toNum(r.expires_at) }))
      .filter((r) => r.expiresAt > now)
      .sort((a, b) => a.expiresAt - b.expiresAt || (a.tokenId < b.tokenId ? -1 : a.tokenId > b.tokenId ? 1 : 0));
  }
}
