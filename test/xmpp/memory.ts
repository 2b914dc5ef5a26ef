/**
 * An in-memory XMPP transport and a scripted gateway, for fast tests of the session and of
 * feature modules without sockets or a node. Input is XML text (parsed like a WebSocket
 * message: whole elements); output is collected as elements.
 */
import { pino } from 'pino';
import type { Element } from '@xmpp/xml';
import { makeConfig, type KindredConfig } from '../../src/config.js';
import type { CommandResults, KindredEvent, PublicCommand, UserCommand } from '../../src/domain/commands.js';
import type { CommandGateway, EventSink, Principal, SessionInfo } from '../../src/domain/gateway.js';
import { KindredError } from '../../src/errors.js';
import { UserDirectory } from '../../src/protocol/xmpp/directory.js';
import { ModuleHost, type XmppModule } from '../../src/protocol/xmpp/module.js';
import { NS } from '../../src/protocol/xmpp/ns.js';
import { XmppParser } from '../../src/protocol/xmpp/parser.js';
import { XmppSession } from '../../src/protocol/xmpp/session.js';
import { SessionRegistry } from '../../src/protocol/xmpp/sessions.js';
import type { StreamError } from '../../src/protocol/xmpp/stanza-errors.js';
import type { StreamHeader, StreamReceiver, XmppTransport } from '../../src/protocol/xmpp/transport.js';

export class MemoryTransport implements XmppTransport {
  readonly kind = 'tcp' as const;
  readonly encrypted = true;
  readonly confidential = true;
  readonly canStartTls = false;
  readonly remoteAddress = 'memory';
  receiver: StreamReceiver | null = null;
  readonly out: Element[] = [];
  closed = false;
  streamError: StreamError | undefined;
  /** what send() reports as still unsent (to play a stalled reader) */
  buffered = 0;

  attach(receiver: StreamReceiver): void {
    this.receiver = receiver;
  }
  openStream(_h: StreamHeader): void {}
  send(el: Element): number {
    if (!this.closed) this.out.push(el);
    return this.buffered;
  }
  closeStream(err?: StreamError): void {
    this.streamError = err;
    this.closed = true;
  }
  restartStream(): void {}
  startTls(): Promise<void> {
    return Promise.reject(new Error('no TLS in memory'));
  }
  pause(): void {}
  resume(): void {}
  destroy(): void {
    this.closed = true;
  }

  /** the client opens (or restarts) its stream */
  header(domain: string): void {
    this.receiver?.onStreamStart({ xmlns: NS.client, 'xmlns:stream': NS.streams, to: domain, version: '1.0' }, 'stream', NS.streams);
  }

  /** the client sends whole elements */
  input(text: string): void {
    const p = new XmppParser({ maxStanzaBytes: 1 << 20, framed: true }, {
      streamStart() {},
      element: (el) => this.receiver?.onElement(el),
      streamEnd() {},
      error: (err) => this.receiver?.onStreamError(err),
    });
    p.write(Buffer.from(text));
    p.end();
  }

  /** the connection drops */
  drop(): void {
    this.closed = true;
    this.receiver?.onTransportClosed();
  }
}

/** A gateway that knows a few users and records what it is asked. */
export class ScriptedGateway implements CommandGateway {
  readonly users = new Map<string, string>(); // userId → username
  readonly executed: UserCommand[] = [];
  readonly sinks = new Map<string, EventSink>();
  readonly closed: string[] = [];
  private seq = 0;
  /** set to answer a command op with something else or throw */
  answer: Partial<Record<UserCommand['op'], (cmd: UserCommand) => unknown>> = {};

  async authenticate<C extends PublicCommand>(_cmd: C): Promise<{ principal: Principal; result: CommandResults[C['op']] }> {
    throw new KindredError('BAD_CREDENTIALS');
  }
  async startScram(): Promise<never> {
    throw new KindredError('BAD_CREDENTIALS');
  }
  verifyToken(): Principal {
    throw new KindredError('TOKEN_INVALID');
  }
  async execute<C extends UserCommand>(_p: Principal, cmd: C): Promise<CommandResults[C['op']]> {
    this.executed.push(cmd);
    const custom = this.answer[cmd.op];
    if (custom) return custom(cmd) as CommandResults[C['op']];
    if (cmd.op === 'users.resolve') {
      const c = cmd as Extract<UserCommand, { op: 'users.resolve' }>;
      const users = [...this.users].filter(([id, name]) => c.userIds?.includes(id) || c.usernames?.includes(name)).map(([userId, username]) => ({ userId, username }));
      return { users } as CommandResults[C['op']];
    }
    return { ok: true } as CommandResults[C['op']];
  }
  async openSession(_p: Principal, session: SessionInfo, sink: EventSink): Promise<void> {
    this.sinks.set(session.connId, sink);
  }
  closeSession(_p: Principal, connId: string): void {
    this.closed.push(connId);
    this.sinks.delete(connId);
  }
  newConnId(): string {
    return `conn-${++this.seq}`;
  }
  /** pushes an event to every open session */
  emit(event: KindredEvent): void {
    for (const sink of this.sinks.values()) sink(event);
  }
}

export interface MemoryServer {
  config: KindredConfig;
  gateway: ScriptedGateway;
  host: ModuleHost;
  registry: SessionRegistry;
  /** a session on a new in-memory transport, authenticated as `username` and bound to `resource` */
  boundSession(username: string, resource?: string): Promise<{ session: XmppSession; transport: MemoryTransport }>;
  /** a session on a new transport, stream open, not authenticated */
  newSession(): { session: XmppSession; transport: MemoryTransport };
}

export function memoryServer(modules: XmppModule[], overrides: Record<string, unknown> = {}, now: () => number = Date.now): MemoryServer {
  const config = makeConfig({ domain: 'example.org', ...overrides });
  const gateway = new ScriptedGateway();
  const registry = new SessionRegistry();
  const log = pino({ level: 'silent' });
  const host = new ModuleHost({ config, gateway, log, directory: new UserDirectory(gateway), sessions: registry, images: { read: async () => undefined } });
  for (const m of modules) host.load(m);
  const newSession = () => {
    const transport = new MemoryTransport();
    const session = new XmppSession(transport, { host, gateway, config, log, registry, now });
    transport.header(config.domain);
    return { session, transport };
  };
  return {
    config,
    gateway,
    host,
    registry,
    newSession,
    async boundSession(username, resource = 'res') {
      const userId = `id-${username}`;
      gateway.users.set(userId, username);
      const { session, transport } = newSession();
      session.authenticated({ userId, tokenId: 't', expiresAt: now() + 3_600_000 }, username);
      transport.header(config.domain);
      transport.input(`<iq type='set' id='bind'><bind xmlns='${NS.bind}'><resource>${resource}</resource></bind></iq>`);
      await waitUntil(() => session.isBound);
      transport.out.length = 0;
      return { session, transport };
    },
  };
}

export async function waitUntil(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}
