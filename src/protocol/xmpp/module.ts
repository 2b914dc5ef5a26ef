/**
 * The feature-module API of the XMPP server: what a feature (a XEP, an RFC section) sees.
 * Shaped after Prosody's module API (module:hook, module:add_feature, https://prosody.im/doc/developers/moduleapi)
 * and xmpp.js's IQ callee (handlers return the reply; no handler → <service-unavailable/>).
 *
 * A module is `{ name, setup(ctx) }`. Everything it registers through `ctx` is tagged with its
 * name and removed by `ModuleHost.unload(name)`. Modules never reach into each other or into the
 * transport: they answer IQs, react to messages, presence, nonzas and domain events, add stream
 * features and disco features, keep per-session state through typed keys, and send through
 * `session.send()` (which outbound middleware such as stream management or CSI can wrap).
 */
import type { Element } from '@xmpp/xml';
import type { Logger } from 'pino';
import type { KindredConfig } from '../../config.js';
import type { CommandGateway } from '../../domain/gateway.js';
import type { EventType, KindredEvent } from '../../domain/commands.js';
import type { Jid } from './jid.js';
import type { XmppSession } from './session.js';
import type { UserDirectory } from './directory.js';
import type { SessionRegistry } from './sessions.js';

export type IqType = 'get' | 'set';

/**
 * When an IQ handler or nonza handler may run: 'preauth' only before SASL succeeded
 * (STARTTLS, SASL, in-band registration), 'postauth' once authenticated (bound or not: bind,
 * SM resume), 'bound' once a resource is bound (the default), 'any' always.
 */
export type Phase = 'preauth' | 'postauth' | 'bound' | 'any';

export interface StanzaContext {
  session: XmppSession;
  stanza: Element;
  /**
   * The sender. Once bound: the session's full JID (a client's `from` is checked and
   * normalised first). Before bind: the account's bare JID, or the bare domain before auth.
   */
  from: Jid;
  /** the parsed `to`; undefined when absent (addressed to the user's own account / the server) */
  to: Jid | undefined;
}

export interface IqContext extends StanzaContext {
  type: IqType;
  /** the IQ's single child element */
  payload: Element;
  /** runs right after the reply is written (bind uses it to start event delivery after the result) */
  afterReply(fn: () => void): void;
}

/** Returns the result payload (or nothing for an empty result); throws StanzaError (or KindredError) to refuse. */
export type IqHandler = (iq: IqContext) => Promise<Element | void> | Element | void;
/** Returns true when the stanza was fully handled: later handlers do not see it. Throwing answers with an error. */
export type StanzaHandler = (ctx: StanzaContext) => Promise<boolean | void> | boolean | void;
export type NonzaHandler = (session: XmppSession, el: Element) => Promise<void> | void;
export type EventHandler<T extends EventType> = (session: XmppSession, event: Extract<KindredEvent, { type: T }>) => Promise<void> | void;
export type SessionHook = (session: XmppSession) => Promise<void> | void;
/** A stream feature element for this session, or nothing when it does not apply. */
export type FeatureFn = (session: XmppSession) => Element | undefined | null;

/** One outbound stanza. `onAcked` runs once the client has it (on write, or on a stream-management ack). */
export interface Outbound {
  stanza: Element;
  onAcked?: () => void;
}
/**
 * Outbound middleware: call `next(out)` to pass the stanza on (possibly later, possibly changed),
 * or do not call it to hold or drop it. The innermost `next` writes to the transport.
 */
export type SendMiddleware = (session: XmppSession, out: Outbound, next: (out: Outbound) => void) => void;

/** Per-session typed state owned by one module. */
export interface SessionKey<T> {
  /** the state, created with the module's initialiser on first use */
  get(session: XmppSession): T;
  /** the state if it was created */
  peek(session: XmppSession): T | undefined;
  set(session: XmppSession, value: T): void;
  delete(session: XmppSession): void;
}

export interface Disco {
  /** a feature of the server entity (disco#info to the domain) */
  addFeature(ns: string): void;
  /** a feature of every account (disco#info to a bare JID), e.g. XEP-0313 MAM on the account archive */
  addAccountFeature(ns: string): void;
  /** an extra identity of the server entity besides server/im */
  addIdentity(category: string, type: string, name?: string): void;
  /** what every module announced (read by the disco module) */
  serverFeatures(): string[];
  accountFeatures(): string[];
  identities(): Array<{ category: string; type: string; name?: string }>;
}

export interface ModuleContext {
  readonly name: string;
  readonly config: KindredConfig;
  readonly gateway: CommandGateway;
  readonly log: Logger;
  readonly domain: string;
  /** JID localpart (username) ⇄ userId, cached */
  readonly directory: UserDirectory;
  /** bound sessions on this node */
  readonly sessions: SessionRegistry;
  readonly images: XmppImages;

  iq(type: IqType, xmlns: string, localName: string, handler: IqHandler, opts?: { phase?: Phase }): void;
  onMessage(handler: StanzaHandler, priority?: number): void;
  onPresence(handler: StanzaHandler, priority?: number): void;
  /** A top-level element that is not a stanza (SM's <r/>, <a/>, <enable/>, CSI's <active/>, SASL). */
  onNonza(xmlns: string, localName: string, handler: NonzaHandler, opts?: { phase?: Phase }): void;
  /** A domain event for this session's user (each bound session receives its user's events). */
  onEvent<T extends EventType>(type: T, handler: EventHandler<T>): void;
  /** a stream was accepted (before any negotiation) */
  onSessionStart(hook: SessionHook): void;
  /** a resource was bound and its result sent; events flow after all onBound hooks ran */
  onBound(hook: SessionHook): void;
  /** the session is over (closed, replaced, or its hibernation expired) */
  onSessionEnd(hook: SessionHook): void;
  /** after each inbound stanza (iq, message, presence) was handled: XEP-0198 counts them */
  onStanzaHandled(hook: (session: XmppSession, stanza: Element) => void): void;
  /**
   * The transport of a bound session went away without a clean close. Return true to keep the
   * session alive (XEP-0198 resumption): events keep flowing through `send()` middleware, and the
   * module later calls `session.resumeWith(newSession)` or `session.end()`.
   */
  onTransportLost(hook: (session: XmppSession) => boolean): void;
  /** Wrap outbound stanzas; higher priority runs first (further from the wire). */
  outbound(middleware: SendMiddleware, priority?: number): void;
  /** a stream feature offered after authentication (next to <bind/>) */
  streamFeature(fn: FeatureFn): void;
  /** a stream feature offered before authentication (next to <mechanisms/>) */
  preAuthFeature(fn: FeatureFn): void;
  readonly disco: Disco;
  sessionState<T>(init: (session: XmppSession) => T): SessionKey<T>;
}

/** Image reads for avatar modules (XEP-0084 / vcard-temp). */
export interface XmppImages {
  read(imageId: string): Promise<{ data: Buffer | Uint8Array; contentType: string } | undefined>;
}

export interface XmppModule {
  name: string;
  setup(ctx: ModuleContext): void | (() => void);
}

// ---- the host: registrations, looked up by the session --------------------------------

interface Tagged {
  module: string;
}
interface IqEntry extends Tagged {
  handler: IqHandler;
  phase: Phase;
}
interface NonzaEntry extends Tagged {
  handler: NonzaHandler;
  phase: Phase;
}
interface Prioritised<T> extends Tagged {
  fn: T;
  priority: number;
  seq: number;
}

export interface HostDeps {
  config: KindredConfig;
  gateway: CommandGateway;
  log: Logger;
  directory: UserDirectory;
  sessions: SessionRegistry;
  images: XmppImages;
}

let seq = 0;

export class ModuleHost {
  readonly domain: string;
  private readonly iqs = new Map<string, IqEntry>();
  private readonly nonzas = new Map<string, NonzaEntry>();
  private messages: Array<Prioritised<StanzaHandler>> = [];
  private presences: Array<Prioritised<StanzaHandler>> = [];
  private events = new Map<EventType, Array<Tagged & { fn: EventHandler<EventType> }>>();
  private sessionStart: Array<Tagged & { fn: SessionHook }> = [];
  private bound: Array<Tagged & { fn: SessionHook }> = [];
  private sessionEnd: Array<Tagged & { fn: SessionHook }> = [];
  private handled: Array<Tagged & { fn: (s: XmppSession, el: Element) => void }> = [];
  private transportLost: Array<Tagged & { fn: (s: XmppSession) => boolean }> = [];
  private middleware: Array<Prioritised<SendMiddleware>> = [];
  private features: Array<Tagged & { fn: FeatureFn }> = [];
  private preAuthFeatures: Array<Tagged & { fn: FeatureFn }> = [];
  private discoFeatures: Array<Tagged & { ns: string }> = [];
  private accountFeatures: Array<Tagged & { ns: string }> = [];
  private identities: Array<Tagged & { category: string; type: string; name?: string }> = [];
  private readonly cleanups = new Map<string, () => void>();
  private readonly loaded = new Set<string>();

  constructor(private readonly deps: HostDeps) {
    this.domain = deps.config.domain;
  }

  get log(): Logger {
    return this.deps.log;
  }

  load(module: XmppModule): void {
    if (this.loaded.has(module.name)) throw new Error(`XMPP module "${module.name}" is already loaded`);
    this.loaded.add(module.name);
    const cleanup = module.setup(this.contextFor(module.name));
    if (cleanup) this.cleanups.set(module.name, cleanup);
  }

  /** Removes everything the module registered, then runs its cleanup. */
  unload(name: string): void {
    if (!this.loaded.delete(name)) return;
    const keep = <T extends Tagged>(list: T[]) => list.filter((e) => e.module !== name);
    for (const [k, e] of this.iqs) if (e.module === name) this.iqs.delete(k);
    for (const [k, e] of this.nonzas) if (e.module === name) this.nonzas.delete(k);
    this.messages = keep(this.messages);
    this.presences = keep(this.presences);
    for (const [k, list] of this.events) this.events.set(k, keep(list));
    this.sessionStart = keep(this.sessionStart);
    this.bound = keep(this.bound);
    this.sessionEnd = keep(this.sessionEnd);
    this.handled = keep(this.handled);
    this.transportLost = keep(this.transportLost);
    this.middleware = keep(this.middleware);
    this.features = keep(this.features);
    this.preAuthFeatures = keep(this.preAuthFeatures);
    this.discoFeatures = keep(this.discoFeatures);
    this.accountFeatures = keep(this.accountFeatures);
    this.identities = keep(this.identities);
    const cleanup = this.cleanups.get(name);
    this.cleanups.delete(name);
    cleanup?.();
  }

  /** Unloads every module (server shutdown). */
  unloadAll(): void {
    for (const name of [...this.loaded].reverse()) this.unload(name);
  }

  private contextFor(module: string): ModuleContext {
    const host = this;
    const { config, gateway, log, directory, sessions, images } = this.deps;
    const byPriority = <T>(list: Array<Prioritised<T>>, fn: T, priority: number) => {
      list.push({ module, fn, priority, seq: seq++ });
      list.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
    };
    return {
      name: module,
      config,
      gateway,
      log: log.child({ xmppModule: module }),
      domain: this.domain,
      directory,
      sessions,
      images,
      iq(type, xmlns, localName, handler, opts) {
        const key = `${type} ${xmlns} ${localName}`;
        if (host.iqs.has(key)) throw new Error(`IQ ${key} already has a handler (module ${host.iqs.get(key)!.module})`);
        host.iqs.set(key, { module, handler, phase: opts?.phase ?? 'bound' });
      },
      onMessage(handler, priority = 0) {
        byPriority(host.messages, handler, priority);
      },
      onPresence(handler, priority = 0) {
        byPriority(host.presences, handler, priority);
      },
      onNonza(xmlns, localName, handler, opts) {
        const key = `${xmlns} ${localName}`;
        if (host.nonzas.has(key)) throw new Error(`<${localName} xmlns='${xmlns}'/> already has a handler`);
        host.nonzas.set(key, { module, handler, phase: opts?.phase ?? 'bound' });
      },
      onEvent(type, handler) {
        const list = host.events.get(type) ?? [];
        list.push({ module, fn: handler as unknown as EventHandler<EventType> });
        host.events.set(type, list);
      },
      onSessionStart: (fn) => void host.sessionStart.push({ module, fn }),
      onBound: (fn) => void host.bound.push({ module, fn }),
      onSessionEnd: (fn) => void host.sessionEnd.push({ module, fn }),
      onStanzaHandled: (fn) => void host.handled.push({ module, fn }),
      onTransportLost: (fn) => void host.transportLost.push({ module, fn }),
      outbound(mw, priority = 0) {
        byPriority(host.middleware, mw, priority);
      },
      streamFeature: (fn) => void host.features.push({ module, fn }),
      preAuthFeature: (fn) => void host.preAuthFeatures.push({ module, fn }),
      disco: {
        addFeature: (ns) => void host.discoFeatures.push({ module, ns }),
        addAccountFeature: (ns) => void host.accountFeatures.push({ module, ns }),
        addIdentity: (category, type, name) => void host.identities.push({ module, category, type, name }),
        serverFeatures: () => host.serverFeatures(),
        accountFeatures: () => host.accountFeaturesList(),
        identities: () => host.serverIdentities(),
      },
      sessionState<T>(init: (session: XmppSession) => T): SessionKey<T> {
        const map = new WeakMap<XmppSession, T>();
        return {
          get(session) {
            let v = map.get(session);
            if (v === undefined && !map.has(session)) {
              v = init(session);
              map.set(session, v);
            }
            return v as T;
          },
          peek: (session) => map.get(session),
          set: (session, value) => void map.set(session, value),
          delete: (session) => void map.delete(session),
        };
      },
    };
  }

  // ---- lookups used by XmppSession -------------------------------------------------------

  iqHandler(type: IqType, xmlns: string, localName: string): IqEntry | undefined {
    return this.iqs.get(`${type} ${xmlns} ${localName}`);
  }

  nonzaHandler(xmlns: string, localName: string): NonzaEntry | undefined {
    return this.nonzas.get(`${xmlns} ${localName}`);
  }

  messageHandlers(): ReadonlyArray<StanzaHandler> {
    return this.messages.map((e) => e.fn);
  }

  presenceHandlers(): ReadonlyArray<StanzaHandler> {
    return this.presences.map((e) => e.fn);
  }

  eventHandlers(type: EventType): ReadonlyArray<EventHandler<EventType>> {
    return (this.events.get(type) ?? []).map((e) => e.fn);
  }

  sessionStartHooks(): ReadonlyArray<SessionHook> {
    return this.sessionStart.map((e) => e.fn);
  }

  boundHooks(): ReadonlyArray<SessionHook> {
    return this.bound.map((e) => e.fn);
  }

  sessionEndHooks(): ReadonlyArray<SessionHook> {
    return this.sessionEnd.map((e) => e.fn);
  }

  stanzaHandledHooks(): ReadonlyArray<(s: XmppSession, el: Element) => void> {
    return this.handled.map((e) => e.fn);
  }

  transportLostHooks(): ReadonlyArray<(s: XmppSession) => boolean> {
    return this.transportLost.map((e) => e.fn);
  }

  /** outbound middleware, outermost first */
  outboundChain(): ReadonlyArray<SendMiddleware> {
    return this.middleware.map((e) => e.fn);
  }

  streamFeatures(session: XmppSession, preAuth: boolean): Element[] {
    const out: Element[] = [];
    for (const { fn } of preAuth ? this.preAuthFeatures : this.features) {
      const el = fn(session);
      if (el) out.push(el);
    }
    return out;
  }

  serverFeatures(): string[] {
    return [...new Set(this.discoFeatures.map((f) => f.ns))].sort();
  }

  accountFeaturesList(): string[] {
    return [...new Set(this.accountFeatures.map((f) => f.ns))].sort();
  }

  serverIdentities(): Array<{ category: string; type: string; name?: string }> {
    return this.identities.map(({ category, type, name }) => ({ category, type, name }));
  }
}
