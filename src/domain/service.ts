/**
 * KindredService: the command layer every transport calls (CommandGateway).
 * Commands that must be serialised per user (swipes, messages, receipts, typing,
 * unmatch, block) go to the user's actor; reads and profile edits are served
 * here directly from storage.
 */
import type { ActorSystem, SendOptions } from '../actors/system.js';
import type { Bus } from '../actors/bus.js';
import type { Clock } from '../actors/clock.js';
import type { SessionHub } from '../actors/session-hub.js';
import type { ActorCommand, UserMsg } from '../actors/user-actor.js';
import type { KindredConfig } from '../config.js';
import type { Profile, Storage } from '../storage/types.js';
import type { CommandResults, PublicCommand, PublicProfile, UserCommand, MatchView, PresenceView } from './commands.js';
import type { CommandGateway, EventSink, Principal, SessionInfo } from './gateway.js';
import type { ImageService } from './images.js';
import type { Recommender } from '../recs/recommender.js';
import { KindredError } from '../errors.js';
import { newId } from '../ids.js';
import { TokenAuthority, checkCredentialsShape, hashPassword, scramVerifier, verifyPassword } from './auth.js';
import { ProfileViews, ageOn, applyPatch, birthDateForAge, emptyProfile } from './profiles.js';
import { parseUserCommand } from './validate.js';
import { startScram } from './scram.js';

export const REVOKED_SUBJECT = 'kindred.auth.revoked';

const HAND_OVER: SendOptions = { handOver: true };

export interface ServiceDeps {
  config: KindredConfig;
  storage: Storage;
  clock: Clock;
  bus: Bus;
  users: ActorSystem<UserMsg, unknown>;
  hub: SessionHub;
  tokens: TokenAuthority;
  views: ProfileViews;
  images: ImageService;
  /** key for the fake salts SCRAM gives unknown usernames (stable across restarts) */
  scramFakeSaltKey: Buffer;
  observe?: (op: string, seconds: number, ok: boolean) => void;
  /** the ranked deck (src/recs); without it the deck is the simple nearest-first storage query */
  recs?: Recommender;
}

type Results = CommandResults;

export class KindredService implements CommandGateway {
  private dummyHash: string | undefined;

  constructor(private readonly d: ServiceDeps) {}

  /** Loads revocations and follows new ones announced by any node. */
  async start(): Promise<void> {
    for (const r of await this.d.storage.revocations.active(this.d.clock.now())) this.d.tokens.markRevoked(r.tokenId, r.expiresAt);
    this.d.bus.subscribe(REVOKED_SUBJECT, (p) => {
      const { tokenId, expiresAt } = p as { tokenId: string; expiresAt: number };
      this.d.tokens.markRevoked(tokenId, expiresAt);
    });
  }

  newConnId(): string {
    return newId(this.d.clock.now());
  }

  async startScram(mechanism: 'SCRAM-SHA-1' | 'SCRAM-SHA-256', clientFirstMessage: string) {
    const exchange = await startScram(mechanism, clientFirstMessage, this.d.storage.accounts, this.d.scramFakeSaltKey, this.d.config.auth.scramIterations);
    return {
      serverFirst: exchange.serverFirst,
      finish: async (clientFinalMessage: string) => {
        const { serverFinal, userId } = await exchange.finish(clientFinalMessage);
        const t = this.d.tokens.issue(userId);
        return { serverFinal, principal: { userId, tokenId: t.tokenId, expiresAt: t.expiresAt } };
      },
    };
  }

  verifyToken(token: string): Principal {
    return this.d.tokens.verify(token);
  }

  async authenticate<C extends PublicCommand>(cmd: C): Promise<{ principal: Principal; result: Results[C['op']] }> {
    const started = performance.now();
    let ok = false;
    try {
      const out = await this.authenticateInner(cmd);
      ok = true;
      return out as { principal: Principal; result: Results[C['op']] };
    } finally {
      this.d.observe?.(String((cmd as { op?: unknown }).op), (performance.now() - started) / 1000, ok);
    }
  }

  private async authenticateInner(cmd: PublicCommand): Promise<{ principal: Principal; result: unknown }> {
    const { storage, config, clock, tokens } = this.d;
    switch (cmd?.op) {
      case 'register': {
        if (!config.auth.registration) throw new KindredError('FORBIDDEN', 'registration is disabled');
        const { username, password } = checkCredentialsShape(cmd.username, cmd.password);
        const cost = config.auth;
        const [passwordHash, scramSha1, scramSha256] = await Promise.all([
          hashPassword(password, cost),
          scramVerifier(password, 'sha1', cost.scramIterations),
          scramVerifier(password, 'sha256', cost.scramIterations),
        ]);
        const now = clock.now();
        const userId = newId(now);
        await storage.accounts.create({ userId, username, passwordHash, scramSha1, scramSha256, createdAt: now });
        const profile = emptyProfile(userId, username, now);
        await storage.profiles.put(profile);
        this.d.recs?.profileChanged(profile);
        const t = tokens.issue(userId);
        return { principal: { userId, tokenId: t.tokenId, expiresAt: t.expiresAt }, result: { userId, token: t.token, expiresAt: t.expiresAt } };
      }
      case 'login': {
        if (typeof cmd.username !== 'string' || typeof cmd.password !== 'string') throw new KindredError('INVALID_ARGUMENT', 'username and password must be strings');
        const account = await storage.accounts.byUsername(cmd.username.trim().toLowerCase());
        // Unknown usernames are checked against a dummy hash so timing does not reveal which exist.
        this.dummyHash ??= await hashPassword('not a password', config.auth);
        const ok = await verifyPassword(cmd.password.normalize('NFKC'), account?.passwordHash ?? this.dummyHash);
        if (!account || !ok) throw new KindredError('BAD_CREDENTIALS');
        const t = tokens.issue(account.userId);
        return {
          principal: { userId: account.userId, tokenId: t.tokenId, expiresAt: t.expiresAt },
          result: { userId: account.userId, token: t.token, expiresAt: t.expiresAt },
        };
      }
      case 'auth': {
        const principal = tokens.verify(cmd.token);
        return { principal, result: { userId: principal.userId, expiresAt: principal.expiresAt } };
      }
      default:
        throw new KindredError('UNKNOWN_OPERATION');
    }
  }

  async execute<C extends UserCommand>(principal: Principal, cmd: C, connId?: string): Promise<Results[C['op']]> {
    const started = performance.now();
    let ok = false;
    const op = String((cmd as { op?: unknown })?.op);
    try {
      // The token is checked again here, not only at connect: a revoked or expired
      // token stops working on long-lived connections too.
      if (principal.expiresAt <= this.d.clock.now()) throw new KindredError('TOKEN_EXPIRED');
      if (this.d.tokens.isRevoked(principal.tokenId)) throw new KindredError('TOKEN_INVALID', 'the access token was revoked');
      const parsed = parseUserCommand(cmd);
      const result = (await this.run(principal, parsed, connId)) as Results[C['op']];
      ok = true;
      return result;
    } finally {
      this.d.observe?.(op, (performance.now() - started) / 1000, ok);
    }
  }

  private run(p: Principal, cmd: UserCommand, connId: string | undefined): Promise<unknown> {
    const me = p.userId;
    switch (cmd.op) {
      case 'swipe':
        return this.d.users.ask(me, { k: 'cmd', cmd: cmd as ActorCommand, connId }).then((r) => {
          // every node's deck index and exclusion cache follow swipes (src/recs/events.ts)
          this.d.recs?.swiped(me, cmd.targetId, cmd.kind);
          return r;
        });
      case 'block':
        return this.d.users.ask(me, { k: 'cmd', cmd: cmd as ActorCommand, connId }).then((r) => {
          this.d.recs?.blocked(me, cmd.userId);
          return r;
        });
      case 'message.send':
      case 'receipt':
      case 'typing':
        // The chat path: `cmd` was just built by parseUserCommand from strings and nothing
        // here keeps it, so it is handed over to the actor (no copy on a local bus).
        return this.d.users.ask(me, { k: 'cmd', cmd: cmd as ActorCommand, connId }, HAND_OVER);
      case 'unmatch':
      case 'presence.set':
      case 'contact.add':
        return this.d.users.ask(me, { k: 'cmd', cmd: cmd as ActorCommand, connId });
      case 'message.ack':
        return this.d.storage.messages.markDelivered(me, cmd.messageIds).then(() => ({ ok: true }));
      case 'blocks.list':
        return this.d.storage.blocks.blockedBy(me).then((userIds) => ({ userIds }));
      case 'users.resolve':
        return this.resolve(cmd.usernames ?? [], cmd.userIds ?? []);
      case 'ping':
        return Promise.resolve({ now: this.d.clock.now() });
      case 'logout':
        return this.logout(p);
      case 'profile.get':
        return this.profile(me, cmd.userId);
      case 'profile.update':
        return this.updateProfile(me, cmd.patch);
      case 'images.upload':
        return this.d.images.upload(me, cmd.data, cmd.contentType).then((image) => ({ image }));
      case 'images.list':
        return this.images(me, cmd.userId ?? me);
      case 'images.remove':
        return this.d.images.remove(me, cmd.imageId).then(() => ({ ok: true }));
      case 'images.reorder':
        return this.d.images.reorder(me, cmd.imageIds).then(() => ({ ok: true }));
      case 'deck.get':
        return this.d.recs ? this.rankedDeck(me, cmd.limit ?? 20, cmd.cursor) : this.deck(me, cmd.limit ?? 20);
      case 'matches.list':
        return this.matches(me);
      case 'report':
        return this.report(me, cmd.userId, cmd.reason, cmd.details ?? '');
      case 'messages.history':
        return this.history(me, cmd.with, cmd.before, cmd.after, cmd.limit ?? 50);
      case 'presence.get':
        return this.presence(me, cmd.userIds);
    }
  }

  async openSession(principal: Principal, session: SessionInfo, sink: EventSink): Promise<void> {
    this.d.hub.add(session.connId, principal.userId, sink, { transport: session.transport, device: session.device });
    try {
      await this.d.users.ask(principal.userId, { k: 'attach', session: { ...session, nodeId: this.d.hub.nodeId } });
      this.d.recs?.active(principal.userId, this.d.clock.now());
    } catch (err) {
      this.d.hub.remove(session.connId);
      throw err;
    }
  }

  closeSession(principal: Principal, connId: string): void {
    if (this.d.hub.remove(connId)) this.d.users.tell(principal.userId, { k: 'detach', connId });
  }

  // ---- commands served without the actor --------------------------------------

  private async logout(p: Principal): Promise<Results['logout']> {
    await this.d.storage.revocations.revoke(p.tokenId, p.expiresAt);
    this.d.tokens.markRevoked(p.tokenId, p.expiresAt);
    this.d.bus.publish(REVOKED_SUBJECT, { tokenId: p.tokenId, expiresAt: p.expiresAt });
    return { ok: true };
  }

  private async profile(me: string, userId: string | undefined): Promise<Results['profile.get']> {
    const now = this.d.clock.now();
    const target = userId ?? me;
    const [profile, images] = await Promise.all([this.d.storage.profiles.get(target), this.d.images.list(target)]);
    if (!profile) throw new KindredError('NOT_FOUND', 'no such user');
    if (target !== me) {
      const blocked = await this.d.storage.blocks.blockedEitherWay(me);
      if (blocked.has(target)) throw new KindredError('NOT_FOUND', 'no such user');
      const mine = await this.d.storage.profiles.get(me);
      return { profile: this.d.views.toPublic(profile, images, now, mine?.location) };
    }
    const view = this.d.views.toPublic(profile, images, now);
    return {
      profile: { ...view, birthDate: profile.birthDate, preferences: profile.preferences, location: profile.location, showPresence: profile.showPresence },
    };
  }

  private async images(me: string, target: string): Promise<Results['images.list']> {
    if (target !== me && (await this.d.storage.blocks.blockedEitherWay(me)).has(target)) throw new KindredError('NOT_FOUND', 'no such user');
    return { images: await this.d.images.list(target) };
  }

  private async updateProfile(me: string, patch: unknown): Promise<Results['profile.update']> {
    const now = this.d.clock.now();
    const current = await this.d.storage.profiles.get(me);
    if (!current) throw new KindredError('NOT_FOUND', 'no profile');
    const next = applyPatch(current, patch, now);
    await this.d.storage.profiles.put(next);
    this.d.recs?.profileChanged(next);
    if (next.showPresence !== current.showPresence) this.d.users.tellIfActive(me, { k: 'settings.changed' });
    return { ok: true };
  }

  /**
   * The ranked deck (src/recs, docs/recommendations.md): a worker picks the page from the
   * node's index; the cards are then read from storage. Someone blocked since (on any node)
   * is dropped here too, as the index's caches may not have heard of it yet.
   */
  private async rankedDeck(me: string, limit: number, cursor: string | undefined): Promise<Results['deck.get']> {
    const { storage, clock, views } = this.d;
    const now = clock.now();
    const mine = await storage.profiles.get(me);
    if (!mine) throw new KindredError('NOT_FOUND', 'no profile');
    if (!mine.location) throw new KindredError('INVALID_ARGUMENT', 'location: set your location to get a deck');
    const [page, blocked] = await Promise.all([this.d.recs!.deck(mine, limit, cursor), storage.blocks.blockedEitherWay(me)]);
    const ids = page.userIds.filter((id) => !blocked.has(id));
    const [profiles, images] = await Promise.all([storage.profiles.getMany(ids), Promise.all(ids.map((id) => storage.images.list(id)))]);
    const byId = new Map(profiles.map((p) => [p.userId, p]));
    const cards = [];
    for (let i = 0; i < ids.length; i++) {
      const p = byId.get(ids[i]!);
      if (p) cards.push(views.toPublic(p, images[i]!, now, mine.location));
    }
    return { cards, next: page.next, ...(page.refreshed ? { refreshed: true } : {}) };
  }

  /** The simple filtered deck, without a recommender: nearest first. */
  private async deck(me: string, limit: number): Promise<Results['deck.get']> {
    const { storage, clock, views } = this.d;
    const now = clock.now();
    const mine = await storage.profiles.get(me);
    if (!mine) throw new KindredError('NOT_FOUND', 'no profile');
    if (!mine.location) throw new KindredError('INVALID_ARGUMENT', 'location: set your location to get a deck');
    const prefs = mine.preferences;
    const blocked = await storage.blocks.blockedEitherWay(me);
    // Nearest first; people already swiped are skipped, so widen the window until
    // the deck is full or nobody else fits (a bounded number of rounds).
    let window = limit * 5 + 50;
    let chosen: Profile[] = [];
    for (let round = 0; round < 6; round++) {
      const candidates = await storage.profiles.candidates({
        userId: me,
        near: mine.location,
        radiusKm: prefs.maxDistanceKm,
        genders: prefs.genders,
        bornOnOrAfter: birthDateForAge(prefs.ageMax, now, true),
        bornOnOrBefore: birthDateForAge(prefs.ageMin, now, false),
        seekerGender: mine.gender,
        seekerAge: ageOn(mine.birthDate, now),
        limit: window,
      });
      const swiped = await storage.swipes.swipedAmong(me, candidates.map((c) => c.userId));
      chosen = candidates.filter((c) => !swiped.has(c.userId) && !blocked.has(c.userId)).slice(0, limit);
      if (chosen.length === limit || candidates.length < window) break;
      window *= 4;
    }
    const images = await Promise.all(chosen.map((c) => storage.images.list(c.userId)));
    return { cards: chosen.map((c, i) => views.toPublic(c, images[i]!, now, mine.location)) };
  }

  private async matches(me: string): Promise<Results['matches.list']> {
    const { storage, clock, views } = this.d;
    const now = clock.now();
    const all = await storage.matches.listForUser(me);
    const out: MatchView[] = [];
    const peers = await Promise.all(all.map((m) => views.publicView(m.users[0] === me ? m.users[1] : m.users[0], now)));
    all.forEach((m, i) => {
      const peer = peers[i];
      if (peer) out.push({ matchId: m.matchId, peer, createdAt: m.createdAt, ended: m.endedAt !== null });
    });
    return { matches: out };
  }

  private async report(me: string, userId: string, reason: string, details: string): Promise<Results['report']> {
    if (userId === me) throw new KindredError('INVALID_ARGUMENT', 'userId: you cannot report yourself');
    if (!(await this.d.storage.accounts.byId(userId))) throw new KindredError('NOT_FOUND', 'no such user');
    const reportId = newId(this.d.clock.now());
    await this.d.storage.reports.add({ reportId, reporterId: me, reportedId: userId, reason, details, createdAt: this.d.clock.now() });
    return { reportId };
  }

  /**
   * One conversation, or (without `with`) the user's whole archive merged across
   * conversations, as XMPP MAM asks for. Newest first; oldest first with `after`.
   */
  private async history(me: string, peer: string | undefined, before: string | undefined, after: string | undefined, limit: number): Promise<Results['messages.history']> {
    const { storage } = this.d;
    let matches;
    if (peer !== undefined) {
      const match = await storage.matches.byPair(me, peer);
      if (!match) throw new KindredError('NOT_MATCHED');
      matches = [match];
    } else matches = await storage.matches.listForUser(me);
    const pages = await Promise.all(
      matches.map((m) =>
        after !== undefined ? storage.messages.pageAfter(m.matchId, m.firstBucket, { after, limit }) : storage.messages.page(m.matchId, m.firstBucket, { before, limit }),
      ),
    );
    const merged = pages.flat().sort((a, b) => (after !== undefined ? (a.messageId < b.messageId ? -1 : 1) : a.messageId < b.messageId ? 1 : -1));
    const page = merged.slice(0, limit);
    return {
      messages: page.map((m) => ({ messageId: m.messageId, matchId: m.matchId, from: m.senderId, to: m.recipientId, body: m.body, sentAt: m.sentAt })),
      next: merged.length > limit || (page.length === limit && pages.some((p) => p.length === limit)) ? page[page.length - 1]!.messageId : null,
    };
  }

  private async resolve(usernames: string[], userIds: string[]): Promise<Results['users.resolve']> {
    const { accounts } = this.d.storage;
    const found = await Promise.all([
      ...usernames.map((u) => accounts.byUsername(u.toLowerCase())),
      ...userIds.map((id) => accounts.byId(id)),
    ]);
    const users = new Map<string, { userId: string; username: string }>();
    for (const a of found) if (a) users.set(a.userId, { userId: a.userId, username: a.username });
    return { users: [...users.values()] };
  }

  private async presence(me: string, userIds: string[]): Promise<Results['presence.get']> {
    // Only matches may see each other's presence: the user's actor knows who they are.
    const allowed = (await this.d.users.ask(me, { k: 'peers', userIds })) as string[];
    const presence: PresenceView[] = await Promise.all(
      allowed.map(async (userId) => {
        const p = (await this.d.users.ask(userId, { k: 'presence.query' })) as { online: boolean; lastActiveAt: number | null };
        return { userId, ...p };
      }),
    );
    return { presence };
  }
}

export type { PublicProfile };
