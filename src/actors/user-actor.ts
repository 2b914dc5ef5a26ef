/**
 * The per-user actor: one per user, wherever its shard lives. It owns what must be
 * serialised per user: live sessions (connection_id → device, transport, node),
 * presence, the set of matches that authorises messaging, rate limits, and the
 * order of the user's outgoing messages.
 *
 * Actors never `ask` each other (two actors asking each other would deadlock);
 * they `tell`. Anything that needs several actors' answers is gathered outside,
 * in the domain service.
 */
import type { Actor, ActorSystem, SendOptions } from './system.js';
import { later, type Later } from './mailbox.js';
import { handOver, type Bus, type HandOver } from './bus.js';
import type { Clock } from './clock.js';
import type { KindredConfig } from '../config.js';
import type { ChatMessage, Storage, SwipeKind } from '../storage/types.js';
import type { KindredEvent, MessageView, PresenceShow, UserCommand } from '../domain/commands.js';
import type { ProfileViews } from '../domain/profiles.js';
import type { Transport } from '../domain/gateway.js';
import { KindredError } from '../errors.js';
import { monthBucket, newId } from '../ids.js';
import { clientIdDigest, idDigestPart, messageIdFor } from './client-ids.js';
import { TokenBucket } from '../domain/rate-limit.js';

export interface SessionRecord {
  connId: string;
  nodeId: string;
  transport: Transport;
  device: string;
}

/** The commands a user's own actor runs (the rest are served without it). */
export type ActorCommand = Extract<
  UserCommand,
  { op: 'swipe' | 'message.send' | 'receipt' | 'typing' | 'unmatch' | 'block' | 'presence.set' | 'contact.add' }
>;

export type UserMsg =
  | { k: 'cmd'; connId?: string; cmd: ActorCommand }
  | { k: 'attach'; session: SessionRecord }
  | { k: 'detach'; connId: string }
  /** membership declared `nodeId` dead: its connections are gone, drop their sessions */
  | { k: 'node-gone'; nodeId: string }
  | { k: 'matched'; matchId: string; peerId: string; firstBucket: number; superlike: boolean; at: number }
  | { k: 'ended'; matchId: string; peerId: string; blocked: boolean }
  | { k: 'blocked-by'; userId: string }
  | { k: 'deliver'; message: MessageView }
  | { k: 'receipt'; from: string; messageId: string; kind: 'delivered' | 'read' }
  | { k: 'typing'; from: string; state: 'composing' | 'paused' }
  | { k: 'presence'; userId: string; online: boolean; lastActiveAt: number | null; show?: PresenceShow; status?: string }
  | { k: 'superliked'; fromId: string }
  | { k: 'presence.query' }
  | { k: 'peers'; userIds: string[] }
  | { k: 'settings.changed' }
  /** an event from a service outside the actors (e.g. an order's new state) for the user's open sessions */
  | { k: 'push'; event: KindredEvent };

export interface SessionDelivery {
  connIds: string[];
  event: KindredEvent;
}

/** A retried message.send gets its own copy of the remembered reply, handed over. */
function freshReply(r: SendReply): HandOver<SendReply> {
  return handOver({ messageId: r.messageId, sentAt: r.sentAt });
}

const deliverySubjects = new Map<string, string>();

export function nodeDeliverySubject(nodeId: string): string {
  let subject = deliverySubjects.get(nodeId);
  if (subject === undefined) {
    subject = `kindred.node.${nodeId}.deliver`;
    // node ids are few (one per node of the cluster); the bound only guards against misuse
    if (deliverySubjects.size < 4096) deliverySubjects.set(nodeId, subject);
  }
  return subject;
}

export interface UserActorDeps {
  storage: Storage;
  views: ProfileViews;
  clock: Clock;
  config: KindredConfig;
  bus: Bus;
  /** the system this actor lives in, to tell other users' actors */
  users: () => ActorSystem<UserMsg, unknown>;
  onMessagePersisted?: (msg: ChatMessage) => void;
}

interface MatchState {
  matchId: string;
  firstBucket: number;
  active: boolean;
}

const CLIENT_ID_MEMORY = 256;
/**
 * How many of a conversation's newest messages a fresh activation looks through to
 * recognise a resent clientId (client-ids.ts): a resend of anything older is stored again.
 */
const STORED_RETRY_SCAN = 200;

interface SendReply {
  messageId: string;
  sentAt: number;
}

/** For tells whose message is built for that one tell and never touched again (see HandOver in bus.ts). */
const HANDED_OVER: SendOptions = { handOver: true };

export class UserActor implements Actor<UserMsg, unknown> {
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly matches = new Map<string, MatchState>();
  private blocked = new Set<string>();
  private showPresence = true;
  /** what the user's clients last said about their availability (XMPP show/status) */
  private show: PresenceShow = 'available';
  private status: string | undefined;
  private lastActiveAt = 0;
  private readonly likes: TokenBucket;
  private readonly messages: TokenBucket;
  /**
   * Replies to recent message.send by clientId (pending or settled), so a retry never
   * stores twice. Kept as this actor's own copy: each asker is handed a fresh one.
   */
  private readonly recentClientIds = new Map<string, Promise<SendReply>>();
  /**
   * Per conversation (matchId): this user's messages stored before this activation, by
   * clientId digest, loaded on the first send with a clientId. After a failover the
   * memory above is empty, and a client resending what it never saw acknowledged must
   * get the stored message back, not a second copy.
   */
  private readonly storedSends = new Map<string, Promise<Map<string, string>>>();

  constructor(
    readonly userId: string,
    private readonly deps: UserActorDeps,
  ) {
    const { limits } = deps.config;
    const now = deps.clock.now();
    this.likes = new TokenBucket(limits.likesPerMinute / 60, limits.likesBurst, now);
    this.messages = new TokenBucket(limits.messagesPerSecond, limits.messagesBurst, now);
  }

  async activate(): Promise<void> {
    const { storage } = this.deps;
    const [matches, blocked, profile] = await Promise.all([
      storage.matches.listForUser(this.userId),
      storage.blocks.blockedEitherWay(this.userId),
      storage.profiles.get(this.userId),
    ]);
    for (const m of matches) {
      const peerId = m.users[0] === this.userId ? m.users[1] : m.users[0];
      this.matches.set(peerId, { matchId: m.matchId, firstBucket: m.firstBucket, active: m.endedAt === null });
    }
    this.blocked = blocked;
    this.showPresence = profile?.showPresence ?? true;
    this.lastActiveAt = profile?.lastActiveAt ?? 0;
  }

  canPassivate(): boolean {
    return this.sessions.size === 0;
  }

  async passivate(): Promise<void> {
    // Everything durable is written as it happens; nothing to flush.
  }

  receive(msg: UserMsg): Promise<unknown> | Later<unknown> | unknown {
    switch (msg.k) {
      case 'cmd':
        return this.command(msg.cmd, msg.connId);
      case 'attach':
        return this.attach(msg.session);
      case 'detach':
        return this.detach(msg.connId);
      case 'node-gone':
        return this.dropSessionsOf(msg.nodeId);
      case 'matched':
        return this.onMatched(msg);
      case 'ended':
        return this.onEnded(msg.matchId, msg.peerId, msg.blocked);
      case 'blocked-by':
        this.blocked.add(msg.userId);
        return undefined;
      // The letter is this actor's own (see HandOver in bus.ts) and these events are built
      // for this push alone, so they are handed over to the session hub, not copied.
      case 'deliver':
        this.push({ type: 'message', message: msg.message }, undefined, true);
        return undefined;
      case 'receipt':
        this.push({ type: 'receipt', from: msg.from, messageId: msg.messageId, kind: msg.kind }, undefined, true);
        return undefined;
      case 'typing':
        this.push({ type: 'typing', from: msg.from, state: msg.state }, undefined, true);
        return undefined;
      case 'presence':
        if (this.isMatchedWith(msg.userId)) {
          const { k: _k, ...presence } = msg;
          this.push({ type: 'presence', ...presence });
        }
        return undefined;
      case 'superliked':
        return this.onSuperliked(msg.fromId);
      case 'presence.query': {
        const online = this.showPresence && this.sessions.size > 0;
        return {
          online,
          lastActiveAt: this.showPresence ? (this.sessions.size > 0 ? this.deps.clock.now() : this.lastActiveAt) : null,
          ...(online ? { show: this.show, ...(this.status !== undefined ? { status: this.status } : {}) } : {}),
        };
      }
      case 'peers':
        return msg.userIds.filter((id) => this.isMatchedWith(id));
      case 'settings.changed':
        return this.reloadSettings();
      case 'push':
        this.push(msg.event);
        return undefined;
    }
  }

  // ---- commands -------------------------------------------------------------

  private command(cmd: ActorCommand, connId: string | undefined): Promise<unknown> | Later<unknown> {
    switch (cmd.op) {
      case 'swipe':
        return this.swipe(cmd.targetId, cmd.kind);
      case 'message.send':
        return this.send(cmd.to, cmd.body, cmd.clientId, connId);
      case 'receipt':
        return this.receipt(cmd.to, cmd.messageId, cmd.kind);
      case 'typing':
        return this.typing(cmd.to, cmd.state);
      case 'unmatch':
        return this.endMatch(cmd.userId, false);
      case 'block':
        return this.block(cmd.userId, connId);
      case 'presence.set':
        this.show = cmd.show;
        this.status = cmd.status;
        if (this.sessions.size > 0) this.announcePresence(true);
        return Promise.resolve({ ok: true });
      case 'contact.add':
        return this.activeMatch(cmd.userId).then((m) => ({ matchId: m.matchId }));
    }
  }

  private async swipe(targetId: string, kind: SwipeKind): Promise<{ matched: boolean; matchId?: string }> {
    const { storage, clock } = this.deps;
    if (targetId === this.userId) throw new KindredError('INVALID_ARGUMENT', 'targetId: you cannot swipe yourself');
    if (this.blocked.has(targetId)) throw new KindredError('NOT_FOUND', 'no such user');
    const now = clock.now();
    if (kind !== 'pass' && !this.likes.take(now)) throw new KindredError('RATE_LIMITED', 'too many likes, try again later');
    if (!(await storage.profiles.get(targetId))) throw new KindredError('NOT_FOUND', 'no such user');

    const { first, existing } = await storage.swipes.record({ swiperId: this.userId, targetId, kind, at: now });
    const effective = first ? kind : existing!.kind;
    if (effective === 'pass') return { matched: false };
    if (first && kind === 'superlike') this.deps.users().tell(targetId, { k: 'superliked', fromId: this.userId });

    // Both sides record their like before looking for the other's, so of two
    // simultaneous likes at least one sees the other; createIfAbsent makes the
    // match exactly once and only its creator announces it.
    const reverse = await storage.swipes.likeFrom(targetId, this.userId);
    if (!reverse) return { matched: false };
    // A block may have happened after the like; the block set in storage is the authority.
    if ((await storage.blocks.blockedEitherWay(this.userId)).has(targetId)) return { matched: false };
    const users = [this.userId, targetId].sort() as [string, string];
    const { created, match } = await storage.matches.createIfAbsent({
      matchId: newId(now),
      users,
      createdAt: now,
      endedAt: null,
      endedBy: null,
      firstBucket: monthBucket(now),
    });
    if (created) {
      const superlike = effective === 'superlike' || reverse.kind === 'superlike';
      const base = { matchId: match.matchId, firstBucket: match.firstBucket, superlike, at: match.createdAt };
      this.deps.users().tell(this.userId, { k: 'matched', peerId: targetId, ...base });
      this.deps.users().tell(targetId, { k: 'matched', peerId: this.userId, ...base });
    }
    return { matched: match.endedAt === null, matchId: match.matchId };
  }

  /**
   * Checks, orders and stores a message. The actor's turn ends once the message is
   * queued for its durable write (appends are committed in call order), so the
   * next message, a delivery or a receipt is not held up by the disk; the reply,
   * the delivery to the recipient and the echo to other devices all wait for
   * durability, in order.
   */
  private send(to: string, body: string, clientId: string | undefined, connId: string | undefined): Later<unknown> | Promise<Later<unknown>> {
    const { config } = this.deps;
    if (typeof body !== 'string' || body.length === 0) throw new KindredError('INVALID_ARGUMENT', 'body: must be a non-empty string');
    if (body.length > config.limits.maxMessageChars) throw new KindredError('PAYLOAD_TOO_LARGE', `body: at most ${config.limits.maxMessageChars} characters`);
    // The common case, without a clientId to look up and with the match in memory, runs
    // synchronously: the same checks, minus the promises.
    if (clientId === undefined) {
      const match = this.matches.get(to);
      if (match?.active) return later(this.store(match, to, body, connId));
    }
    return this.sendChecked(to, body, clientId, connId);
  }

  private async sendChecked(to: string, body: string, clientId: string | undefined, connId: string | undefined): Promise<Later<unknown>> {
    if (clientId !== undefined) {
      const seen = this.recentClientIds.get(clientId);
      if (seen) return later(seen.then(freshReply)); // a retry of a message already accepted: same answer, no duplicate
    }
    const match = await this.activeMatch(to);
    const digest = clientId === undefined ? undefined : clientIdDigest(this.userId, clientId);
    if (digest !== undefined) {
      const storedId = (await this.storedSendsIn(match)).get(digest);
      const stored = storedId === undefined ? undefined : await this.deps.storage.messages.get(match.matchId, storedId);
      if (stored && stored.senderId === this.userId && stored.recipientId === to) return later(Promise.resolve(this.redeliver(stored)));
    }
    const reply = this.store(match, to, body, connId, digest);
    if (clientId !== undefined) {
      const remembered = reply.then((r) => ({ messageId: r.value.messageId, sentAt: r.value.sentAt }));
      this.recentClientIds.set(clientId, remembered);
      // A failed write may be retried under the same clientId.
      remembered.catch(() => this.recentClientIds.get(clientId) === remembered && this.recentClientIds.delete(clientId));
      if (this.recentClientIds.size > CLIENT_ID_MEMORY) this.recentClientIds.delete(this.recentClientIds.keys().next().value!);
    }
    return later(reply);
  }

  /**
   * The ids of this user's messages in the conversation stored before this activation, by
   * clientId digest (ids only: a hit, which is rare, reads the message again).
   */
  private storedSendsIn(match: MatchState): Promise<Map<string, string>> {
    let index = this.storedSends.get(match.matchId);
    if (!index) {
      index = this.deps.storage.messages.page(match.matchId, match.firstBucket, { limit: STORED_RETRY_SCAN }).then((page) => {
        const byDigest = new Map<string, string>();
        for (const m of page) if (m.senderId === this.userId) byDigest.set(idDigestPart(m.messageId), m.messageId);
        return byDigest;
      });
      this.storedSends.set(match.matchId, index);
      // a failed read is retried by the next send
      index.catch(() => this.storedSends.get(match.matchId) === index && this.storedSends.delete(match.matchId));
    }
    return index;
  }

  /**
   * A resend of a message stored before this activation: the previous copy of this actor
   * may have died between the durable write and the push, so the recipient is told again
   * (clients de-duplicate by messageId); the answer is the stored message's.
   */
  private redeliver(m: ChatMessage): SendReply {
    const view: MessageView = { messageId: m.messageId, matchId: m.matchId, from: m.senderId, to: m.recipientId, body: m.body, sentAt: m.sentAt };
    this.deps.users().tell(m.recipientId, { k: 'deliver', message: view });
    return { messageId: m.messageId, sentAt: m.sentAt };
  }

  /** `digest`: the clientIdDigest of the send's clientId, carried by the message id (client-ids.ts) */
  private async store(match: MatchState, to: string, body: string, connId: string | undefined, digest?: string): Promise<HandOver<SendReply>> {
    const { storage, clock } = this.deps;
    const now = clock.now();
    if (!this.messages.take(now)) throw new KindredError('RATE_LIMITED', 'too many messages, slow down');
    const message: ChatMessage = {
      messageId: messageIdFor(now, digest),
      matchId: match.matchId,
      senderId: this.userId,
      recipientId: to,
      body,
      sentAt: now,
      bucket: monthBucket(now),
    };
    await storage.messages.append(message); // durable (group commit) before we answer
    this.deps.onMessagePersisted?.(message);
    const { messageId, matchId } = message;
    // Each view is built for its one receiver and handed over (no copy on a local bus).
    this.deps.users().tell(to, { k: 'deliver', message: { messageId, matchId, from: this.userId, to, body, sentAt: now } }, HANDED_OVER);
    // The sender's other devices see what was sent from this one.
    if (this.hasSessionsBesides(connId)) this.push({ type: 'message', message: { messageId, matchId, from: this.userId, to, body, sentAt: now } }, connId, true);
    return handOver({ messageId, sentAt: now });
  }

  private async receipt(to: string, messageId: string, kind: 'delivered' | 'read'): Promise<{ ok: true }> {
    const match = this.matches.get(to) ?? (await this.loadMatch(to));
    if (!match) throw new KindredError('NOT_MATCHED');
    const { messages } = this.deps.storage;
    // Only a message this user received in this conversation can be acknowledged.
    const message = await messages.get(match.matchId, messageId);
    if (!message || message.recipientId !== this.userId) throw new KindredError('NOT_FOUND', 'no such message from this user');
    await messages.markDelivered(this.userId, [messageId]);
    if (kind === 'read') await messages.setReadMarker(match.matchId, this.userId, messageId);
    if (match.active) this.deps.users().tell(to, { k: 'receipt', from: this.userId, messageId, kind });
    return { ok: true };
  }

  private async typing(to: string, state: 'composing' | 'paused'): Promise<{ ok: true }> {
    await this.activeMatch(to);
    this.deps.users().tellIfActive(to, { k: 'typing', from: this.userId, state });
    return { ok: true };
  }

  private async endMatch(peerId: string, blocked: boolean): Promise<{ ok: true }> {
    const match = this.matches.get(peerId) ?? (await this.loadMatch(peerId));
    if (!match) {
      if (blocked) return { ok: true };
      throw new KindredError('NOT_MATCHED', 'you are not matched with this user');
    }
    if (match.active) {
      await this.deps.storage.matches.end(match.matchId, this.userId, this.deps.clock.now());
    }
    this.deps.users().tell(peerId, { k: 'ended', matchId: match.matchId, peerId: this.userId, blocked });
    this.onEnded(match.matchId, peerId, false);
    return { ok: true };
  }

  private async block(userId: string, connId?: string): Promise<{ ok: true }> {
    if (userId === this.userId) throw new KindredError('INVALID_ARGUMENT', 'userId: you cannot block yourself');
    await this.deps.storage.blocks.block(this.userId, userId, this.deps.clock.now());
    this.blocked.add(userId);
    // The user's other sessions, on any node, learn of it (XMPP block-list pushes, XEP-0191).
    this.push({ type: 'block', userId }, connId);
    this.deps.users().tell(userId, { k: 'blocked-by', userId: this.userId });
    return this.endMatch(userId, true);
  }

  // ---- sessions and presence -------------------------------------------------

  private async attach(session: SessionRecord): Promise<{ pending: number }> {
    if (!this.replaceSameResource(session)) return { pending: 0 };
    const wasOffline = this.sessions.size === 0;
    this.sessions.set(session.connId, session);
    if (wasOffline) this.announcePresence(true);
    // Everything not yet acknowledged as delivered goes to the new session; clients
    // de-duplicate by messageId, so a message racing this replay is harmless.
    const pending = await this.deps.storage.messages.pendingFor(this.userId, 1000);
    for (const m of pending) {
      const view: MessageView = { messageId: m.messageId, matchId: m.matchId, from: m.senderId, to: m.recipientId, body: m.body, sentAt: m.sentAt };
      this.pushTo([session], { type: 'message', message: view, offline: true });
    }
    return { pending: pending.length };
  }

  /**
   * An XMPP resource names one session of an account (RFC 6120 §7.7.2.2): a newer session
   * binding the same resource, on any node, replaces the older one, which is told to end.
   * It is forgotten at once (its detach, if it comes, then finds nothing). Newer = the later
   * connection id (time-ordered): a stale session re-attached after a shard move or an outage
   * is the one told to end, not the session that replaced it. False: `session` is that stale one.
   */
  private replaceSameResource(session: SessionRecord): boolean {
    if (session.transport !== 'xmpp') return true;
    for (const other of this.sessions.values()) {
      if (other.transport !== 'xmpp' || other.device !== session.device || other.connId === session.connId) continue;
      if (other.connId > session.connId) {
        this.pushTo([session], { type: 'replaced' });
        return false;
      }
      this.sessions.delete(other.connId);
      this.pushTo([other], { type: 'replaced' });
    }
    return true;
  }

  private async detach(connId: string): Promise<void> {
    if (!this.sessions.delete(connId) || this.sessions.size > 0) return;
    this.lastActiveAt = this.deps.clock.now();
    this.announcePresence(false);
    await this.deps.storage.profiles.touchLastActive(this.userId, this.lastActiveAt);
  }

  /**
   * The node holding these sessions died (membership stopped hearing it): its connections
   * are gone, so they no longer count as online. Undelivered messages stay pending in
   * storage and are replayed when the user's client reconnects anywhere.
   */
  private async dropSessionsOf(nodeId: string): Promise<void> {
    let dropped = 0;
    for (const [connId, s] of this.sessions) {
      if (s.nodeId === nodeId) {
        this.sessions.delete(connId);
        dropped++;
      }
    }
    if (dropped === 0 || this.sessions.size > 0) return;
    this.lastActiveAt = this.deps.clock.now();
    this.announcePresence(false);
    await this.deps.storage.profiles.touchLastActive(this.userId, this.lastActiveAt);
  }

  private announcePresence(online: boolean): void {
    if (!this.showPresence) return;
    const lastActiveAt = this.deps.clock.now();
    const detail = online ? { show: this.show, ...(this.status !== undefined ? { status: this.status } : {}) } : {};
    if (!online) {
      this.show = 'available';
      this.status = undefined;
    }
    for (const [peerId, m] of this.matches) {
      if (m.active) this.deps.users().tellIfActive(peerId, { k: 'presence', userId: this.userId, online, lastActiveAt, ...detail });
    }
  }

  private async reloadSettings(): Promise<void> {
    const profile = await this.deps.storage.profiles.get(this.userId);
    this.showPresence = profile?.showPresence ?? true;
  }

  // ---- events from other actors ---------------------------------------------

  private async onMatched(msg: Extract<UserMsg, { k: 'matched' }>): Promise<void> {
    this.matches.set(msg.peerId, { matchId: msg.matchId, firstBucket: msg.firstBucket, active: true });
    const peer = await this.deps.views.publicView(msg.peerId, this.deps.clock.now());
    if (peer) this.push({ type: 'match', matchId: msg.matchId, peer, at: msg.at, superlike: msg.superlike });
  }

  private onEnded(matchId: string, peerId: string, blockedByPeer: boolean): void {
    const m = this.matches.get(peerId);
    if (m) m.active = false;
    if (blockedByPeer) this.blocked.add(peerId);
    this.push({ type: 'unmatch', matchId, userId: peerId });
  }

  private async onSuperliked(fromId: string): Promise<void> {
    if (this.blocked.has(fromId) || this.sessions.size === 0) return;
    const from = await this.deps.views.publicView(fromId, this.deps.clock.now());
    if (from) this.push({ type: 'superlike', from });
  }

  // ---- helpers ----------------------------------------------------------------

  private isMatchedWith(userId: string): boolean {
    return this.matches.get(userId)?.active === true;
  }

  /** The active match with `peerId`, consulting storage when a `matched` tell has not arrived yet. */
  private async activeMatch(peerId: string): Promise<MatchState> {
    const match = this.matches.get(peerId) ?? (await this.loadMatch(peerId));
    if (match?.active) return match;
    if (this.deps.config.messaging === 'open' && !match && !this.blocked.has(peerId)) return this.openConversation(peerId);
    throw new KindredError('NOT_MATCHED');
  }

  /** Open messaging (an ordinary XMPP server's rules): any two registered users may talk. */
  private async openConversation(peerId: string): Promise<MatchState> {
    const { storage, clock } = this.deps;
    if (peerId === this.userId || !(await storage.accounts.byId(peerId))) throw new KindredError('NOT_FOUND', 'no such user');
    const now = clock.now();
    const { created, match } = await storage.matches.createIfAbsent({
      matchId: newId(now),
      users: [this.userId, peerId].sort() as [string, string],
      createdAt: now,
      endedAt: null,
      endedBy: null,
      firstBucket: monthBucket(now),
    });
    if (match.endedAt !== null) throw new KindredError('NOT_MATCHED');
    const state = { matchId: match.matchId, firstBucket: match.firstBucket, active: true };
    this.matches.set(peerId, state);
    if (created) {
      const base = { matchId: match.matchId, firstBucket: match.firstBucket, superlike: false, at: match.createdAt };
      this.deps.users().tell(this.userId, { k: 'matched', peerId, ...base });
      this.deps.users().tell(peerId, { k: 'matched', peerId: this.userId, ...base });
    }
    return state;
  }

  private async loadMatch(peerId: string): Promise<MatchState | undefined> {
    if (typeof peerId !== 'string') return undefined;
    const m = await this.deps.storage.matches.byPair(this.userId, peerId);
    if (!m) return undefined;
    const state = { matchId: m.matchId, firstBucket: m.firstBucket, active: m.endedAt === null };
    this.matches.set(peerId, state);
    return state;
  }

  private hasSessionsBesides(connId: string | undefined): boolean {
    return this.sessions.size > (connId !== undefined && this.sessions.has(connId) ? 1 : 0);
  }

  /**
   * `owned`: the event was built for this push alone and nothing here keeps it, so it may be
   * handed over to the bus (see HandOver in bus.ts) instead of copied.
   */
  private push(event: KindredEvent, exceptConnId?: string, owned = false): void {
    if (!this.hasSessionsBesides(exceptConnId)) return;
    const targets: SessionRecord[] = [];
    for (const s of this.sessions.values()) if (s.connId !== exceptConnId) targets.push(s);
    this.pushTo(targets, event, owned);
  }

  private pushTo(sessions: SessionRecord[], event: KindredEvent, owned = false): void {
    // Usually all of a user's sessions are on one node: one delivery, no grouping needed.
    const nodeId = sessions[0]?.nodeId;
    if (nodeId !== undefined && sessions.every((s) => s.nodeId === nodeId)) {
      const delivery: SessionDelivery = { connIds: sessions.map((s) => s.connId), event };
      this.deps.bus.publish(nodeDeliverySubject(nodeId), owned ? handOver(delivery) : delivery);
      return;
    }
    const byNode = new Map<string, string[]>();
    for (const s of sessions) {
      const list = byNode.get(s.nodeId);
      if (list) list.push(s.connId);
      else byNode.set(s.nodeId, [s.connId]);
    }
    // The deliveries share `event`, so at most the last one is handed over: a bus copies
    // the others as they are published, before any receiver runs.
    let left = byNode.size;
    for (const [nodeId, connIds] of byNode) {
      const delivery: SessionDelivery = { connIds, event };
      this.deps.bus.publish(nodeDeliverySubject(nodeId), owned && --left === 0 ? handOver(delivery) : delivery);
    }
  }
}
