/**
 * The XMPP client-to-server service: the one place where the XMPP side is wired. Loads the
 * feature modules (in order), and accepts streams on three transports:
 *   - TCP with STARTTLS (RFC 6120), `xmpp.port`
 *   - direct TLS (XEP-0368), `xmpp.tlsPort`
 *   - WebSocket (RFC 7395) at `/xmpp-websocket` on the HTTP app
 * One timer sweeps every session for auth deadlines and idle peers.
 */
import type uWS from 'uWebSockets.js';
import type { Logger } from 'pino';
import type { KindredConfig } from '../../config.js';
import type { CommandGateway } from '../../domain/gateway.js';
import { bindModule } from './bind.js';
import { carbonsModule } from './carbons.js';
import { chatStatesModule } from './chat-states.js';
import { blockingModule } from './blocking.js';
import { capsModule } from './caps.js';
import { loadTlsMaterial } from './cert.js';
import { csiModule } from './csi.js';
import { discoModule } from './disco.js';
import { UserDirectory } from './directory.js';
import { lastModule } from './last.js';
import { mamModule } from './mam.js';
import { messageModule } from './message.js';
import { ModuleHost, type XmppImages, type XmppModule } from './module.js';
import { pingModule } from './ping.js';
import { presenceModule } from './presence.js';
import { receiptsModule } from './receipts.js';
import { registerModule } from './register.js';
import { rosterModule } from './roster.js';
import { saslModule } from './sasl.js';
import { XmppSession, type SessionDeps } from './session.js';
import { SessionRegistry } from './sessions.js';
import { StreamError } from './stanza-errors.js';
import { starttlsModule } from './starttls.js';
import { streamManagementModule } from './stream-management.js';
import { XmppTcpListener } from './transport-tcp.js';
import { attachXmppWebSocket } from './transport-ws.js';
import type { XmppTransport } from './transport.js';
import type { TlsFront } from '../tls-front/supervisor.js';
import { vcardModule } from './vcard.js';

/** The core modules, in load order (order decides stream feature order). */
export const coreModules: readonly XmppModule[] = [
  starttlsModule,
  saslModule,
  registerModule,
  bindModule,
  pingModule,
  discoModule,
  rosterModule,
  messageModule,
  chatStatesModule,
  receiptsModule,
  carbonsModule,
  mamModule,
  presenceModule,
  lastModule,
  vcardModule,
  blockingModule,
  streamManagementModule,
  csiModule,
  capsModule,
];

export interface XmppDeps {
  gateway: CommandGateway;
  config: KindredConfig;
  log: Logger;
  images: XmppImages;
  /** the HTTP app, for the WebSocket route; without it there is no XMPP over WebSocket */
  app?: uWS.TemplatedApp;
  /** feature modules loaded after the core ones */
  modules?: readonly XmppModule[];
  onConnectionCount?: (delta: number) => void;
  /** kindred-tls-front terminates TLS on the two TCP listeners (else node:tls) */
  tlsFront?: TlsFront | null;
}

export interface XmppServer {
  ports: { port: number; tlsPort: number };
  host: ModuleHost;
  sessions: SessionRegistry;
  /** streams open right now (any state) */
  readonly streams: number;
  /** Tells every client <system-shutdown/>, stops listening, unloads the modules. */
  close(): Promise<void>;
}

export async function startXmpp(deps: XmppDeps): Promise<XmppServer> {
  const { gateway, config, log } = deps;
  const xlog = log.child({ transport: 'xmpp' });
  const registry = new SessionRegistry();
  const directory = new UserDirectory(gateway);
  const host = new ModuleHost({ config, gateway, log: xlog, directory, sessions: registry, images: deps.images });
  for (const m of [...coreModules, ...(deps.modules ?? [])]) host.load(m);

  const live = new Set<XmppSession>();
  // One deps object for every session (not a copy per connection).
  const sessionDeps: SessionDeps = {
    host,
    gateway,
    config,
    log: xlog,
    registry,
    onEnded: (s) => {
      if (live.delete(s)) deps.onConnectionCount?.(-1);
    },
  };
  const accept = (transport: XmppTransport) => {
    deps.onConnectionCount?.(1);
    const session = new XmppSession(transport, sessionDeps);
    if (!session.isClosed) live.add(session);
  };

  // The WebSocket route goes on the app before anything awaits (uWS routes are set up front).
  const ws = deps.app
    ? attachXmppWebSocket(deps.app, {
        maxStanzaBytes: config.xmpp.maxStanzaBytes,
        maxSendBufferBytes: config.limits.maxSendBufferBytes,
        tlsApp: config.tls !== null,
        onConnection: accept,
      })
    : undefined;

  const tls = await loadTlsMaterial(config);
  const front = deps.tlsFront;
  const plain = new XmppTcpListener({ directTls: false, tls, maxStanzaBytes: config.xmpp.maxStanzaBytes, onConnection: accept, front });
  const direct = new XmppTcpListener({ directTls: true, tls, maxStanzaBytes: config.xmpp.maxStanzaBytes, onConnection: accept, front });
  let port: number;
  let tlsPort: number;
  try {
    port = await plain.listen(config.host, config.xmpp.port);
    tlsPort = await direct.listen(config.host, config.xmpp.tlsPort);
  } catch (err) {
    await Promise.all([plain.close(), direct.close()]);
    ws?.close();
    throw err;
  }

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of live) s.tick(now);
  }, Math.max(1000, (config.limits.heartbeatSeconds * 1000) / 2));
  sweep.unref();

  let closing: Promise<void> | undefined;
  return {
    ports: { port, tlsPort },
    host,
    sessions: registry,
    get streams() {
      return live.size;
    },
    close() {
      closing ??= (async () => {
        clearInterval(sweep);
        for (const s of [...live]) s.close(new StreamError('system-shutdown', 'the server is stopping'));
        ws?.close();
        await Promise.all([plain.close(), direct.close()]);
        host.unloadAll();
      })();
      return closing;
    },
  };
}
