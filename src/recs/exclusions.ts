/**
 * Who must not appear in a user's deck (swiped, matched, blocked either way) and who super
 * liked them, cached per user on this node: read from storage on a user's first deck, then
 * kept current by swipe events (every node receives them) and dropped on blocks, after
 * `ttlMs`, or when more than `maxUsers` users are cached (least recently used first).
 */
import type { Storage, SwipeKind } from '../storage/types.js';

export class Exclusions {
  constructor(
    readonly swiped: Set<string>,
    /** matched or blocked either way */
    readonly others: Set<string>,
    readonly superLikers: Set<string>,
    readonly loadedAt: number,
  ) {}

  *excluded(): Iterable<string> {
    yield* this.swiped;
    yield* this.others;
  }
}

export class ExclusionCache {
  private readonly users = new Map<string, Exclusions>();
  private readonly loading = new Map<string, Promise<Exclusions>>();

  constructor(
    private readonly storage: Storage,
    private readonly maxUsers: number,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  async get(userId: string): Promise<Exclusions> {
    const hit = this.users.get(userId);
    if (hit && this.now() - hit.loadedAt < this.ttlMs) {
      // refresh its place in the LRU order
      this.users.delete(userId);
      this.users.set(userId, hit);
      return hit;
    }
    let p = this.loading.get(userId);
    if (!p) {
      p = this.load(userId).finally(() => this.loading.delete(userId));
      this.loading.set(userId, p);
    }
    return p;
  }

  private async load(userId: string): Promise<Exclusions> {
    const at = this.now();
    const { swipes, matches, blocks } = this.storage;
    const [swiped, matched, blocked, superLikers] = await Promise.all([
      swipes.swipedBy(userId),
      matches.listForUser(userId),
      blocks.blockedEitherWay(userId),
      swipes.superLikersOf(userId),
    ]);
    const others = new Set(blocked);
    for (const m of matched) others.add(m.users[0] === userId ? m.users[1] : m.users[0]);
    const e = new Exclusions(new Set(swiped), others, new Set(superLikers), at);
    this.users.set(userId, e);
    while (this.users.size > this.maxUsers) this.users.delete(this.users.keys().next().value!);
    return e;
  }

  /** A swipe anywhere: the swiper never sees the target again; a super like boosts the swiper in the target's deck. */
  swiped(swiperId: string, targetId: string, kind: SwipeKind): void {
    this.users.get(swiperId)?.swiped.add(targetId);
    if (kind === 'superlike') this.users.get(targetId)?.superLikers.add(swiperId);
  }

  forget(userId: string): void {
    this.users.delete(userId);
  }
}
