/**
 * Kindred embedded, as a child process (bench/lib/server.ts). Accounts are made over
 * REST; for chat pairs the two users like each other, so they are matched (Kindred's
 * default `messaging: matches` is kept: the XMPP figures include the match check).
 * The XMPP per-stream stanza limit is lifted like the native per-user limits.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { deepMerge, scrapeMetrics, startServer, REPO_ROOT } from '../server.js';
import { matchedPairs, registerUsers } from '../setup.js';
import { BENCH_PASSWORD, type Account, type TargetHandle } from './types.js';

export const KINDRED_XMPP_LIMITS = { xmpp: { stanzasPerSecond: 1_000_000, stanzaBurst: 1_000_000 } };

export async function startKindred(opts: { entry?: string; config?: Record<string, unknown>; keepData?: boolean; inspect?: boolean }): Promise<TargetHandle & { inspectorUrl?: string; base: string }> {
  const server = await startServer({ entry: opts.entry, keepData: opts.keepData, inspect: opts.inspect, config: deepMerge(KINDRED_XMPP_LIMITS, opts.config ?? {}) });
  // the commit of the code under test: a snapshot's BUILD_INFO.txt (bench/.build, see README), else the checkout's HEAD
  let commit = 'unknown';
  try {
    const info = join(dirname(server.entry), 'BUILD_INFO.txt');
    commit = existsSync(info)
      ? readFileSync(info, 'utf8').split('\n')[0]!.slice(0, 7) + ' snapshot'
      : execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    /* not a checkout */
  }
  const toAccount = (u: { username: string; userId: string; token: string }): Account => ({
    username: u.username,
    password: BENCH_PASSWORD,
    jid: `${u.username}@${server.domain}`,
    userId: u.userId,
    token: u.token,
  });
  return {
    name: 'kindred',
    version: `Kindred ${commit} (embedded)`,
    pid: server.pid,
    base: server.base,
    inspectorUrl: server.inspectorUrl,
    xmppTcp: { transport: 'tcp', host: '127.0.0.1', port: server.xmppPort, wsUrl: '', domain: server.domain },
    xmppWs: { transport: 'ws', host: '127.0.0.1', port: 0, wsUrl: `ws://127.0.0.1:${server.httpPort}/xmpp-websocket`, domain: server.domain },
    native: { wsUrl: server.wsUrl, host: '127.0.0.1', tcpPort: server.tcpPort },
    config: server.config,
    logFile: server.logFile,
    async createAccounts(count, o) {
      const t0 = performance.now();
      let users: Array<{ username: string; userId: string; token: string }>;
      if (o.pairs) {
        const { pairs } = await matchedPairs(server.base, Math.ceil(count / 2), o.concurrency);
        users = pairs.flatMap(([a, b]) => [a, b]).slice(0, count);
      } else {
        users = (await registerUsers(server.base, count, { prefix: o.prefix, concurrency: o.concurrency })).users;
      }
      return { accounts: users.map(toAccount), seconds: (performance.now() - t0) / 1000 };
    },
    async backlog() {
      const m = await scrapeMetrics(server.base).catch(() => ({}) as Record<string, number>);
      return m['kindred_mailbox_depth'];
    },
    problems: () => server.problems(),
    stop: () => server.stop(),
  };
}
