/**
 * Account creation for the XMPP peers: in-band registration (XEP-0077), 50 at a
 * time. `prosodyctl register` and `ejabberdctl register` start a VM per call (about
 * a second each), which is too slow for thousands of users; both peers are
 * configured to allow registration from loopback, and the accounts are the same
 * names and password as on Kindred.
 */
import { pool } from '../setup.js';
import { XmppSession, type XmppEndpoint } from '../xmpp-client.js';
import { sourceAddress } from '../conn.js';
import { BENCH_PASSWORD, type Account } from './types.js';

export async function registerInBand(ep: XmppEndpoint, count: number, prefix: string, concurrency: number): Promise<{ accounts: Account[]; seconds: number }> {
  const t0 = performance.now();
  const accounts = await pool(Array.from({ length: count }, (_, i) => i), concurrency, async (i) => {
    const username = `${prefix}-user-${i}`;
    // a busy peer hashing passwords can take long: 60 s per attempt, 3 attempts (a rerun finds <conflict/>: fine)
    for (let attempt = 1; ; attempt++) {
      try {
        const s = await XmppSession.open(ep, { username, password: BENCH_PASSWORD }, { register: true, login: false, localAddress: sourceAddress(i), timeoutMs: 60_000 });
        s.close();
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
    return { username, password: BENCH_PASSWORD, jid: `${username}@${ep.domain}` };
  });
  return { accounts, seconds: (performance.now() - t0) / 1000 };
}
