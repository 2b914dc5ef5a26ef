/**
 * XMPP over WebSocket, RFC 7395 (https://www.rfc-editor.org/rfc/rfc7395), on the uWebSockets.js
 * app at `/xmpp-websocket`, subprotocol `xmpp`. Each message holds whole elements; the stream
 * header is `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`, the end `<close/>`; stanzas
 * carry `xmlns='jabber:client'` themselves (§3.3.3). No STARTTLS: the connection is TLS (wss://
 * when `config.tls` is set) or, from loopback, trusted as a local TLS-terminating proxy.
 */
import type uWS from 'uWebSockets.js';
import type { Element } from '@xmpp/xml';
import { xml } from '@xmpp/xml';
import { XmppParser } from './parser.js';
import { NS } from './ns.js';
import { StreamError } from './stanza-errors.js';
import { serialize, type StreamHeader, type StreamReceiver, type XmppTransport } from './transport.js';

export const XMPP_WS_PATH = '/xmpp-websocket';
const STANZAS = new Set(['message', 'presence', 'iq']);

interface WsData {
  remote: string;
  transport?: WsTransport;
}

export function isLoopback(address: string): boolean {
  const a = address.toLowerCase();
  return (
    a === '::1' ||
    a.startsWith('127.') ||
    a.startsWith('::ffff:127.') ||
    a === '0000:0000:0000:0000:0000:0000:0000:0001' ||
    a.startsWith('0000:0000:0000:0000:0000:ffff:7f')
  );
}

export class WsTransport implements XmppTransport {
  readonly encrypted: boolean;
  readonly confidential: boolean;
  private receiver: StreamReceiver | null = null;
  private closed = false;

  constructor(
    private readonly ws: uWS.WebSocket<WsData>,
    readonly remoteAddress: string,
    tlsApp: boolean,
    private readonly maxStanzaBytes: number,
  ) {
    this.encrypted = tlsApp;
    this.confidential = tlsApp || isLoopback(remoteAddress);
  }

  // constants on the prototype, not fields on every connection
  get kind(): 'ws' {
    return 'ws';
  }
  get canStartTls(): boolean {
    return false;
  }

  attach(receiver: StreamReceiver): void {
    this.receiver = receiver;
  }

  /** One WebSocket message: whole elements (RFC 7395 §3.3.3), parsed with a fresh framed parser. */
  onMessage(data: Uint8Array): void {
    if (this.closed) return;
    if (data.byteLength > this.maxStanzaBytes) {
      this.receiver?.onStreamError(new StreamError('policy-violation', `an element may be at most ${this.maxStanzaBytes} bytes`));
      return;
    }
    const parser = new XmppParser(
      { maxStanzaBytes: this.maxStanzaBytes, framed: true },
      {
        streamStart: () => undefined,
        element: (el) => {
          const ns = el.getNS();
          if (ns === NS.framing && el.getName() === 'open') this.receiver?.onStreamStart(el.attrs, 'open', ns);
          else if (ns === NS.framing && el.getName() === 'close') this.receiver?.onStreamEnd();
          else this.receiver?.onElement(el);
        },
        streamEnd: () => undefined,
        error: (err) => this.receiver?.onStreamError(err),
      },
    );
    parser.write(data);
    parser.end();
  }

  /** uWS saw the connection end. */
  onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.receiver?.onTransportClosed();
  }

  openStream(h: StreamHeader): void {
    this.send(xml('open', { xmlns: NS.framing, id: h.id, from: h.from, to: h.to, version: '1.0', 'xml:lang': 'en' }));
  }

  send(el: Element): number {
    if (this.closed) return 0;
    if (STANZAS.has(el.name) && !el.attrs.xmlns) el.attrs.xmlns = NS.client;
    else if (el.name.startsWith('stream:') && !el.attrs['xmlns:stream']) el.attrs['xmlns:stream'] = NS.streams;
    this.ws.send(serialize(el), false);
    return this.ws.getBufferedAmount();
  }

  closeStream(err?: StreamError, header?: StreamHeader): void {
    if (this.closed) return;
    if (header) this.openStream(header);
    if (err) this.send(err.toElement());
    this.send(xml('close', { xmlns: NS.framing }));
    this.closed = true;
    this.ws.end(1000);
  }

  restartStream(): void {
    // Nothing to reset: every message is parsed on its own. The client sends a new <open/>.
  }

  startTls(): Promise<void> {
    return Promise.reject(new Error('no STARTTLS over WebSocket'));
  }

  pause(): void {}
  resume(): void {}

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close();
  }
}

export interface XmppWsOptions {
  maxStanzaBytes: number;
  maxSendBufferBytes: number;
  /** the app is a uWS SSLApp (wss://) */
  tlsApp: boolean;
  onConnection(transport: WsTransport): void;
}

/** Adds the RFC 7395 route to the uWS app. */
export function attachXmppWebSocket(app: uWS.TemplatedApp, opts: XmppWsOptions): { close(): void; readonly connections: number } {
  const open = new Set<uWS.WebSocket<WsData>>();
  app.ws<WsData>(XMPP_WS_PATH, {
    compression: 0,
    // Messages a little over the limit reach us so the client gets a <policy-violation/>.
    maxPayloadLength: opts.maxStanzaBytes * 2,
    maxBackpressure: opts.maxSendBufferBytes * 2,
    closeOnBackpressureLimit: false,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const protocols = req.getHeader('sec-websocket-protocol').split(',').map((p) => p.trim());
      if (!protocols.includes('xmpp')) {
        res.writeStatus('400 Bad Request').end('RFC 7395: request the "xmpp" WebSocket subprotocol');
        return;
      }
      const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
      res.upgrade<WsData>({ remote }, req.getHeader('sec-websocket-key'), 'xmpp', req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      open.add(ws);
      const data = ws.getUserData();
      const transport = new WsTransport(ws, data.remote, opts.tlsApp, opts.maxStanzaBytes);
      data.transport = transport;
      opts.onConnection(transport);
    },
    message: (ws, message) => {
      // uWS reuses `message` after this callback returns: copy it.
      ws.getUserData().transport?.onMessage(Buffer.from(new Uint8Array(message)));
    },
    close: (ws) => {
      open.delete(ws);
      ws.getUserData().transport?.onClosed();
    },
  });
  return {
    close() {
      for (const ws of [...open]) {
        try {
          ws.close();
        } catch {
          /* already gone */
        }
      }
    },
    get connections() {
      return open.size;
    },
  };
}
