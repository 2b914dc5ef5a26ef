/**
 * A server under test, started by the harness on loopback ports with its own data
 * dir, and the accounts it serves. Kindred, Prosody and ejabberd all implement it, so
 * every scenario runs the same users and the same load against each.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import type { XmppEndpoint } from '../xmpp-client.js';

export type TargetName = 'kindred' | 'kindred-cluster' | 'prosody' | 'ejabberd';
export const TARGETS: readonly TargetName[] = ['kindred', 'kindred-cluster', 'prosody', 'ejabberd'];

export interface Account {
  username: string;
  password: string;
  /** bare JID */
  jid: string;
  /** Kindred only: for the native protocol */
  userId?: string;
  token?: string;
}

export interface NativeEndpoint {
  wsUrl: string;
  host: string;
  tcpPort: number;
}

export interface TargetHandle {
  name: TargetName;
  /** e.g. "Prosody 0.12.3" */
  version: string;
  /** the server process whose RSS and CPU are sampled */
  pid: number;
  xmppTcp: XmppEndpoint;
  xmppWs: XmppEndpoint;
  /** Kindred only */
  native?: NativeEndpoint;
  /** what the harness configured (recorded in the result) */
  config: unknown;
  logFile: string;
  /**
   * Creates `count` accounts named `<prefix>-<i>`. With `pairs`, accounts 2i and 2i+1
   * may message each other (Kindred: registered over REST and matched by two likes;
   * Prosody and ejabberd let anyone message anyone).
   */
  createAccounts(count: number, opts: { prefix: string; pairs: boolean; concurrency: number }): Promise<{ accounts: Account[]; seconds: number }>;
  /** messages the server still holds for delivery, when it can tell (Kindred: actor mailbox depth) */
  backlog(): Promise<number | undefined>;
  /** warnings/errors the server logged */
  problems(): { warnings: number; errors: number; last: string[] };
  stop(): Promise<void>;
}

export const BENCH_PASSWORD = 'correct horse battery';

/** A free TCP port on 127.0.0.1 (the OS picks it; a race with another process is possible but rare). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs: number, what: string, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`${what} exited before listening on port ${port}`);
    if (Date.now() > deadline) throw new Error(`${what} did not listen on port ${port} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Pids whose command line contains `needle` (to find a daemon the harness started, e.g. ejabberd's beam.smp). */
export function pidsWithCmdline(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Makes a self-signed certificate for `domain` with openssl (key + cert PEM files). */
export function selfSignedCert(certFile: string, keyFile: string, domain: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '3650', '-subj', `/CN=${domain}`, '-addext', `subjectAltName=DNS:${domain}`], { stdio: 'ignore' });
}

/** Installs the peer's Debian package on first use (bench/peers/install.sh). */
export function ensureInstalled(peer: 'prosody' | 'ejabberd', repoRoot: string): void {
  execFileSync('sh', [`${repoRoot}/bench/peers/install.sh`, peer], { stdio: ['ignore', 'inherit', 'inherit'] });
}
