/**
 * Accounts and tokens: password hashing, SCRAM verifiers against the RFC test
 * vectors, signed expiring revocable tokens, credential shape checks.
 */
import t, { type Test } from 'tap';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { TokenAuthority, checkCredentialsShape, hashPassword, scramVerifier, verifyPassword } from '../../src/domain/auth.js';
import { KindredError } from '../../src/errors.js';

const cost = { scryptN: 1024, scramIterations: 4096 };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof KindredError ? err.code : `not a KindredError: ${String(err)}`;
  }
  return undefined;
}

t.test('hashPassword / verifyPassword', async (t) => {
  const stored = await hashPassword('correct horse battery', cost);
  t.match(stored, /^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/, 'self-describing format with its parameters');
  t.equal(await verifyPassword('correct horse battery', stored), true, 'the right password');
  t.equal(await verifyPassword('correct horse batterY', stored), false, 'a wrong password');
  t.equal(await verifyPassword('', stored), false, 'an empty password');
  t.equal(await verifyPassword('correct horse battery ', stored), false, 'a trailing space matters');

  const again = await hashPassword('correct horse battery', cost);
  t.not(again, stored, 'a fresh salt every time');
  t.equal(await verifyPassword('correct horse battery', again), true);

  const strong = await hashPassword('pässwörd ✓', { scryptN: 2048, scramIterations: 4096 });
  t.match(strong, /^scrypt\$2048\$/, 'the cost is recorded, so it can be raised later');
  t.equal(await verifyPassword('pässwörd ✓', strong), true, 'non-ASCII passwords round trip');

  t.equal(await verifyPassword('x', 'not a hash'), false, 'a malformed stored hash is simply no match');
  t.equal(await verifyPassword('x', 'bcrypt$1$2$3$4$5'), false, 'an unknown scheme is no match');
});

/** RFC 5802 §3, written out independently of src/domain/auth.ts. */
function independentVerifier(password: string, hash: 'sha1' | 'sha256', saltB64: string, iterations: number) {
  const keyLen = hash === 'sha1' ? 20 : 32;
  const salted = pbkdf2Sync(password, Buffer.from(saltB64, 'base64'), iterations, keyLen, hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  return {
    clientKey,
    storedKey: createHash(hash).update(clientKey).digest(),
    serverKey: createHmac(hash, salted).update('Server Key').digest(),
  };
}

/**
 * Checks a stored verifier the way a SCRAM server does, against an RFC's recorded
 * exchange: recover ClientKey from the client's proof, check H(ClientKey) = StoredKey,
 * and compute the ServerSignature the RFC's server sent.
 */
function checkAgainstExchange(
  t: Test,
  hash: 'sha1' | 'sha256',
  verifier: { storedKey: string; serverKey: string },
  exchange: { clientFirstBare: string; serverFirst: string; clientFinalWithoutProof: string; proof: string; serverSignature: string },
): void {
  const authMessage = `${exchange.clientFirstBare},${exchange.serverFirst},${exchange.clientFinalWithoutProof}`;
  const storedKey = Buffer.from(verifier.storedKey, 'base64');
  const clientSignature = createHmac(hash, storedKey).update(authMessage).digest();
  const proof = Buffer.from(exchange.proof, 'base64');
  t.equal(proof.length, clientSignature.length, 'proof length');
  const clientKey = Buffer.from(proof.map((b, i) => b ^ clientSignature[i]!));
  t.equal(createHash(hash).update(clientKey).digest('base64'), verifier.storedKey, "the RFC client's proof verifies against StoredKey");
  const serverSignature = createHmac(hash, Buffer.from(verifier.serverKey, 'base64')).update(authMessage).digest('base64');
  t.equal(serverSignature, exchange.serverSignature, "ServerKey yields the RFC server's signature");
}

t.test('scramVerifier matches RFC 7677 (SCRAM-SHA-256)', async (t) => {
  const salt = 'W22ZaJ0SNY7soEsUEjb6gQ==';
  const v = await scramVerifier('pencil', 'sha256', 4096, Buffer.from(salt, 'base64'));
  t.equal(v.salt, salt);
  t.equal(v.iterations, 4096);
  const ind = independentVerifier('pencil', 'sha256', salt, 4096);
  t.equal(v.storedKey, ind.storedKey.toString('base64'), 'StoredKey equals an independent computation');
  t.equal(v.serverKey, ind.serverKey.toString('base64'), 'ServerKey equals an independent computation');
  checkAgainstExchange(t, 'sha256', v, {
    clientFirstBare: 'n=user,r=rOprNGfwEbeRWgbNEkqO',
    serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    clientFinalWithoutProof: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
    proof: 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    serverSignature: '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  });
  const wrong = await scramVerifier('pencil2', 'sha256', 4096, Buffer.from(salt, 'base64'));
  t.not(wrong.storedKey, v.storedKey, 'another password gives another StoredKey');
});

t.test('scramVerifier matches RFC 5802 (SCRAM-SHA-1)', async (t) => {
  const salt = 'QSXCR+Q6sek8bf92';
  const v = await scramVerifier('pencil', 'sha1', 4096, Buffer.from(salt, 'base64'));
  t.equal(v.salt, salt);
  t.equal(v.iterations, 4096);
  const ind = independentVerifier('pencil', 'sha1', salt, 4096);
  t.equal(v.storedKey, ind.storedKey.toString('base64'));
  t.equal(v.serverKey, ind.serverKey.toString('base64'));
  t.equal(Buffer.from(v.storedKey, 'base64').length, 20, 'SHA-1 sized keys');
  checkAgainstExchange(t, 'sha1', v, {
    clientFirstBare: 'n=user,r=fyko+d2lbbFgONRv9qkxdawL',
    serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
    clientFinalWithoutProof: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j',
    proof: 'v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
    serverSignature: 'rmF9pqV8S7suAoZWja4dJRkFsKQ=',
  });
});

t.test('scramVerifier picks a fresh random salt by default', async (t) => {
  const a = await scramVerifier('pencil', 'sha256', 4096);
  const b = await scramVerifier('pencil', 'sha256', 4096);
  t.not(a.salt, b.salt);
  t.not(a.storedKey, b.storedKey);
  t.equal(Buffer.from(a.salt, 'base64').length, 16);
  t.equal(a.storedKey, independentVerifier('pencil', 'sha256', a.salt, 4096).storedKey.toString('base64'));
});

const SECRET = Buffer.alloc(32, 7);

function authority(clock: { t: number }, ttlSeconds = 60, secret = SECRET): TokenAuthority {
  return new TokenAuthority(secret, ttlSeconds, () => clock.t);
}

t.test('TokenAuthority issues tokens that verify to their principal', async (t) => {
  const clock = { t: 1_700_000_000_000 };
  const ta = authority(clock);
  const issued = ta.issue('user-1');
  t.match(issued.token, /^k1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, 'k1.<payload>.<HMAC-SHA-256>, base64url');
  t.equal(issued.expiresAt, clock.t + 60_000);
  const p = ta.verify(issued.token);
  t.same(p, { userId: 'user-1', tokenId: issued.tokenId, expiresAt: issued.expiresAt });
  const other = ta.issue('user-1');
  t.not(other.tokenId, issued.tokenId, 'every token has its own id');
  t.not(other.token, issued.token);
});

t.test('TokenAuthority expiry follows the injected clock', async (t) => {
  const clock = { t: 1_000_000 };
  const ta = authority(clock, 10);
  const { token } = ta.issue('u');
  clock.t += 9_999;
  t.equal(ta.verify(token).userId, 'u', 'valid one millisecond before expiry');
  clock.t += 1;
  t.equal(codeOf(() => ta.verify(token)), 'TOKEN_EXPIRED', 'expired exactly at expiresAt');
  clock.t += 3600_000;
  t.equal(codeOf(() => ta.verify(token)), 'TOKEN_EXPIRED');
  t.equal(new KindredError('TOKEN_EXPIRED').httpStatus, 401);
});

t.test('TokenAuthority detects tampering and forgery', async (t) => {
  const clock = { t: 5_000_000 };
  const ta = authority(clock);
  const { token } = ta.issue('alice');
  const [k, body, sig] = token.split('.') as [string, string, string];
  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

  t.equal(codeOf(() => ta.verify(`${k}.${body}.${flip(sig, 0)}`)), 'TOKEN_INVALID', 'first signature char flipped');
  t.equal(codeOf(() => ta.verify(`${k}.${body}.${flip(sig, sig.length - 1)}`)), 'TOKEN_INVALID', 'last signature char flipped');
  t.equal(codeOf(() => ta.verify(`${k}.${body}.${sig.slice(0, -1)}`)), 'TOKEN_INVALID', 'signature truncated');
  t.equal(codeOf(() => ta.verify(`${k}.${body}.${sig}A`)), 'TOKEN_INVALID', 'signature extended');
  t.equal(codeOf(() => ta.verify(`${k}.${flip(body, 5)}.${sig}`)), 'TOKEN_INVALID', 'payload changed');

  // A payload rewritten to another user (and a later expiry) keeps the old signature: refused.
  const payload = JSON.parse(Buffer.from(body, 'base64url').toString()) as { sub: string; jti: string; exp: number };
  t.equal(payload.sub, 'alice');
  const forgedBody = Buffer.from(JSON.stringify({ ...payload, sub: 'mallory', exp: payload.exp + 1e9 })).toString('base64url');
  t.equal(codeOf(() => ta.verify(`${k}.${forgedBody}.${sig}`)), 'TOKEN_INVALID', 'payload swapped, old signature');

  const otherSecret = authority(clock, 60, Buffer.alloc(32, 8));
  t.equal(codeOf(() => ta.verify(otherSecret.issue('alice').token)), 'TOKEN_INVALID', 'signed with another secret');

  t.equal(codeOf(() => ta.verify(`k2.${body}.${sig}`)), 'TOKEN_INVALID', 'unknown version');
  t.equal(codeOf(() => ta.verify(`${body}.${sig}`)), 'TOKEN_INVALID', 'two parts');
  t.equal(codeOf(() => ta.verify(`${token}.x`)), 'TOKEN_INVALID', 'four parts');
  for (const garbage of ['', 'garbage', '...', 'k1..', 'Bearer ' + token, 'k1.' + 'a'.repeat(2000) + '.' + sig]) {
    t.equal(codeOf(() => ta.verify(garbage)), 'TOKEN_INVALID', `garbage ${JSON.stringify(garbage.slice(0, 20))}`);
  }
  t.equal(codeOf(() => ta.verify(undefined as unknown as string)), 'TOKEN_INVALID', 'not a string');
  t.equal(codeOf(() => ta.verify(42 as unknown as string)), 'TOKEN_INVALID', 'a number');

  // Correctly signed but malformed payloads (only someone with the secret could make these).
  const sign = (b: string) => createHmac('sha256', SECRET).update(b).digest('base64url');
  const signed = (p: unknown) => {
    const b = Buffer.from(typeof p === 'string' ? p : JSON.stringify(p)).toString('base64url');
    return `k1.${b}.${sign(b)}`;
  };
  t.equal(ta.verify(signed({ sub: 'x', jti: 'j', exp: clock.t + 1 })).userId, 'x', 'the hand-signed control token verifies');
  t.equal(codeOf(() => ta.verify(signed('not json'))), 'TOKEN_INVALID', 'signed non-JSON payload');
  t.equal(codeOf(() => ta.verify(signed({ sub: 'x', jti: 'j' }))), 'TOKEN_INVALID', 'signed payload without exp');
  t.equal(codeOf(() => ta.verify(signed({ sub: 1, jti: 'j', exp: clock.t + 1 }))), 'TOKEN_INVALID', 'signed payload with a numeric sub');
  t.equal(codeOf(() => ta.verify(signed({ sub: 'x', jti: 'j', exp: String(clock.t + 1000) }))), 'TOKEN_INVALID', 'signed payload with a string exp');
  t.equal(codeOf(() => ta.verify(signed(null))), 'TOKEN_INVALID', 'signed null payload');
});

t.test('TokenAuthority refuses a short secret', async (t) => {
  t.throws(() => new TokenAuthority(Buffer.alloc(31), 60), /at least 32 bytes/);
  t.doesNotThrow(() => new TokenAuthority(Buffer.alloc(32), 60));
});

t.test('TokenAuthority revocation and pruneRevocations', async (t) => {
  const clock = { t: 10_000_000 };
  const ta = authority(clock, 60);
  const a = ta.issue('alice');
  const b = ta.issue('alice');
  ta.markRevoked(a.tokenId, a.expiresAt);
  try {
    ta.verify(a.token);
    t.fail('a revoked token verified');
  } catch (err) {
    t.equal((err as KindredError).code, 'TOKEN_INVALID');
    t.match((err as KindredError).message, /revoked/);
  }
  t.equal(ta.verify(b.token).tokenId, b.tokenId, "revoking one token leaves the user's other tokens alone");

  // A revocation is kept while its token could still verify.
  clock.t += 30_000;
  ta.pruneRevocations();
  t.equal(codeOf(() => ta.verify(a.token)), 'TOKEN_INVALID', 'still revoked after a prune before expiry');

  // pruneRevocations drops entries whose recorded expiry has passed. Observe it with a
  // revocation recorded with an (artificially) earlier expiry than the token's own.
  const c = ta.issue('bob');
  ta.markRevoked(c.tokenId, clock.t + 1000);
  t.equal(codeOf(() => ta.verify(c.token)), 'TOKEN_INVALID');
  clock.t += 1000;
  ta.pruneRevocations();
  t.equal(ta.verify(c.token).userId, 'bob', 'the entry was pruned once its expiry passed');
  t.equal(codeOf(() => ta.verify(a.token)), 'TOKEN_INVALID', 'entries not yet expired survive the same prune');

  // After the real expiry the token is refused as expired whether or not it was pruned.
  clock.t += 60_000;
  ta.pruneRevocations();
  t.equal(codeOf(() => ta.verify(a.token)), 'TOKEN_EXPIRED');
});

t.test('checkCredentialsShape', async (t) => {
  t.same(checkCredentialsShape('alice', 'password1'), { username: 'alice', password: 'password1' });
  t.same(checkCredentialsShape('  Alice.B_c-9  ', 'password1').username, 'alice.b_c-9', 'trimmed and lowercased');
  t.equal(checkCredentialsShape('9lives', 'password1').username, '9lives', 'may start with a digit');
  t.equal(checkCredentialsShape('abc', 'password1').username, 'abc', '3 characters is the minimum');
  t.equal(checkCredentialsShape('a'.repeat(32), 'password1').username, 'a'.repeat(32), '32 characters is the maximum');
  t.equal(checkCredentialsShape('alice', 'x'.repeat(8)).password, 'x'.repeat(8), '8 characters is the shortest password');
  t.equal(checkCredentialsShape('alice', 'x'.repeat(1024)).password.length, 1024, '1024 the longest');
  t.equal(checkCredentialsShape('alice', 'ﬁﬁﬁﬁﬁﬁﬁﬁ').password, 'fifififififififi', 'passwords are NFKC normalised');
  t.equal(checkCredentialsShape('alice', 'Ａｂｃｄｅｆｇｈ').password, 'Abcdefgh', 'full-width forms fold too');

  const badUsernames: unknown[] = ['ab', 'a'.repeat(33), '.alice', '-alice', '_alice', 'al ice', 'alice!', 'ålice', 'al/ice', '', '   ', 42, null, undefined, ['alice'], { username: 'alice' }];
  for (const u of badUsernames) {
    try {
      checkCredentialsShape(u, 'password1');
      t.fail(`accepted username ${JSON.stringify(u)}`);
    } catch (err) {
      t.equal((err as KindredError).code, 'INVALID_ARGUMENT', `username ${JSON.stringify(u)}`);
      t.match((err as KindredError).message, /^username: /);
    }
  }
  const badPasswords: unknown[] = ['', 'short', 'x'.repeat(7), 'x'.repeat(1025), 12345678, null, undefined, ['password1']];
  for (const p of badPasswords) {
    try {
      checkCredentialsShape('alice', p);
      t.fail(`accepted password ${JSON.stringify(p)?.slice(0, 20)}`);
    } catch (err) {
      t.equal((err as KindredError).code, 'INVALID_ARGUMENT', `password ${JSON.stringify(p)?.slice(0, 20)}`);
      t.match((err as KindredError).message, /^password: /);
    }
  }
  t.equal(codeOf(() => checkCredentialsShape('ab', 'short')), 'INVALID_ARGUMENT', 'the username is checked first');
  t.match((() => { try { checkCredentialsShape('ab', 'short'); } catch (e) { return (e as Error).message; } return ''; })(), /^username/);
});
