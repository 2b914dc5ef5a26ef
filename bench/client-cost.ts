/**
 * Why the harness has its own XMPP client: JS heap and CPU per logged-in session,
 * @xmpp/client vs bench/lib/xmpp-client.ts, against a Prosody started by the harness.
 *   node --expose-gc --import tsx bench/client-cost.ts [sessions=200]
 */
// @ts-expect-error @xmpp/client ships no types (see /work/shared/dependencies.md)
import { client, xml } from '@xmpp/client';
import { startProsody } from './lib/targets/prosody.js';
import { XmppSession } from './lib/xmpp-client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const n = Number(process.argv[2] ?? 200);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const heap = () => {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
};
const target = await startProsody({});
try {
  const { accounts } = await target.createAccounts(n, { prefix: 'cost', pairs: false, concurrency: 50 });
  const measure = async (name: string, open: (i: number) => Promise<() => Promise<void>>) => {
    const h0 = heap();
    const c0 = process.cpuUsage();
    const closers: Array<() => Promise<void>> = [];
    for (let i = 0; i < n; i += 20) closers.push(...(await Promise.all(Array.from({ length: Math.min(20, n - i) }, (_, j) => open(i + j)))));
    const c1 = process.cpuUsage(c0);
    const h1 = heap();
    console.log(`${name}: ${((h1 - h0) / 1024 / n).toFixed(1)} KiB JS heap per session, ${((c1.user + c1.system) / 1000 / n).toFixed(2)} ms client CPU per login (${n} sessions)`);
    for (const close of closers) await close();
  };
  await measure('bench/lib/xmpp-client.ts', async (i) => {
    const s = await XmppSession.open(target.xmppTcp, accounts[i]!);
    return async () => s.close();
  });
  await measure('@xmpp/client 0.14', async (i) => {
    const xmpp: any = client({ service: `xmpp://127.0.0.1:${target.xmppTcp.port}`, domain: 'localhost', username: accounts[i]!.username, password: accounts[i]!.password, resource: 'bench' });
    xmpp.on('error', () => undefined);
    (xmpp as unknown as { timeout: number }).timeout = 30_000; // the default 2 s is too short on a busy 2-core box
    await xmpp.start();
    await xmpp.send(xml('presence'));
    return async () => void (await xmpp.stop().catch(() => undefined));
  });
} finally {
  await target.stop();
}

