/**
 * Accounts and access tokens.
 *
 * Passwords are stored as an scrypt hash (for REST/native logins) and as SCRAM-SHA-1
 * and SCRAM-SHA-256 verifiers (RFC 5802 / RFC 7677), so XMPP clients can authenticate
 * the same accounts with SCRAM and the server never keeps the plaintext.
 *
 * Access tokens are signed (HMAC-SHA-256), expiring, and carry a token id so logout
 * can revoke them. Verification is local and synchronous (the seed's Gateway checks
 * every request without a round trip to the profile service); revocations are
 * announced on the bus so every node's in-memory revocation set stays current.
 */
import { createHash, createHmac, pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { KindredError } from '../errors.js';
import { newId } from '../ids.js';
import type { ScramVerifier } from '../storage/types.js';
import type { Principal } from './gateway.js';

const scryptAsync = promisify(scrypt) as (pw: string | Buffer, salt: Buffer, keylen: number, opts: object) => Promise<Buffer>;
const pbkdf2Async = promisify(pbkdf2);

export const USERNAME_RE = /^[a-z0-9][a-z0-9._-]{2,31}$/;

export function normalizeUsername(raw: string): string {
  return raw.trim().toLowerCase();
}

export function checkCredentialsShape(username: unknown, password: unknown): { username: string; password: string } {
  if (typeof username !== 'string' || !USERNAME_RE.test(normalizeUsername(username))) {
    throw new KindredError('INVALID_ARGUMENT', 'username: 3-32 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit');
  }
  if (typeof password !== 'string' || password.length < 8 || password.length > 1024) {
    throw new KindredError('INVALID_ARGUMENT', 'password: 8 to 1024 characters');
  }
  return { username: normalizeUsername(username), password: password.normalize('NFKC') };
}

export interface PasswordCost {
  /** scrypt N (power of two) */
  scryptN: number;
  scramIterations: number;
}

export async function hashPassword(password: string, cost: PasswordCost): Promise<string> {
  const salt = randomBytes(16);
  const N = cost.scryptN;
  const hash = await scryptAsync(password, salt, 32, { N, r: 8, p: 1, maxmem: 256 * N * 8 });
  return `scrypt$${N}$8$1$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, 'base64');
  const N = Number(n);
  const actual = await scryptAsync(password, Buffer.from(salt, 'base64'), expected.length, { N, r: Number(r), p: Number(p), maxmem: 256 * N * 8 });
  return timingSafeEqual(actual, expected);
}

export type ScramHash = 'sha1' | 'sha256';

/** RFC 5802 §3: StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key"). */
export async function scramVerifier(password: string, hash: ScramHash, iterations: number, salt = randomBytes(16)): Promise<ScramVerifier> {
  const keyLen = hash === 'sha1' ? 20 : 32;
  const salted = await pbkdf2Async(password, salt, iterations, keyLen, hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  return {
    salt: salt.toString('base64'),
    iterations,
    storedKey: createHash(hash).update(clientKey).digest('base64'),
    serverKey: createHmac(hash, salted).update('Server Key').digest('base64'),
  };
}

interface TokenPayload {
  sub: string;
  jti: string;
  exp: number;
}

/** Compact token: `k1.<base64url JSON payload>.<base64url HMAC-SHA-256>`. */
export class TokenAuthority {
  private readonly revoked = new Map<string, number>();

  constructor(
    private readonly secret: Buffer,
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    if (secret.length < 32) throw new Error('token secret must be at least 32 bytes');
  }

  issue(userId: string): { token: string; tokenId: string; expiresAt: number } {
    const expiresAt = this.now() + this.ttlSeconds * 1000;
    const payload: TokenPayload = { sub: userId, jti: newId(), exp: expiresAt };
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return { token: `k1.${body}.${this.sign(body)}`, tokenId: payload.jti, expiresAt };
  }

  verify(token: string): Principal {
    if (typeof token !== 'string' || token.length > 1024) throw new KindredError('TOKEN_INVALID');
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== 'k1') throw new KindredError('TOKEN_INVALID');
    const [, body, sig] = parts as [string, string, string];
    const expected = Buffer.from(this.sign(body));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new KindredError('TOKEN_INVALID');
    let payload: TokenPayload;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TokenPayload;
    } catch {
      throw new KindredError('TOKEN_INVALID');
    }
    if (typeof payload !== 'object' || payload === null || typeof payload.sub !== 'string' || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') throw new KindredError('TOKEN_INVALID');
    if (payload.exp <= this.now()) throw new KindredError('TOKEN_EXPIRED');
    if (this.revoked.has(payload.jti)) throw new KindredError('TOKEN_INVALID', 'the access token was revoked');
    return { userId: payload.sub, tokenId: payload.jti, expiresAt: payload.exp };
  }

  /** Whether a token id was revoked (for principals verified earlier, on long-lived connections). */
  isRevoked(tokenId: string): boolean {
    return this.revoked.has(tokenId);
  }

  markRevoked(tokenId: string, expiresAt: number): void {
    this.revoked.set(tokenId, expiresAt);
  }

  /** Drops revocations of tokens that have expired anyway, keeping the set small. */
  pruneRevocations(): void {
    const now = this.now();
    for (const [id, exp] of this.revoked) if (exp <= now) this.revoked.delete(id);
  }

  private sign(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url');
  }
}
