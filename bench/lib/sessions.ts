/**
 * One chat session per user, whatever the protocol: native msgpack over WebSocket or
 * TCP (token auth, `message.send` to a user id), or XMPP over TCP (STARTTLS + PLAIN)
 * or WebSocket (RFC 7395), sending `<message type='chat'>` to a bare JID. Used by
 * the load-generator workers.
 */
import { BenchConn } from './conn.js';
import type { Account, NativeEndpoint } from './targets/types.js';
import { XmppSession, type XmppEndpoint } from './xmpp-client.js';

export type Protocol = 'native-ws' | 'native-tcp' | 'xmpp-tcp' | 'xmpp-ws';
export const PROTOCOLS: readonly Protocol[] = ['native-ws', 'native-tcp', 'xmpp-tcp', 'xmpp-ws'];

/** `ws` and `tcp` (the old names) mean the native protocol. */
export function parseProtocol(raw: string): Protocol {
  const p = raw === 'ws' ? 'native-ws' : raw === 'tcp' ? 'native-tcp' : raw;
  if (!PROTOCOLS.includes(p as Protocol)) throw new Error(`--protocol must be one of ${PROTOCOLS.join(', ')} (or ws, tcp)`);
  return p as Protocol;
}

export interface Endpoints {
  xmppTcp: XmppEndpoint;
  xmppWs: XmppEndpoint;
  native?: NativeEndpoint;
}

export interface ChatSession {
  /** sends `body` (XML-safe characters only) to `to` */
  send(to: Account, body: string, id: string): void;
  onBody: (body: string) => void;
  onClose: (reason: string) => void;
  /** send failures reported by the server, by code */
  readonly errors: Record<string, number>;
  readonly closed: boolean;
  close(): void;
}

class NativeChat implements ChatSession {
  onBody: (body: string) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;
  readonly errors: Record<string, number> = {};
  constructor(private readonly conn: BenchConn) {
    conn.onEvent = (e) => {
      if (e.type === 'message') this.onBody(e.message.body as string);
    };
    conn.onClose = (r) => this.onClose(r);
  }
  get closed(): boolean {
    return this.conn.closed;
  }
  send(to: Account, body: string): void {
    this.conn.call('message.send', { to: to.userId, body }, (err) => {
      if (err) this.errors[err.code] = (this.errors[err.code] ?? 0) + 1;
    });
  }
  close(): void {
    this.conn.close();
  }
}

class XmppChat implements ChatSession {
  onBody: (body: string) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;
  constructor(private readonly s: XmppSession) {
    s.onBody = (b) => this.onBody(b);
    s.onClose = (r) => this.onClose(r);
  }
  get errors(): Record<string, number> {
    return this.s.stanzaErrors;
  }
  get closed(): boolean {
    return this.s.closed;
  }
  send(to: Account, body: string, id: string): void {
    this.s.sendChat(to.jid, body, id);
  }
  close(): void {
    this.s.close();
  }
}

/** Connects and logs in one user. */
export async function openSession(protocol: Protocol, ep: Endpoints, account: Account, localAddress: string): Promise<ChatSession> {
  if (protocol === 'xmpp-tcp' || protocol === 'xmpp-ws') {
    // 60 s: on a saturated shared box a peer's password check alone took over 30 s
    const s = await XmppSession.open(protocol === 'xmpp-tcp' ? ep.xmppTcp : ep.xmppWs, account, { localAddress, timeoutMs: 60_000 });
    return new XmppChat(s);
  }
  if (!ep.native) throw new Error(`the native protocol is Kindred's: this target speaks only XMPP`);
  if (!account.token) throw new Error(`account ${account.username} has no token for the native protocol`);
  const conn = await BenchConn.connect({ protocol: protocol === 'native-tcp' ? 'tcp' : 'ws', wsUrl: ep.native.wsUrl, host: ep.native.host, tcpPort: ep.native.tcpPort }, localAddress);
  await conn.request('auth', { token: account.token });
  return new NativeChat(conn);
}
