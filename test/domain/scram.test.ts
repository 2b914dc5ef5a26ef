/** SCRAM server exchange driven by an independent client computation (RFC 5802 §3). */
import t from 'tap';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { startScram } from '../../src/domain/scram.js';
import { scramVerifier } from '../../src/domain/auth.js';
import type { Account, AccountStore } from '../../src/storage/types.js';

async function storeWith(password: string): Promise<AccountStore> {
  const account: Account = {
    userId: 'u-1',
    username: 'user',
    passwordHash: 'x',
    scramSha1: await scramVerifier(password, 'sha1', 4096),
    scramSha256: await scramVerifier(password, 'sha256', 4096),
    createdAt: 0,
  };
  return {
    create: async () => undefined,
    byUsername: async (u) => (u === 'user' ? account : undefined),
    byId: async () => account,
  };
}

function clientFinal(hash: 'sha1' | 'sha256', password: string, clientFirstBare: string, serverFirst: string, gs2 = 'n,,') {
  const a = new Map(serverFirst.split(',').map((p) => [p[0], p.slice(2)] as [string, string]));
  const salted = pbkdf2Sync(password, Buffer.from(a.get('s')!, 'base64'), Number(a.get('i')), hash === 'sha1' ? 20 : 32, hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  const storedKey = createHash(hash).update(clientKey).digest();
  const withoutProof = `c=${Buffer.from(gs2).toString('base64')},r=${a.get('r')}`;
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  const sig = createHmac(hash, storedKey).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]!));
  const serverKey = createHmac(hash, salted).update('Server Key').digest();
  const expectedServerFinal = `v=${createHmac(hash, serverKey).update(authMessage).digest('base64')}`;
  return { message: `${withoutProof},p=${proof.toString('base64')}`, expectedServerFinal };
}

for (const [mech, hash] of [['SCRAM-SHA-256', 'sha256'], ['SCRAM-SHA-1', 'sha1']] as const) {
  t.test(`${mech}: a correct password authenticates and the server proves itself`, async (t) => {
    const accounts = await storeWith('pencil');
    const bare = 'n=user,r=rOprNGfwEbeRWgbNEkqO';
    const ex = await startScram(mech, `n,,${bare}`, accounts, Buffer.alloc(32), 4096);
    t.match(ex.serverFirst, /^r=rOprNGfwEbeRWgbNEkqO[^,]+,s=[^,]+,i=4096$/);
    const { message, expectedServerFinal } = clientFinal(hash, 'pencil', bare, ex.serverFirst);
    const done = await ex.finish(message);
    t.equal(done.userId, 'u-1');
    t.equal(done.serverFinal, expectedServerFinal, 'server signature verifies');
  });

  t.test(`${mech}: wrong password, unknown user, tampering`, async (t) => {
    const accounts = await storeWith('pencil');
    const bare = 'n=user,r=abc';
    const ex = await startScram(mech, `n,,${bare}`, accounts, Buffer.alloc(32), 4096);
    await t.rejects(ex.finish(clientFinal(hash, 'wrong', bare, ex.serverFirst).message), { code: 'BAD_CREDENTIALS' });

    const ghostBare = 'n=ghost,r=abc';
    const ghost = await startScram(mech, `n,,${ghostBare}`, accounts, Buffer.alloc(32), 4096);
    t.match(ghost.serverFirst, /,s=.+,i=4096$/, 'an unknown user still gets a salt');
    const ghostAgain = await startScram(mech, `n,,${ghostBare}`, accounts, Buffer.alloc(32), 4096);
    t.equal(ghost.serverFirst.split(',')[1], ghostAgain.serverFirst.split(',')[1], 'and the same one every time');
    await t.rejects(ghost.finish(clientFinal(hash, 'pencil', ghostBare, ghost.serverFirst).message), { code: 'BAD_CREDENTIALS' });

    const ex2 = await startScram(mech, `n,,${bare}`, accounts, Buffer.alloc(32), 4096);
    const good = clientFinal(hash, 'pencil', bare, ex2.serverFirst).message;
    await t.rejects(ex2.finish(good.replace(/r=[^,]+/, 'r=other')), { code: 'BAD_REQUEST' }, 'nonce must match');
    await t.rejects(ex2.finish(good.replace(/^c=[^,]+/, 'c=eSws')), { code: 'BAD_REQUEST' }, 'GS2 header must match');
  });
}

t.test('malformed client-first messages', async (t) => {
  const accounts = await storeWith('pencil');
  for (const bad of ['', 'x', 'p=tls-unique,,n=user,r=a', 'n,,n=user', 'n,,r=abc', 'n,,n=us=er,r=a', 'n,,m=ext,n=user,r=a']) {
    await t.rejects(startScram('SCRAM-SHA-256', bad, accounts, Buffer.alloc(32), 4096), { code: 'BAD_REQUEST' }, JSON.stringify(bad));
  }
});
