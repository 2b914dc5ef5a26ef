/**
 * Tindr users swiping through their decks over lean native connections, one swipe at a
 * time as the open loop fires them. Used by `tindr` and `mixed`.
 *
 * Swipe k belongs to user k mod M, who takes the next card of their deck and fetches a
 * deck (`deck.get`, 20 cards) when it is empty. About `matchRate` of swipes make a match:
 * while matches are below that share, a swiper someone has liked answers that person with a
 * like first (as an app's "liked you" list offers them; in a short run few of them come up in
 * the deck itself), and a card that already liked the swiper is liked; when nobody has liked
 * the swiper yet, it likes another swiper out of deck order (at most as many such likes
 * waiting for an answer as matches are missing), so matches happen even when decks lead with
 * people who never swipe (in `mixed`, the chatting users). Otherwise a card is liked with
 * probability `likeShare` (mostly one-sided) or passed. On each match the swiper
 * sends a first message to the new match, who is online. Cards of people outside the
 * swiping set (other users of the same server) are liked or passed the same way but can
 * never match back.
 */
import type { BenchConn } from './conn.js';
import { Latency, nowMs } from './hist.js';
import { round } from './proc.js';
import { fmt, ms, type Row } from './report.js';

export class DeckSwiper {
  readonly swipeLat = new Latency();
  readonly deckLat = new Latency();
  readonly matchEventLat = new Latency();
  readonly firstMsgLat = new Latency();
  readonly errors: Record<string, number> = {};
  swipes = 0;
  swipesMeasured = 0;
  likes = 0;
  matches = 0;
  /** swipes due while the user's deck was empty or still loading */
  skipped = 0;
  firstMessages = 0;
  firstDelivered = 0;
  /** requests sent and not answered yet */
  inFlight = 0;
  /** called with each measured swipe latency (ms), e.g. for a per-second timeline */
  onMeasuredSwipe: (ms: number) => void = () => undefined;
  private readonly index: Map<string, number>;
  private readonly decks: string[][];
  private readonly fetching: Uint8Array;
  private readonly exhausted: Uint8Array;
  private readonly likedBy: Array<Set<number>>;
  /** people each user already answered out of deck order (their card is skipped if it comes up) */
  private readonly answered: Array<Set<string>>;
  /** likes sent to make a match, not answered yet (so matches do not overshoot the share) */
  private matchLikesInFlight = 0;
  /** swipers liked out of deck order to start a match, until they answer */
  private readonly seeded = new Set<number>();
  private readonly pendingMatchAt = new Map<string, number>();

  constructor(
    private readonly userIds: readonly string[],
    private readonly conns: readonly BenchConn[],
    private readonly opts: { matchRate: number; likeShare: number },
  ) {
    this.index = new Map(userIds.map((id, i) => [id, i]));
    this.decks = userIds.map(() => []);
    this.fetching = new Uint8Array(userIds.length);
    this.exhausted = new Uint8Array(userIds.length);
    this.likedBy = userIds.map(() => new Set());
    this.answered = userIds.map(() => new Set());
    conns.forEach((c, i) => (c.onEvent = (e) => this.onEvent(i, e)));
  }

  private err(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  private onEvent(i: number, e: any): void {
    const now = nowMs();
    if (e.type === 'match') {
      const other = (e.peer?.userId ?? '') as string;
      const at = this.pendingMatchAt.get(`${other}>${this.userIds[i]!}`);
      if (at !== undefined) this.matchEventLat.recordMs(now - at);
    } else if (e.type === 'message' && typeof e.message?.body === 'string' && e.message.body.startsWith('hi|')) {
      this.firstDelivered++;
      this.firstMsgLat.recordMs(now - Number(e.message.body.slice(3)));
    }
  }

  /** Swipe `k`, due at `intended`; recorded in the latency figures when `measured`. */
  due(k: number, intended: number, measured: boolean): void {
    const u = k % this.userIds.length;
    if (this.exhausted[u]) {
      this.skipped++;
      return;
    }
    if (this.decks[u]!.length > 0) this.swipe(u, intended, measured);
    else if (!this.fetching[u]) this.fetchDeck(u, () => this.swipe(u, intended, measured));
    else this.skipped++;
  }

  private fetchDeck(u: number, then: () => void): void {
    this.fetching[u] = 1;
    this.inFlight++;
    const t = nowMs();
    this.conns[u]!.call('deck.get', { limit: 20 }, (e, res) => {
      this.inFlight--;
      this.fetching[u] = 0;
      this.deckLat.recordMs(nowMs() - t);
      if (e) return this.err(`deck.get ${e.code}`);
      const cards = (res.cards as Array<{ userId: string }>).map((c) => c.userId);
      if (cards.length === 0) this.exhausted[u] = 1;
      this.decks[u]!.push(...cards);
      then();
    });
  }

  /** matches still missing for the target share (counting the likes on their way to make one) */
  private matchDeficit(): number {
    return Math.max(1, Math.floor(this.swipes * this.opts.matchRate)) - this.matches - this.matchLikesInFlight;
  }

  private matchDue(): boolean {
    return this.matchDeficit() > 0;
  }

  /** Another swiper `u` has not answered, to like out of deck order, when a match must be started. */
  private seedFor(u: number): number | undefined {
    if (this.seeded.size >= this.matchDeficit() || this.userIds.length < 2) return undefined;
    for (let tries = 0; tries < 5; tries++) {
      const c = Math.floor(Math.random() * this.userIds.length);
      if (c !== u && !this.answered[u]!.has(this.userIds[c]!) && !this.likedBy[c]!.has(u)) return c;
    }
    return undefined;
  }

  /** Someone who liked `u` and whom `u` has not answered yet, if any. */
  private liker(u: number): number | undefined {
    for (const c of this.likedBy[u]!) if (!this.answered[u]!.has(this.userIds[c]!)) return c;
    return undefined;
  }

  private swipe(u: number, intended: number, measured: boolean): void {
    const liker = this.matchDue() ? this.liker(u) : undefined;
    const seed = liker === undefined && this.matchDue() ? this.seedFor(u) : undefined;
    const outOfOrder = liker ?? seed;
    let card: string | undefined;
    if (outOfOrder !== undefined) {
      card = this.userIds[outOfOrder]!;
      this.answered[u]!.add(card);
      if (liker !== undefined) this.seeded.delete(u);
      else this.seeded.add(outOfOrder);
    } else {
      do card = this.decks[u]!.shift();
      while (card !== undefined && this.answered[u]!.has(card));
    }
    if (!card) {
      this.skipped++;
      return;
    }
    const c = this.index.get(card);
    const likedMe = c !== undefined && this.likedBy[u]!.has(c);
    const wantMatch = likedMe && this.matchDue();
    const kind = wantMatch || seed !== undefined || (!likedMe && Math.random() < this.opts.likeShare) ? 'like' : 'pass';
    this.swipes++;
    if (kind === 'like') {
      this.likes++;
      if (c !== undefined) this.likedBy[c]!.add(u);
    }
    if (wantMatch) this.matchLikesInFlight++;
    const sentAt = nowMs();
    this.inFlight++;
    this.conns[u]!.call('swipe', { targetId: card, kind }, (e, res) => {
      this.inFlight--;
      if (wantMatch) this.matchLikesInFlight--;
      const now = nowMs();
      if (e) return this.err(`swipe ${e.code}`);
      if (measured) {
        this.swipeLat.recordMs(now - intended);
        this.onMeasuredSwipe(now - intended);
        this.swipesMeasured++;
      }
      if (res?.matched) {
        this.matches++;
        this.pendingMatchAt.set(`${this.userIds[u]!}>${card}`, sentAt);
        this.firstMessages++;
        this.inFlight++;
        this.conns[u]!.call('message.send', { to: card, body: `hi|${nowMs().toFixed(3)}` }, (e2) => {
          this.inFlight--;
          if (e2) this.err(`message.send ${e2.code}`);
        });
      }
    });
  }

  /** The figures, in the order the tindr result has always listed them. */
  summary(measuredSeconds: number) {
    return {
      swipes: this.swipes,
      swipesPerSecond: Math.round(this.swipesMeasured / measuredSeconds),
      skipped: this.skipped,
      likes: this.likes,
      matches: this.matches,
      matchShare: this.swipes ? round(this.matches / this.swipes, 5) : 0,
      firstMessages: this.firstMessages,
      firstDelivered: this.firstDelivered,
      swipeLatencyMs: this.swipeLat.summary(),
      deckLatencyMs: this.deckLat.summary(),
      matchEventLatencyMs: this.matchEventLat.summary(),
      firstMessageLatencyMs: this.firstMsgLat.summary(),
      errors: this.errors,
    };
  }

  /** Report rows for `summary(...)`. */
  rows(s: ReturnType<DeckSwiper['summary']>): Row[] {
    const l = s.swipeLatencyMs;
    const d = s.deckLatencyMs;
    return [
      ['swipes measured / per second', `${fmt(this.swipesMeasured)} / ${fmt(s.swipesPerSecond)}`],
      ['swipe p50 / p99 / max (from intended time)', `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}`],
      ['deck.get p50 / p99 (count)', `${ms(d.p50)} / ${ms(d.p99)} (${d.count})`],
      ['likes / matches (share of swipes)', `${s.likes} / ${s.matches} (${round(s.matchShare * 100, 3)}%)`],
      ['first messages sent / delivered, p99', `${s.firstMessages} / ${s.firstDelivered}, ${ms(s.firstMessageLatencyMs.p99)}`],
      ['skipped (deck empty or being fetched)', s.skipped],
      ['errors', JSON.stringify(s.errors)],
    ];
  }
}
