/**
 * TlsFront: starts kindred-tls-front (native/tls-front/) as a child process, talks to it over
 * one socketpair (its fd 3), and restarts it if it dies. A restart loses the connections it
 * held (their sessions see a closed socket, as on any disconnect; clients reconnect) and
 * re-opens every listener on the port it had.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../log.js';
import { FrontLink, type ListenSpec } from './link.js';
import type { FrontSocket } from './socket.js';

/** Where `npm run build` puts the binary (scripts/build-tls-front.sh); KINDRED_TLS_FRONT_BIN overrides it. */
export function defaultTlsFrontBinary(): string {
  return process.env.KINDRED_TLS_FRONT_BIN || fileURLToPath(new URL('../../../dist/bin/kindred-tls-front', import.meta.url));
}

export function tlsFrontBinaryExists(binary = defaultTlsFrontBinary()): boolean {
  return existsSync(binary);
}

export interface TlsFrontOptions {
  binary?: string;
  log: Logger;
  /** first restart delay; doubled per quick crash, up to 5 s */
  restartDelayMs?: number;
  /** how long to wait for the front's HELLO */
  startTimeoutMs?: number;
}

interface Listener {
  spec: ListenSpec;
  onConnection: (socket: FrontSocket) => void;
}

export class TlsFront {
  private child: ChildProcess | null = null;
  private link: FrontLink | null = null;
  private readonly listeners = new Map<number, Listener>();
  private nextListenerId = 1;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private delayMs: number;
  private startedAt = 0;
  private ready: Promise<void> = Promise.resolve();
  /** how many times the front was restarted after dying */
  restarts = 0;

  private constructor(private readonly opts: TlsFrontOptions & { binary: string }) {
    this.delayMs = opts.restartDelayMs ?? 100;
  }

  static async start(opts: TlsFrontOptions): Promise<TlsFront> {
    const front = new TlsFront({ ...opts, binary: opts.binary ?? defaultTlsFrontBinary() });
    front.ready = front.spawn();
    await front.ready;
    return front;
  }

  /** the front's process id (changes on restart) */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get connections(): number {
    return this.link?.connections ?? 0;
  }

  /** Listens through the front; resolves with the bound port (port 0 picks one, kept across restarts). */
  async listen(spec: ListenSpec, onConnection: (socket: FrontSocket) => void): Promise<{ port: number; close: () => void }> {
    await this.ready;
    const id = this.nextListenerId++;
    const link = this.link;
    if (!link) throw new Error('the TLS front is not running');
    const port = await link.listen(id, spec, onConnection);
    this.listeners.set(id, { spec: { ...spec, port }, onConnection });
    return {
      port,
      close: () => {
        this.listeners.delete(id);
        this.link?.unlisten(id);
      },
    };
  }

  /** Stops the front: its connections close (the transports have said goodbye before). */
  async close(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    this.link?.shutdown();
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          child.kill('SIGKILL');
        }, 2000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        // closing the link makes it exit; the signal is for a front that is stuck
        child.kill('SIGTERM');
      });
    }
  }

  private async spawn(): Promise<void> {
    const { binary, log } = this.opts;
    const child = spawn(binary, [], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.startedAt = Date.now();
    const stream = child.stdio[3] as Duplex;
    const link = new FrontLink(stream, (err) => {
      log.error({ err }, 'TLS front: protocol error on the link; restarting it');
      child.kill('SIGKILL');
    });
    this.link = link;
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      stderr = (stderr + s).slice(-2000);
      for (const line of s.split('\n')) if (line.trim()) log.warn({ front: line.trim() }, 'TLS front says');
    });
    const exited = new Promise<Error>((resolve) =>
      child.once('exit', (code, signal) => resolve(new Error(`TLS front exited (code ${code}, signal ${signal}) ${stderr.trim()}`))),
    );
    child.once('error', (err) => log.error({ err }, 'TLS front: could not start'));
    child.once('exit', (code, signal) => {
      link.shutdown(new Error('the TLS front exited'));
      if (this.child === child) this.child = null;
      if (this.link === link) this.link = null;
      if (this.stopping) return;
      log.warn({ code, signal, connectionsLost: true }, 'TLS front exited; restarting it');
      this.scheduleRestart();
    });
    const hello = await Promise.race([
      link.hello,
      exited.then((err) => Promise.reject(err)),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('TLS front did not start in time')), this.opts.startTimeoutMs ?? 10_000).unref()),
    ]).catch((err: Error) => {
      child.kill('SIGKILL');
      throw err;
    });
    log.info({ pid: hello.pid, version: hello.version }, 'TLS front running');
  }

  private scheduleRestart(): void {
    if (this.restartTimer) return;
    // a front that dies right after starting is restarted more and more slowly
    this.delayMs = Date.now() - this.startedAt > 30_000 ? (this.opts.restartDelayMs ?? 100) : Math.min(5000, this.delayMs * 2);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.ready = this.restart();
    }, this.delayMs);
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.spawn();
      this.restarts++;
      for (const [id, l] of this.listeners) {
        await this.link!.listen(id, l.spec, l.onConnection).catch((err: Error) => {
          this.opts.log.error({ err, port: l.spec.port }, 'TLS front: could not listen again after a restart');
        });
      }
    } catch (err) {
      this.opts.log.error({ err }, 'TLS front: restart failed');
      if (!this.stopping) this.scheduleRestart();
    }
  }
}
