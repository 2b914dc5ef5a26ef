/**
 * Applies the rendezvous placement (placement.ts) over the live members
 * (membership.ts) to this node's ShardMap, with a lease per shard in a NATS JetStream
 * KV bucket so that a shard has at most one live owner:
 *
 * - acquiring: `kv.create("shard.<n>", nodeId)` succeeds only when nobody holds the
 *   lease (never written, deleted by its previous owner, or expired with the bucket's
 *   TTL after its owner died). Then the node hosts the shard (ActorSystem subscribes),
 *   flushes, and announces `{owner, shards}` on `kindred.cluster.shards`; every node
 *   then re-registers its live sessions of users in those shards (`onMoved`).
 * - renewing: every `renewMs` each lease is rewritten with compare-and-set
 *   (`kv.update(key, nodeId, revision)`); a failed CAS means it was lost: stop hosting.
 * - releasing (placement moved the shard away, or stop()): stop hosting, wait until the
 *   shard's actors are passivated, then delete the lease (CAS on our revision). The
 *   lease is renewed while the actors drain, so the next owner cannot start early.
 * - self-fencing: a lease not renewed for `leaseTtlMs - fenceMarginMs` (e.g. NATS is
 *   unreachable) is dropped and the shard no longer hosted here: by the time its lease
 *   expires and another node takes it, this node has stopped serving it.
 */
import type { KV, NatsConnection } from 'nats';
import type { Bus, Subscription } from '../actors/bus.js';
import type { ShardMap } from '../actors/shards.js';
import type { Membership } from './membership.js';
import { place } from './placement.js';

export const SHARDS_SUBJECT = 'kindred.cluster.shards';

export interface ShardsAnnouncement {
  owner: string;
  shards: number[];
}

export interface ShardManagerOptions {
  nodeId: string;
  bus: Bus & { flush(): Promise<void> };
  nc: NatsConnection;
  shards: ShardMap;
  membership: Membership;
  /** resolves once this node no longer runs any actor of the shard (ActorSystem.whenReleased) */
  released: (shard: number) => Promise<void>;
  /** on every node, after `owner` started hosting `shard` */
  onMoved?: (shard: number, owner: string) => void;
  bucket?: string;
  /** the bucket's TTL: how long a lease lives without renewal. Default 5000. */
  leaseTtlMs?: number;
  /** Default 1000. */
  renewMs?: number;
  /** a lease not renewed for leaseTtlMs - fenceMarginMs is given up. Default 1500. */
  fenceMarginMs?: number;
  /** how long to listen for heartbeats before the first placement. Default 1200. */
  settleMs?: number;
  /** timeout of each JetStream request. Default 2000. */
  kvTimeoutMs?: number;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

interface Lease {
  revision: number;
  /** when the last successful write was sent (conservative: before the reply) */
  renewedAt: number;
  state: 'hosting' | 'releasing';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

function isWrongSequence(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string } | undefined;
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(String(e?.message ?? ''));
}

export class ShardManager {
  private kv!: KV;
  private readonly leases = new Map<number, Lease>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private sub: Subscription | undefined;
  private unlisten: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private settled = false;
  private readyOnce = false;
  private stopped = false;
  private desired: Array<string | undefined> = [];
  private readonly ttl: number;
  private readonly renewMs: number;
  private readonly fenceAfter: number;

  constructor(private readonly o: ShardManagerOptions) {
    this.ttl = o.leaseTtlMs ?? 5000;
    this.renewMs = o.renewMs ?? 1000;
    this.fenceAfter = this.ttl - (o.fenceMarginMs ?? 1500);
  }

  private key(shard: number): string {
    return `shard.${shard}`;
  }

  async start(): Promise<void> {
    const js = this.o.nc.jetstream({ timeout: this.o.kvTimeoutMs ?? 2000 });
    this.kv = await js.views.kv(this.o.bucket ?? 'kindred-shard-leases', { ttl: this.ttl, history: 1 });
    this.sub = this.o.bus.subscribe(SHARDS_SUBJECT, (p) => this.announced(p as ShardsAnnouncement));
    await this.o.bus.flush();
    this.unlisten = this.o.membership.onChange(() => this.kick());
    this.timer = setInterval(() => this.kick(), this.renewMs);
    this.timer.unref();
    // on its own timer: a renewal hanging on an unreachable server must not delay it
    this.fenceTimer = setInterval(() => this.fence(), 250);
    this.fenceTimer.unref();
    await sleep(this.o.settleMs ?? 1200);
    this.settled = true;
    this.kick();
  }

  /**
   * Whether this node may run actors of `shard` right now: it holds the lease (hosting,
   * or releasing while its actors drain) and renewed it within the fencing window. Pure
   * arithmetic on the wall clock, so it is right even when the fencing timer has not run
   * yet (the event loop was stalled).
   */
  mayServe(shard: number): boolean {
    const lease = this.leases.get(shard);
    return lease !== undefined && Date.now() - lease.renewedAt <= this.fenceAfter;
  }

  /** Shards this node holds a lease for and hosts. */
  held(): number[] {
    return [...this.leases].filter(([, l]) => l.state === 'hosting').map(([s]) => s);
  }

  /**
   * True once every shard the placement gives this node has been leased and hosted here
   * (latched: later hand-overs, e.g. taking a dead node's shards for ~5 s, do not take a
   * serving node out of a load balancer), false again once stopping.
   */
  isReady(): boolean {
    if (!this.settled || this.stopped || this.desired.length === 0) return false;
    if (this.readyOnce) return true;
    for (let s = 0; s < this.desired.length; s++) {
      if (this.desired[s] === this.o.nodeId && this.leases.get(s)?.state !== 'hosting') return false;
    }
    this.readyOnce = true;
    return true;
  }

  /** Resolves once isReady() (or rejects after timeoutMs). */
  async whenReady(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.isReady()) {
      if (Date.now() > end) throw new Error(`${this.o.nodeId}: shard leases not acquired within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /** Releases every shard (actors passivated, leases deleted). Call after membership.stop(). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.fenceTimer);
    this.unlisten?.();
    await this.running?.catch(() => undefined);
    for (const shard of this.leases.keys()) this.release(shard);
    await Promise.allSettled([...this.inFlight]);
    this.sub?.unsubscribe();
  }

  /** Runs a reconciliation now (or right after the one running). */
  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.tick()
      .catch((err) => this.o.log?.('shard reconciliation failed', { err: String(err) }))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async tick(): Promise<void> {
    await this.renew();
    this.fence();
    if (!this.settled || this.stopped) return;
    this.desired = place(this.o.shards.shardCount, this.o.membership.members());
    for (const [shard, lease] of this.leases) {
      if (lease.state === 'hosting' && this.desired[shard] !== this.o.nodeId) this.release(shard);
    }
    const wanted: number[] = [];
    for (let s = 0; s < this.desired.length; s++) if (this.desired[s] === this.o.nodeId && !this.leases.has(s)) wanted.push(s);
    if (wanted.length > 0) await this.acquire(wanted);
  }

  private async renew(): Promise<void> {
    await Promise.all(
      [...this.leases].map(async ([shard, lease]) => {
        const sentAt = Date.now();
        try {
          const revision = await this.kv.update(this.key(shard), this.o.nodeId, lease.revision);
          if (this.leases.get(shard) === lease) {
            lease.revision = revision;
            lease.renewedAt = sentAt;
          }
        } catch (err) {
          if (isWrongSequence(err) && this.leases.get(shard) === lease) {
            this.o.log?.('shard lease lost', { shard });
            this.drop(shard);
          }
        }
      }),
    );
  }

  private fence(): void {
    const now = Date.now();
    for (const [shard, lease] of this.leases) {
      if (lease.state === 'hosting' && now - lease.renewedAt > this.fenceAfter) {
        this.o.log?.('shard lease not renewed in time: no longer hosting it', { shard, sinceMs: now - lease.renewedAt });
        this.drop(shard);
      }
    }
  }

  /** Stops hosting without touching the lease (lost, or it cannot be reached). */
  private drop(shard: number): void {
    this.leases.delete(shard);
    if (this.o.shards.ownerOf(shard) === this.o.nodeId) this.o.shards.assign(shard, undefined);
  }

  private release(shard: number): void {
    const lease = this.leases.get(shard);
    if (!lease || lease.state === 'releasing') return;
    lease.state = 'releasing';
    if (this.o.shards.ownerOf(shard) === this.o.nodeId) this.o.shards.assign(shard, undefined);
    const done = (async () => {
      await this.o.released(shard).catch(() => undefined);
      if (this.leases.get(shard) !== lease) return;
      try {
        await this.kv.delete(this.key(shard), { previousSeq: lease.revision });
      } catch {
        /* lost meanwhile, or unreachable: it expires with the TTL */
      }
      if (this.leases.get(shard) === lease) this.leases.delete(shard);
    })();
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  private async tryLease(shard: number): Promise<number | undefined> {
    const key = this.key(shard);
    try {
      return await this.kv.create(key, this.o.nodeId);
    } catch {
      // Held by someone, unless it is a lease of an earlier run of this very node id.
      try {
        const e = await this.kv.get(key);
        if (e && e.operation === 'PUT' && e.string() === this.o.nodeId) return await this.kv.update(key, this.o.nodeId, e.revision);
      } catch {
        /* raced or unreachable: next tick */
      }
      return undefined;
    }
  }

  private async acquire(wanted: number[]): Promise<void> {
    const got: number[] = [];
    await Promise.all(
      wanted.map(async (shard) => {
        const sentAt = Date.now();
        const revision = await this.tryLease(shard);
        if (revision === undefined) return;
        if (this.stopped || this.leases.has(shard)) {
          await this.kv.delete(this.key(shard), { previousSeq: revision }).catch(() => undefined);
          return;
        }
        this.leases.set(shard, { revision, renewedAt: sentAt, state: 'hosting' });
        got.push(shard);
      }),
    );
    if (got.length === 0) return;
    got.sort((a, b) => a - b);
    for (const shard of got) this.o.shards.assign(shard, this.o.nodeId);
    // subscriptions are known to the server before anyone is told to use them
    await this.o.bus.flush().catch(() => undefined);
    const msg: ShardsAnnouncement = { owner: this.o.nodeId, shards: got };
    this.o.bus.publish(SHARDS_SUBJECT, msg);
    this.o.log?.('shards acquired', { count: got.length });
  }

  private announced(a: ShardsAnnouncement): void {
    if (typeof a?.owner !== 'string' || !Array.isArray(a.shards)) return;
    for (const shard of a.shards) {
      if (!Number.isInteger(shard) || shard < 0 || shard >= this.o.shards.shardCount) continue;
      // others' ownership is informational here (routing is by subject); never overwrite our own
      if (a.owner !== this.o.nodeId && !this.leases.has(shard)) this.o.shards.assign(shard, a.owner);
      this.o.onMoved?.(shard, a.owner);
    }
  }
}
