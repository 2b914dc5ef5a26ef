/**
 * One XMPP client session (RFC 6120, https://www.rfc-editor.org/rfc/rfc6120): the stream state
 * machine, inbound dispatch to the feature modules, outbound sending, and the link to the domain
 * (a live session of the command gateway once a resource is bound).
 *
 *   header → features → [STARTTLS → restart] → SASL → restart → features → bind → bound
 *
 * Inbound elements are handled one at a time, in order: each handler (and the durable work it
 * starts through the gateway) completes before the next element is looked at. The queue in front
 * is bounded: a TCP reader is paused when it fills up, a flood fails the stream; a token bucket
 * spaces elements out beyond `xmpp.stanzasPerSecond`.
 *
 * Domain events are queued per session too and handed, in order, to the modules' `onEvent`
 * handlers once the bind result has been sent.
 *
 * For XEP-0198 the session outlives its transport when a module says so (`onTransportLost`),
 * and can take over the transport of a newer session (`resumeWith`).
 */
import { randomBytes } from 'node:crypto';
import { xml, type Element } from '@xmpp/xml';
import type { Logger } from 'pino';
import type { KindredConfig } from '../../config.js';
import type { KindredEvent } from '../../domain/commands.js';
import type { CommandGateway, Principal } from '../../domain/gateway.js';
import { formatJid, isLocal, jid, parseJid, sameBare, sameFull, type Jid } from './jid.js';
import { INBOX, MAX_QUEUED_EVENTS, StanzaRateLimiter, writerStalled } from './limits.js';
import type { IqContext, ModuleHost, Outbound, Phase, StanzaContext, StanzaHandler } from './module.js';
import { NS } from './ns.js';
import type { SessionRegistry } from './sessions.js';
import { StanzaError, StreamError, errorReply, toStanzaError, type StanzaErrorCondition } from './stanza-errors.js';
import type { StreamHeader, StreamReceiver, XmppTransport } from './transport.js';

export type SessionPhase = 'connecting' | 'preauth' | 'postauth' | 'bound' | 'closed';

export interface SessionDeps {
  host: ModuleHost;
  gateway: CommandGateway;
  config: KindredConfig;
  log: Logger;
  registry: SessionRegistry;
  /** the session ended (for the server's bookkeeping) */
  onEnded?: (session: XmppSession) => void;
  now?: () => number;
}

interface Pending {
  resolve: (el: Element) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

/** A receiver that ignores everything: what a transport talks to once its session let go of it. */
const DETACHED: StreamReceiver = {
  onStreamStart() {},
  onElement() {},
  onStreamEnd() {},
  onStreamError() {},
  onTransportClosed() {},
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Stream ids (RFC 6120 §4.7.3: unique and unpredictable): 12 random bytes, cut from a pool
 * filled 4 KiB at a time; a login opens three streams and one randomBytes call each was a
 * visible part of its cost.
 */
const ID_BYTES = 12;
let idPool = Buffer.alloc(0);
let idOffset = 0;
function newStreamId(): string {
  if (idOffset + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 341);
    idOffset = 0;
  }
  const id = idPool.toString('base64url', idOffset, idOffset + ID_BYTES);
  idOffset += ID_BYTES;
  return id;
}

export class XmppSession implements StreamReceiver {
  /** the gateway connection id of this session (stable across XEP-0198 resumption) */
  readonly connId: string;
  /** id of the current stream header we sent */
  streamId = '';
  private _phase: SessionPhase = 'connecting';
  private _transport: XmppTransport | null;
  private _principal: Principal | undefined;
  private _username: string | undefined;
  private _jid: Jid | undefined;
  private expectingHeader = true;
  private headerSent = false;
  /** the client's `from` on its stream header (echoed as `to` on ours, RFC 6120 §4.7.2) */
  private clientFrom: string | undefined;
  /** bumped on every stream restart: elements parsed before it are dropped */
  private gen = 0;
  private inbox: Array<{ gen: number; el: Element }> = [];
  private pumping = false;
  private paused = false;
  /** made when elements arrive, dropped by tick() once full again (idle sessions hold none) */
  private limiter: StanzaRateLimiter | undefined;
  private events: KindredEvent[] = [];
  private eventsFlowing = false;
  private eventPumping = false;
  /** IQs we sent and await an answer to; created on the first request (most sessions never send one) */
  private pending: Map<string, Pending> | undefined;
  private gatewayOpen = false;
  private readonly now: () => number;
  readonly openedAt: number;
  lastInbound: number;
  private pingOutstanding = false;
  /** this session's child logger, made on first use: an idle session never logs */
  private _log: Logger | undefined;

  constructor(
    transport: XmppTransport,
    private readonly deps: SessionDeps,
  ) {
    this._transport = transport;
    this.connId = deps.gateway.newConnId();
    this.now = deps.now ?? Date.now;
    this.openedAt = this.lastInbound = this.now();
    transport.attach(this);
    for (const hook of deps.host.sessionStartHooks()) this.runHook(hook, 'sessionStart');
  }

  private get log(): Logger {
    return (this._log ??= this.deps.log.child({ connId: this.connId }));
  }

  // ---- what modules read ----------------------------------------------------------------

  get phase(): SessionPhase {
    return this._phase;
  }
  get isAuthenticated(): boolean {
    return this._principal !== undefined;
  }
  get isBound(): boolean {
    return this._phase === 'bound';
  }
  get isClosed(): boolean {
    return this._phase === 'closed';
  }
  /** bound, but its transport is gone (kept for XEP-0198 resumption) */
  get isDetached(): boolean {
    return this._transport === null && this._phase !== 'closed';
  }
  get principal(): Principal {
    if (!this._principal) throw new Error('session is not authenticated');
    return this._principal;
  }
  get userId(): string {
    return this.principal.userId;
  }
  get username(): string {
    if (!this._username) throw new Error('session is not authenticated');
    return this._username;
  }
  /** the full JID, once bound */
  get jid(): Jid {
    if (!this._jid) throw new Error('session has no bound resource');
    return this._jid;
  }
  get bareJid(): Jid {
    return jid(this.username, this.deps.config.domain);
  }
  get domain(): string {
    return this.deps.config.domain;
  }
  get transportKind(): 'tcp' | 'ws' | undefined {
    return this._transport?.kind;
  }
  get encrypted(): boolean {
    return this._transport?.encrypted ?? false;
  }
  get confidential(): boolean {
    return this._transport?.confidential ?? false;
  }
  get canStartTls(): boolean {
    return this._transport?.canStartTls ?? false;
  }
  get remoteAddress(): string {
    return this._transport?.remoteAddress ?? '';
  }

  // ---- input from the transport ------------------------------------------------------------

  onStreamStart(attrs: Record<string, string>, name: string, ns: string | undefined): void {
    if (this._phase === 'closed') return;
    this.lastInbound = this.now();
    const { domain } = this.deps.config;
    const header = (): StreamHeader => ({ id: this.streamId || newStreamId(), from: domain });
    if (!this.expectingHeader) {
      this.close(new StreamError('bad-format', 'unexpected stream header'));
      return;
    }
    const framing = this._transport?.kind === 'ws';
    if (framing ? !(name === 'open' && ns === NS.framing) : !(name === 'stream' && ns === NS.streams)) {
      this.close(new StreamError('invalid-namespace', 'expected a stream header'), header());
      return;
    }
    if (!framing && attrs.xmlns !== NS.client) {
      this.close(new StreamError('invalid-namespace', `the default namespace must be ${NS.client}`), header());
      return;
    }
    const version = attrs.version ?? '';
    const major = Number(version.split('.')[0]);
    if (!/^\d+\.\d+$/.test(version) || major < 1) {
      this.close(new StreamError('unsupported-version', 'XMPP 1.0 streams only'), header());
      return;
    }
    if (attrs.to !== undefined && parseJid(attrs.to)?.domain !== domain) {
      this.close(new StreamError('host-unknown', `this server serves ${domain}`), header());
      return;
    }
    if (this._phase === 'connecting') this._phase = 'preauth';
    if (attrs.from && !this.clientFrom && parseJid(attrs.from)) this.clientFrom = attrs.from;
    this.expectingHeader = false;
    this.streamId = newStreamId();
    this._transport?.openStream({ id: this.streamId, from: domain, to: this._principal ? undefined : this.clientFrom });
    this.headerSent = true;
    this.sendFeatures();
  }

  onElement(el: Element): void {
    if (this._phase === 'closed') return;
    this.lastInbound = this.now();
    if (this.expectingHeader) {
      this.close(new StreamError('bad-format', 'an element before the stream header'));
      return;
    }
    this.inbox.push({ gen: this.gen, el });
    if (this.inbox.length > INBOX.hardLimit) {
      this.close(new StreamError('policy-violation', 'too many unprocessed elements'));
      return;
    }
    if (!this.paused && this.inbox.length >= INBOX.pauseAt) {
      this.paused = true;
      this._transport?.pause();
    }
    void this.pump();
  }

  onStreamEnd(): void {
    if (this._phase === 'closed') return;
    // A clean close by the client: answer with our closing tag. Not a transport loss, so
    // nothing keeps the session for resumption.
    this.close();
  }

  onStreamError(err: StreamError): void {
    this.close(err);
  }

  onTransportClosed(): void {
    const t = this._transport;
    if (!t) return;
    t.attach(DETACHED);
    this._transport = null;
    this.transportLost();
  }

  // ---- stream negotiation steps (used by the starttls, sasl and bind modules) -------------------

  /** A stream restart (RFC 6120 §4.3.3): after SASL success, and inside startTls. */
  restartStream(): void {
    this.resetStream();
    this._transport?.restartStream();
  }

  private resetStream(): void {
    this.gen++;
    this.inbox = [];
    this.expectingHeader = true;
    this.headerSent = false;
    if (this.paused) {
      this.paused = false;
      this._transport?.resume();
    }
  }

  /** STARTTLS: call after writing `<proceed/>`; resolves once TLS is up (the client then sends a new header). */
  async startTls(): Promise<void> {
    const t = this._transport;
    if (!t) return;
    this.resetStream();
    await t.startTls();
  }

  /** SASL succeeded: remember who this is; the caller then writes `<success/>`. */
  authenticated(principal: Principal, username: string): void {
    this._principal = principal;
    this._username = username;
    this._phase = 'postauth';
    this.restartStream();
  }

  /**
   * Binds `resource` (RFC 6120 §7) and opens the gateway session. A bound session of the same
   * user with the same resource on this node is replaced (§7.7.2.2): it ends with <conflict/>.
   * Events are held until `markBound()`, which the bind module runs after its result is sent.
   */
  async bind(resource: string): Promise<Jid> {
    if (this._phase !== 'postauth' || this._jid) throw new StanzaError('not-allowed', 'a resource is already bound');
    const userId = this.userId;
    const existing = this.deps.registry.get(userId, resource);
    if (existing && existing !== this) existing.close(new StreamError('conflict', 'replaced by a new session with the same resource'));
    const full = jid(this.username, this.deps.config.domain, resource);
    this._jid = full;
    this.deps.registry.add(userId, resource, this);
    try {
      await this.deps.gateway.openSession(this.principal, { connId: this.connId, transport: 'xmpp', device: resource }, (event) => this.pushEvent(event));
    } catch (err) {
      this.deps.registry.remove(userId, resource, this);
      this._jid = undefined;
      throw err;
    }
    this.gatewayOpen = true;
    if (this.isClosed) this.deps.gateway.closeSession(this.principal, this.connId);
    return full;
  }

  /** After the bind result went out: the session is bound, onBound hooks run, events start flowing. */
  async markBound(): Promise<void> {
    if (this._phase !== 'postauth' || !this._jid) return;
    this._phase = 'bound';
    for (const hook of this.deps.host.boundHooks()) await this.runHook(hook, 'bound');
    this.eventsFlowing = true;
    void this.pumpEvents();
  }

  /** Stream features for the current state (RFC 6120 §4.3.2). */
  private sendFeatures(): void {
    const preAuth = !this._principal;
    const features = this.deps.host.streamFeatures(this, preAuth);
    this.write(xml('stream:features', {}, ...features));
  }

  // ---- inbound processing -------------------------------------------------------------------

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.inbox.length > 0 && this._phase !== 'closed') {
        const item = this.inbox.shift()!;
        if (item.gen !== this.gen) continue;
        const { xmpp } = this.deps.config;
        const limiter = (this.limiter ??= new StanzaRateLimiter(xmpp.stanzasPerSecond, xmpp.stanzaBurst, this.now));
        let wait = limiter.delayMs();
        while (wait > 0) {
          await sleep(wait);
          if (this.isClosed) return;
          wait = limiter.delayMs();
        }
        if (item.gen !== this.gen) continue;
        await this.handle(item.el);
        if (this.paused && this.inbox.length <= INBOX.resumeAt) {
          this.paused = false;
          this._transport?.resume();
        }
      }
    } finally {
      this.pumping = false;
      // a drained queue lets go of the backing store it grew (an idle session keeps none)
      if (this.inbox.length === 0) this.inbox = [];
    }
  }

  private async handle(el: Element): Promise<void> {
    try {
      const name = el.getName();
      const ns = el.getNS();
      if (ns === NS.client && (name === 'iq' || name === 'message' || name === 'presence')) await this.handleStanza(el, name);
      else await this.handleNonza(el, name, ns ?? '');
    } catch (err) {
      if (err instanceof StreamError) {
        this.close(err);
        return;
      }
      this.log.error({ err }, 'xmpp: element handling failed');
      this.close(new StreamError('internal-server-error'));
    }
  }

  private allowed(phase: Phase): boolean {
    switch (phase) {
      case 'any':
        return true;
      case 'preauth':
        return !this._principal;
      case 'postauth':
        return this._principal !== undefined;
      case 'bound':
        return this._phase === 'bound';
    }
  }

  /** The stream error for something not allowed in the current state. */
  private notNow(what: string): StreamError {
    if (!this._principal) return new StreamError('not-authorized', `authenticate before sending ${what}`);
    if (this._phase !== 'bound') return new StreamError('not-authorized', `bind a resource before sending ${what}`);
    return new StreamError('policy-violation', `${what} is not allowed after authentication`);
  }

  private async handleNonza(el: Element, name: string, ns: string): Promise<void> {
    const entry = this.deps.host.nonzaHandler(ns, name);
    if (!entry) {
      throw this._principal ? new StreamError('unsupported-stanza-type', `<${name.slice(0, 50)}/> is not supported`) : this.notNow(`<${name.slice(0, 50)}/>`);
    }
    if (!this.allowed(entry.phase)) throw this.notNow(`<${name}/>`);
    await entry.handler(this, el);
  }

  private async handleStanza(el: Element, name: 'iq' | 'message' | 'presence'): Promise<void> {
    const bound = this._phase === 'bound';
    // Before bind only IQs reach handlers, and only those registered for the phase.
    if (!bound && name !== 'iq') throw this.notNow(`<${name}/>`);
    let from: Jid;
    if (bound) {
      const full = this._jid!;
      const claimed = el.attrs.from;
      if (claimed !== undefined) {
        const j = parseJid(claimed);
        if (!j || !sameBare(j, full) || (j.resource !== '' && j.resource !== full.resource)) {
          throw new StreamError('invalid-from', 'the from address is not this session');
        }
      }
      el.attrs.from = formatJid(full);
      from = full;
    } else {
      delete el.attrs.from;
      from = this._username ? jid(this._username, this.domain) : jid('', this.domain);
    }
    const to: Jid | undefined = el.attrs.to !== undefined ? parseJid(el.attrs.to) : undefined;
    if (el.attrs.to !== undefined && !to) {
      if (el.attrs.type !== 'error' && name !== 'presence') this.send(errorReply(withoutTo(el), new StanzaError('jid-malformed')));
    } else {
      const ctx: StanzaContext = { session: this, stanza: el, from, to };
      if (name === 'iq') await this.handleIq(ctx);
      else if (name === 'message') await this.handleRouted(ctx, this.deps.host.messageHandlers(), true);
      else await this.handleRouted(ctx, this.deps.host.presenceHandlers(), false);
    }
    // Every stanza counts as handled, refused ones too: stream management's `h` must match what the client sent.
    if (bound) for (const hook of this.deps.host.stanzaHandledHooks()) this.runHook(() => hook(this, el), 'stanzaHandled');
  }

  private async handleIq(ctx: StanzaContext): Promise<void> {
    const { stanza, to } = ctx;
    const { type, id } = stanza.attrs;
    if (type === 'result' || type === 'error') {
      const p = id !== undefined ? this.pending?.get(id) : undefined;
      if (p) {
        this.forgetPending(id!);
        clearTimeout(p.timer);
        if (type === 'result') p.resolve(stanza);
        else p.reject(stanzaErrorFrom(stanza));
      }
      return;
    }
    const children = stanza.getChildElements();
    const payload = children[0];
    if ((type !== 'get' && type !== 'set') || children.length !== 1 || id === undefined) {
      if (!this._principal) throw new StreamError('not-authorized', 'authenticate first');
      this.send(errorReply(stanza, new StanzaError('bad-request', 'an IQ needs an id, type get or set, and exactly one child')));
      return;
    }
    const entry = this.deps.host.iqHandler(type, payload!.getNS() ?? '', payload!.getName());
    if (this._phase !== 'bound' && (!entry || !this.allowed(entry.phase))) throw this.notNow('this IQ');
    const after: Array<() => void | Promise<void>> = [];
    let reply: Element;
    const refuse = (condition: StanzaErrorCondition, text?: string) => errorReply(stanza, new StanzaError(condition, text));
    if (to && !isLocal(to, this.domain)) reply = refuse('remote-server-not-found', 'this server does not federate');
    else if (to && to.resource && !(this._jid && sameFull(to, this._jid))) reply = refuse('service-unavailable');
    else if (!entry || !this.allowed(entry.phase)) reply = refuse('service-unavailable');
    else {
      const iq: IqContext = { ...ctx, type, payload: payload!, afterReply: (fn) => void after.push(fn) };
      try {
        const result = await entry.handler(iq);
        reply = xml('iq', { type: 'result', id, from: stanza.attrs.to, to: stanza.attrs.from }, result ?? null);
      } catch (err) {
        if (err instanceof StreamError) throw err;
        reply = errorReply(stanza, toStanzaError(err, (e) => this.log.error({ err: e, xmlns: payload!.getNS() }, 'xmpp: IQ handler failed')));
      }
    }
    if (this._phase === 'closed') return;
    this.send(reply);
    for (const fn of after) await fn();
  }

  private async handleRouted(ctx: StanzaContext, handlers: ReadonlyArray<StanzaHandler>, isMessage: boolean): Promise<void> {
    const { stanza, to } = ctx;
    const canAnswer = stanza.attrs.type !== 'error';
    if (to && !isLocal(to, this.domain)) {
      if (canAnswer && isMessage) this.send(errorReply(stanza, new StanzaError('remote-server-not-found', 'this server does not federate')));
      return;
    }
    for (const handler of handlers) {
      try {
        if ((await handler(ctx)) === true) return;
      } catch (err) {
        if (err instanceof StreamError) throw err;
        const e = toStanzaError(err, (x) => this.log.error({ err: x }, `xmpp: ${stanza.name} handler failed`));
        if (canAnswer) this.send(errorReply(stanza, e));
        return;
      }
    }
    // Nobody took it: silently dropped (chat states, receipts… without a module).
  }

  // ---- domain events ------------------------------------------------------------------------

  /** The gateway's event sink. False tells the hub this session is gone. */
  private pushEvent(event: KindredEvent): boolean {
    if (this._phase === 'closed') return false;
    this.events.push(event);
    if (this.events.length > MAX_QUEUED_EVENTS) {
      this.log.warn('xmpp: session cannot keep up with its events');
      this.close(new StreamError('resource-constraint', 'too many undelivered events'));
      return false;
    }
    if (this.eventsFlowing) void this.pumpEvents();
    return true;
  }

  private async pumpEvents(): Promise<void> {
    if (this.eventPumping) return;
    this.eventPumping = true;
    try {
      while (this.events.length > 0 && this._phase !== 'closed') {
        const event = this.events.shift()!;
        for (const handler of this.deps.host.eventHandlers(event.type)) {
          try {
            await handler(this, event);
          } catch (err) {
            this.log.error({ err, type: event.type }, 'xmpp: event handler failed');
          }
          if (this.isClosed) return;
        }
      }
    } finally {
      this.eventPumping = false;
      if (this.events.length === 0) this.events = [];
    }
  }

  // ---- output -------------------------------------------------------------------------------

  /**
   * Sends a stanza through the outbound middleware (stream management, CSI…). `onAcked` runs
   * once the client has it: when written, or when stream management sees it acknowledged.
   */
  send(stanza: Element, opts: { onAcked?: () => void } = {}): void {
    if (this._phase === 'closed') return;
    const chain = this.deps.host.outboundChain();
    const run = (i: number, out: Outbound): void => {
      if (this._phase === 'closed') return;
      if (i < chain.length) chain[i]!(this, out, (next) => run(i + 1, next));
      else if (this.write(out.stanza)) out.onAcked?.();
    };
    run(0, { stanza, onAcked: opts.onAcked });
  }

  /** Writes a top-level element directly (features, SASL, STARTTLS, SM's <a/>/<r/>): no middleware. */
  sendNonza(el: Element): void {
    if (this._phase === 'closed') return;
    this.write(el);
  }

  /** Sends an IQ get/set to the client and resolves with its result (rejects with a StanzaError). */
  request(iq: Element, timeoutMs = 30_000): Promise<Element> {
    if (this._phase === 'closed') return Promise.reject(new StanzaError('recipient-unavailable'));
    const id = iq.attrs.id ?? (iq.attrs.id = `k${randomBytes(6).toString('hex')}`);
    return new Promise<Element>((resolve, reject) => {
      const pending = (this.pending ??= new Map());
      const timer = setTimeout(() => {
        this.forgetPending(id);
        reject(new StanzaError('remote-server-timeout', 'no answer from the client'));
      }, timeoutMs);
      timer.unref();
      pending.set(id, { resolve, reject, timer });
      this.send(iq);
    });
  }

  private write(el: Element): boolean {
    const t = this._transport;
    if (!t) return false;
    const buffered = t.send(el);
    if (writerStalled(buffered, this.deps.config.limits.maxSendBufferBytes)) {
      this.log.info({ buffered }, 'xmpp: slow reader, dropping its connection');
      t.attach(DETACHED);
      this._transport = null;
      t.destroy();
      this.transportLost();
      return false;
    }
    return true;
  }

  // ---- ending -------------------------------------------------------------------------------

  /** Closes the stream (with a stream error, if given) and ends the session. */
  close(err?: StreamError, header?: StreamHeader): void {
    if (this._phase === 'closed') return;
    const t = this._transport;
    if (t) {
      t.attach(DETACHED);
      this._transport = null;
      t.closeStream(err, this.headerSent ? undefined : (header ?? { id: this.streamId || newStreamId(), from: this.domain }));
    }
    if (err && err.condition !== 'system-shutdown') this.log.debug({ condition: err.condition, text: err.text }, 'xmpp: stream error');
    this.end();
  }

  /** Ends the session for good: gateway session closed, registry entry removed, end hooks run. */
  end(): void {
    if (this._phase === 'closed') return;
    const t = this._transport;
    if (t) {
      // still connected: close politely
      this.close();
      return;
    }
    this._phase = 'closed';
    this.inbox = [];
    this.events = [];
    this.rejectPending('the session ended');
    if (this._jid && this._principal) this.deps.registry.remove(this._principal.userId, this._jid.resource, this);
    if (this.gatewayOpen && this._principal) {
      this.gatewayOpen = false;
      this.deps.gateway.closeSession(this._principal, this.connId);
    }
    for (const hook of this.deps.host.sessionEndHooks()) this.runHook(hook, 'sessionEnd');
    this.deps.onEnded?.(this);
  }

  /** An answered or timed-out request; an empty map goes (idle sessions get a ping now and then). */
  private forgetPending(id: string): void {
    const pending = this.pending;
    if (!pending) return;
    pending.delete(id);
    if (pending.size === 0) this.pending = undefined;
  }

  private rejectPending(why: string): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new StanzaError('recipient-unavailable', why));
    }
  }

  private transportLost(): void {
    if (this._phase === 'closed') return;
    this.rejectPending('the connection was lost');
    this.inbox = [];
    if (this._phase === 'bound') {
      let keep = false;
      for (const hook of this.deps.host.transportLostHooks()) {
        try {
          keep = hook(this) || keep;
        } catch (err) {
          this.log.error({ err }, 'xmpp: transportLost hook failed');
        }
      }
      if (keep) return;
    }
    this.end();
  }

  /**
   * XEP-0198 resumption: this (detached) session takes over `newer`'s transport and any
   * elements it has queued after the resume request; `newer` ends without touching the link.
   */
  resumeWith(newer: XmppSession): void {
    if (this._phase === 'closed') throw new Error('cannot resume a closed session');
    const t = newer._transport;
    if (!t) throw new Error('the resuming stream has no transport');
    const rest = newer.inbox.filter((i) => i.gen === newer.gen).map((i) => i.el);
    newer._transport = null;
    newer.inbox = [];
    newer.end();
    if (this._transport) {
      // Resumed while the old connection still looks alive: drop it quietly.
      const old = this._transport;
      old.attach(DETACHED);
      old.destroy();
    }
    this._transport = t;
    t.attach(this);
    this.gen++;
    this.inbox = rest.map((el) => ({ gen: this.gen, el }));
    this.expectingHeader = false;
    this.headerSent = true;
    this.streamId = newer.streamId;
    this.lastInbound = this.now();
    this.paused = false;
    t.resume();
    void this.pump();
  }

  /** Heartbeat sweep (server.ts): auth deadline, idle pings, dead peers. */
  tick(now: number): void {
    if (this._phase === 'closed' || !this._transport) return;
    if (this.limiter?.isFull(this.now()) && !this.pumping) this.limiter = undefined;
    const { limits } = this.deps.config;
    if (this._phase !== 'bound') {
      if (now - this.openedAt > limits.authTimeoutSeconds * 1000) this.close(new StreamError('connection-timeout', 'no session established in time'));
      return;
    }
    if (this.principal.expiresAt <= now) {
      // The authentication behind this session has run out (auth.tokenTtlSeconds): log in again.
      this.close(new StreamError('not-authorized', 'the session has expired, log in again'));
      return;
    }
    const idle = now - this.lastInbound;
    const beat = limits.heartbeatSeconds * 1000;
    if (idle > 4 * beat) {
      this.close(new StreamError('connection-timeout', 'no traffic from the client'));
      return;
    }
    if (idle > 2 * beat && !this.pingOutstanding) {
      // XEP-0199 ping from the server; any answer (even an error) is traffic.
      this.pingOutstanding = true;
      this.request(xml('iq', { type: 'get', to: formatJid(this._jid!), from: this.domain }, xml('ping', { xmlns: NS.ping })), beat)
        .catch(() => undefined)
        .finally(() => {
          this.pingOutstanding = false;
        });
    }
  }

  private runHook(fn: (s: XmppSession) => unknown, what: string): Promise<void> {
    try {
      const r = fn(this);
      if (r instanceof Promise) return r.then(() => undefined, (err) => this.log.error({ err }, `xmpp: ${what} hook failed`));
    } catch (err) {
      this.log.error({ err }, `xmpp: ${what} hook failed`);
    }
    return Promise.resolve();
  }
}

/** A stanza whose `to` was malformed: answer without echoing it. */
function withoutTo(el: Element): Element {
  const copy = xml(el.name, { ...el.attrs });
  delete copy.attrs.to;
  return copy;
}

/** The StanzaError carried by an `<iq type='error'/>` from the client. */
function stanzaErrorFrom(stanza: Element): StanzaError {
  const error = stanza.getChild('error');
  const condition = error?.getChildElements().find((c) => c.getNS() === NS.stanzaErrors && c.getName() !== 'text');
  return new StanzaError((condition?.getName() as StanzaErrorCondition | undefined) ?? 'undefined-condition', error?.getChildText('text', NS.stanzaErrors) ?? undefined);
}
