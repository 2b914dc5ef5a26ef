/**
 * The seam between an XMPP session and the bytes: TCP (with STARTTLS or direct TLS) and
 * WebSocket (RFC 7395) implement it, and a test can implement it in memory. A transport owns
 * its parser and framing; the session owns the protocol.
 */
import type { Element } from '@xmpp/xml';
import type { StreamError } from './stanza-errors.js';

/** What a transport feeds: the session that currently owns it (it changes on XEP-0198 resumption). */
export interface StreamReceiver {
  /** a stream header: `<stream:stream>` (TCP) or `<open/>` (WebSocket) */
  onStreamStart(attrs: Record<string, string>, name: string, ns: string | undefined): void;
  /** one complete top-level element */
  onElement(el: Element): void;
  /** `</stream:stream>` or `<close/>` */
  onStreamEnd(): void;
  /** bad input: the session answers with this stream error and closes */
  onStreamError(err: StreamError): void;
  /** the connection is gone (either side) */
  onTransportClosed(): void;
}

export interface StreamHeader {
  id: string;
  from: string;
  to?: string;
}

export interface XmppTransport {
  readonly kind: 'tcp' | 'ws';
  /** TLS is active on this connection */
  readonly encrypted: boolean;
  /** good enough for SASL when TLS is required: TLS, or a WebSocket from loopback (a local TLS proxy) */
  readonly confidential: boolean;
  /** STARTTLS can still be negotiated (plain TCP with a certificate) */
  readonly canStartTls: boolean;
  readonly remoteAddress: string;
  /** who receives this transport's input from now on */
  attach(receiver: StreamReceiver): void;
  /** writes our stream header (TCP: `<stream:stream …>`, WebSocket: `<open/>`) */
  openStream(header: StreamHeader): void;
  /** writes one element; returns the bytes now waiting to be sent on this connection */
  send(el: Element): number;
  /** writes the stream error if any (after a header if none was sent yet), closes the stream and the connection */
  closeStream(err?: StreamError, header?: StreamHeader): void;
  /** a stream restart (RFC 6120 §4.3.3): a new parser; input already parsed is dropped */
  restartStream(): void;
  /** TCP only: `<proceed/>` was written; upgrades the connection and resolves once TLS is up */
  startTls(): Promise<void>;
  /** inbound backpressure: stop / restart reading (no-ops where the transport cannot) */
  pause(): void;
  resume(): void;
  /** closes without a word (stalled writer) */
  destroy(): void;
}

/** Characters XML 1.0 cannot carry (controls, lone surrogates, U+FFFE/U+FFFF) become U+FFFD on the way out. */
const NOT_XML_CHAR = /[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu;

export function serialize(el: Element): string {
  return el.toString().replace(NOT_XML_CHAR, '\ufffd');
}
