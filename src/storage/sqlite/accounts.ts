import { KindredError } from '../../errors.js';
import type { Account, AccountStore, RevocationStore } from '../types.js';
import { read, write, type SqliteContext } from './common.js';

interface AccountRow {
  user_id: string;
  username: string;
  password_hash: string;
  scram1_salt: string;
  scram1_iterations: number;
  scram1_stored_key: string;
  scram1_server_key: string;
  scram256_salt: string;
  scram256_iterations: number;
  scram256_stored_key: string;
  scram256_server_key: string;
  created_at: number;
}

function toAccount(r: AccountRow): Account {
  return {
    userId: r.user_id,
    username: r.username,
    passwordHash: r.password_hash,
    scramSha1: { salt: r.scram1_salt, iterations: r.scram1_iterations, storedKey: r.scram1_stored_key, serverKey: r.scram1_server_key },
    scramSha256: { salt: r.scram256_salt, iterations: r.scram256_iterations, storedKey: r.scram256_stored_key, serverKey: r.scram256_server_key },
    createdAt: r.created_at,
  };
}

/** Usernames are case-insensitive: stored and looked up in lowercase. */
export function normalizeUsername(username: string): string {
  return username.normalize('NFC').toLowerCase();
}

export class SqliteAccountStore implements AccountStore {
  private readonly claimName;
  private readonly insert;
  private readonly byNameStmt;
  private readonly byIdStmt;
  private readonly createTx;

  constructor(private readonly ctx: SqliteContext) {
    const { db } = ctx;
    this.claimName = db.prepare('INSERT OR IGNORE INTO accounts_by_username (username, user_id) VALUES (?, ?)');
    this.insert = db.prepare(`INSERT INTO accounts (user_id, username, password_hash,
        scram1_salt, scram1_iterations, scram1_stored_key, scram1_server_key,
        scram256_salt, scram256_iterations, scram256_stored_key, scram256_server_key, created_at)
      VALUES (@user_id, @username, @password_hash,
        @scram1_salt, @scram1_iterations, @scram1_stored_key, @scram1_server_key,
        @scram256_salt, @scram256_iterations, @scram256_stored_key, @scram256_server_key, @created_at)`);
    this.byNameStmt = db.prepare(
      `SELECT a.* FROM accounts_by_username u JOIN accounts a ON a.user_id = u.user_id WHERE u.username = ?`,
    );
    this.byIdStmt = db.prepare('SELECT * FROM accounts WHERE user_id = ?');
    // The username claim is the uniqueness check (an LWT on Cassandra); the account row follows in the same transaction.
    this.createTx = db.transaction((row: AccountRow) => {
      if (this.claimName.run(row.username, row.user_id).changes === 0) {
        throw new KindredError('CONFLICT', 'username taken');
      }
      this.insert.run(row);
    });
  }

  create(account: Account): Promise<void> {
    const row: AccountRow = {
      user_id: account.userId,
      username: normalizeUsername(account.username),
      password_hash: account.passwordHash,
      scram1_salt: account.scramSha1.salt,
      scram1_iterations: account.scramSha1.iterations,
      scram1_stored_key: account.scramSha1.storedKey,
      scram1_server_key: account.scramSha1.serverKey,
      scram256_salt: account.scramSha256.salt,
      scram256_iterations: account.scramSha256.iterations,
      scram256_stored_key: account.scramSha256.storedKey,
      scram256_server_key: account.scramSha256.serverKey,
      created_at: account.createdAt,
    };
    return write(this.ctx, () => this.createTx.immediate(row));
  }

  byUsername(username: string): Promise<Account | undefined> {
    return read(() => {
      const r = this.byNameStmt.get(normalizeUsername(username)) as AccountRow | undefined;
      return r && toAccount(r);
    });
  }

  byId(userId: string): Promise<Account | undefined> {
    return read(() => {
      const r = this.byIdStmt.get(userId) as AccountRow | undefined;
      return r && toAccount(r);
    });
  }
}

export class SqliteRevocationStore implements RevocationStore {
  private readonly upsert;
  private readonly prune;
  private readonly activeStmt;

  constructor(private readonly ctx: SqliteContext) {
    const { db } = ctx;
    // A token revoked twice keeps the later expiry.
    this.upsert = db.prepare(`INSERT INTO revoked_tokens (token_id, expires_at) VALUES (?, ?)
      ON CONFLICT (token_id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)`);
    this.prune = db.prepare('DELETE FROM revoked_tokens WHERE expires_at <= ?');
    this.activeStmt = db.prepare('SELECT token_id, expires_at FROM revoked_tokens WHERE expires_at > ? ORDER BY expires_at');
  }

  revoke(tokenId: string, expiresAt: number): Promise<void> {
    return write(this.ctx, () => {
      this.upsert.run(tokenId, expiresAt);
    });
  }

  active(now: number): Promise<Array<{ tokenId: string; expiresAt: number }>> {
    return read(() => {
      // Drop rows that have expired by both the caller's and the wall clock (Cassandra does this with TTLs).
      this.prune.run(Math.min(now, Date.now()));
      const rows = this.activeStmt.all(now) as Array<{ token_id: string; expires_at: number }>;
      return rows.map((r) => ({ tokenId: r.token_id, expiresAt: r.expires_at }));
    });
  }
}
