/**
 * XMPP client-to-server over TCP: RFC 6120 §3 with STARTTLS (§5), and direct TLS per XEP-0368
 * (https://xmpp.org/extensions/xep-0368.html, ALPN "xmpp-client").
 *
 * STARTTLS upgrades in place with `new tls.TLSSocket(socket, { isServer: true })`. Whatever the
 * client sent after `<starttls/>` in clear text is dropped with the old parser (the STARTTLS
 * command-injection class of bugs, CVE-2011-0411 and kin).
 *
 * With `front` (kindred-tls-front, src/protocol/tls-front/), the front owns the TCP and TLS:
 * the transport gets a FrontSocket, and STARTTLS asks the front to hand-shake instead.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Element } from '@xmpp/xml';
import { escapeXML } from '@xmpp/xml';
import { XmppParser } from './parser.js';
import { NS } from './ns.js';
import type { StreamError } from './stanza-errors.js';
import { serialize, type StreamHeader, type StreamReceiver, type XmppTransport } from './transport.js';
import { listenTcp } from '../listen.js';
import { FrontSocket, type ByteSocket } from '../tls-front/socket.js';
import type { TlsFront } from '../tls-front/supervisor.js';

export interface TcpTransportOptions {
  maxStanzaBytes: number;
  /** the TLS material; null means STARTTLS is not offered */
  secureContext: tls.SecureContext | null;
  handshakeTimeoutMs?: number;
}

function streamHeader(h: StreamHeader): string {
  const to = h.to ? ` to='${escapeXML(h.to)}'` : '';
  return (
    `<?xml version='1.0'?><stream:stream xmlns='${NS.client}' xmlns:stream='${NS.streams}'` +
    ` id='${escapeXML(h.id)}' from='${escapeXML(h.from)}'${to} version='1.0' xml:lang='en'>`
  );
}

export class TcpTransport implements XmppTransport {
  readonly kind = 'tcp' as const;
  private receiver: StreamReceiver | null = null;
  private socket: ByteSocket;
  private parser!: XmppParser;
  private _encrypted: boolean;
  private ended = false;
  private closedNotified = false;
  private upgrading = false;
  readonly remoteAddress: string;

  constructor(
    socket: ByteSocket,
    encrypted: boolean,
    private readonly opts: TcpTransportOptions,
  ) {
    this.socket = socket;
    this._encrypted = encrypted;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.newParser();
    this.listen(socket);
  }

  get encrypted(): boolean {
    return this._encrypted;
  }
  get confidential(): boolean {
    return this._encrypted;
  }
  get canStartTls(): boolean {
    return !this._encrypted && this.opts.secureContext !== null;
  }

  attach(receiver: StreamReceiver): void {
    this.receiver = receiver;
  }

  private newParser(): void {
    // A replaced parser may still be inside write() with the rest of a chunk (handlers run
    // synchronously): whatever it emits after the restart is dropped here.
    const parser: XmppParser = new XmppParser(
      { maxStanzaBytes: this.opts.maxStanzaBytes },
      {
        streamStart: (root) => this.current(parser)?.onStreamStart(root.attrs, root.getName(), root.getNS()),
        element: (el) => this.current(parser)?.onElement(el),
        streamEnd: () => this.current(parser)?.onStreamEnd(),
        error: (err) => this.current(parser)?.onStreamError(err),
      },
    );
    this.parser = parser;
  }

  private current(parser: XmppParser): StreamReceiver | null {
    return parser === this.parser && !this.upgrading ? this.receiver : null;
  }

  private listen(socket: ByteSocket): void {
    socket.on('data', (chunk: Buffer) => {
      if (this.ended || this.upgrading) return;
      this.parser.write(chunk);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.notifyClosed());
  }

  private notifyClosed(): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.ended = true;
    this.receiver?.onTransportClosed();
  }

  openStream(header: StreamHeader): void {
    this.writeRaw(streamHeader(header));
  }

  send(el: Element): number {
    return this.writeRaw(serialize(el));
  }

  private writeRaw(data: string): number {
    if (this.ended || this.socket.destroyed) return 0;
    this.socket.write(data);
    return this.socket.writableLength;
  }

  closeStream(err?: StreamError, header?: StreamHeader): void {
    if (this.ended) return;
    let out = header ? streamHeader(header) : '';
    if (err) out += serialize(err.toElement());
    out += '</stream:stream>';
    this.writeRaw(out);
    this.ended = true;
    this.socket.end();
    // A peer that never reads must not keep the socket forever.
    const s = this.socket;
    setTimeout(() => s.destroy(), 2000).unref();
  }

  restartStream(): void {
    this.newParser();
  }

  startTls(): Promise<void> {
    const ctx = this.opts.secureContext;
    if (!ctx || this._encrypted) return Promise.reject(new Error('STARTTLS is not available'));
    const raw = this.socket;
    this.upgrading = true;
    if (raw instanceof FrontSocket) return this.startFrontTls(raw);
    if (!(raw instanceof net.Socket)) return Promise.reject(new Error('STARTTLS needs a TCP socket'));
    raw.removeAllListeners('data');
    return new Promise<void>((resolve, reject) => {
      const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx, ALPNProtocols: ['xmpp-client'] });
      const fail = (err: Error) => {
        this.ended = true;
        secure.destroy();
        raw.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new Error('TLS handshake timed out'));
      }, this.opts.handshakeTimeoutMs ?? 30_000);
      timer.unref();
      secure.once('secure', () => {
        clearTimeout(timer);
        this.socket = secure;
        this._encrypted = true;
        this.upgrading = false;
        this.newParser();
        this.listen(secure);
        resolve();
      });
      secure.once('error', (err) => {
        clearTimeout(timer);
        fail(err);
      });
      secure.on('error', () => undefined);
      secure.once('close', () => this.notifyClosed());
    });
  }

  /** The front hand-shakes; what the client sent in clear meanwhile is dropped (upgrading). */
  private async startFrontTls(socket: FrontSocket): Promise<void> {
    try {
      await socket.startTls(() => {
        this._encrypted = true;
        this.upgrading = false;
        this.newParser();
      });
    } catch (err) {
      this.ended = true;
      socket.destroy();
      throw err;
    }
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.ended = true;
    this.socket.destroy();
  }
}

export interface TcpListenerOptions {
  /** direct TLS (XEP-0368) instead of STARTTLS */
  directTls: boolean;
  /** TLS material (a tls.Server takes cert and key, not a ready context); null: no STARTTLS */
  tls: { cert: string; key: string; secureContext: tls.SecureContext } | null;
  maxStanzaBytes: number;
  onConnection(transport: TcpTransport): void;
  /** kindred-tls-front terminates TLS (and does STARTTLS) instead of node:tls */
  front?: TlsFront | null;
}

/** One c2s listener: plain (STARTTLS) or direct TLS. */
export class XmppTcpListener {
  private readonly server: net.Server | null = null;
  private frontListener: { close: () => void } | null = null;
  private readonly sockets = new Set<ByteSocket>();

  constructor(private readonly opts: TcpListenerOptions) {
    const accept = (socket: ByteSocket) => {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 60_000);
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      const transport = new TcpTransport(socket, opts.directTls, { maxStanzaBytes: opts.maxStanzaBytes, secureContext: opts.tls?.secureContext ?? null });
      opts.onConnection(transport);
    };
    this.accept = accept;
    if (opts.front && opts.tls) return;
    if (opts.directTls) {
      if (!opts.tls) throw new Error('direct TLS needs a certificate');
      this.server = tls.createServer({ cert: opts.tls.cert, key: opts.tls.key, ALPNProtocols: ['xmpp-client'], handshakeTimeout: 30_000 }, accept);
      this.server.on('tlsClientError', () => undefined);
    } else {
      this.server = net.createServer(accept);
    }
    this.server.on('error', () => undefined);
  }

  private readonly accept: (socket: ByteSocket) => void;

  async listen(host: string, port: number): Promise<number> {
    if (this.server) return listenTcp(this.server, host, port);
    const { tls: material, front, directTls } = this.opts;
    const l = await front!.listen(
      {
        host,
        port,
        mode: directTls ? 'tls' : 'starttls',
        cert: material!.cert,
        key: material!.key,
        ...(directTls ? { alpn: ['xmpp-client'] } : {}),
        handshakeTimeoutMs: 30_000,
      },
      (socket) => this.accept(socket),
    );
    this.frontListener = l;
    return l.port;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting; sessions are closed by the server (with <system-shutdown/>) before this. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.server) this.server.close(() => resolve());
      else {
        this.frontListener?.close();
        const whenEmpty = () => (this.sockets.size === 0 ? resolve() : setTimeout(whenEmpty, 20));
        whenEmpty();
      }
      setTimeout(() => {
        for (const s of this.sockets) s.destroy();
      }, 1000).unref();
    });
  }
}
