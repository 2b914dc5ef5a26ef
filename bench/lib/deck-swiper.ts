/**
 * Tindr users swiping through their decks over lean native connections, one swipe at a
 * time as the open loop fires them. Used by `tindr` and `mixed`.
 *
 * Swipe k belongs to user k mod M, who takes the next card of their deck and fetches a
 * deck (`deck.get`, 20 cards) when it is empty. About `matchRate` of swipes make a match:
 * a swipe is a like when its card already liked the swiper and matches are below that
 * share, otherwise a like with probability `likeShare` (mostly one-sided) or a pass. On each
 * match the swiper sends a first message to the new match, who is online. Cards of people
 * outside the swiping set (other users of the same server) are liked or passed the same
 * way but can never match back.
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

  private swipe(u: number, intended: number, measured: boolean): void {
    const card = this.decks[u]!.shift();
    if (!card) {
      this.skipped++;
      return;
    }
    const c = this.index.get(card);
    const likedMe = c !== undefined && this.likedBy[u]!.has(c);
    const wantMatch = likedMe && this.matches < Math.max(1, Math.floor(this.swipes * this.opts.matchRate));
    const kind = wantMatch || (!likedMe && Math.random() < this.opts.likeShare) ? 'like' : 'pass';
    this.swipes++;
    if (kind === 'like') {
      this.likes++;
      if (c !== undefined) this.likedBy[c]!.add(u);
    }
    const sentAt = nowMs();
    this.inFlight++;
    this.conns[u]!.call('swipe', { targetId: card, kind }, (e, res) => {
      this.inFlight--;
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
        this.conns[u]!.call('message.send', { to: card, body: `hi|${nowMs().toFixed(3)}` }, (e2) => e2 && this.err(`message.send ${e2.code}`));
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
