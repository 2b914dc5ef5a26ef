/**
 * Virtual actors, Orleans-style: an actor exists conceptually forever, is activated
 * on the first message for its id, processes one message at a time from a bounded
 * mailbox, and is passivated when idle. Actors are addressed only through the bus
 * (subject per shard), so the sender never knows whether the actor is on this
 * node, another node, or (later) another worker thread.
 *
 * At most one live copy: only the owner of a shard subscribes to its subject, and
 * an owner that loses a shard passivates its actors before the new owner is told
 * (the cluster's lease/fencing lives with the shard assignment, not here).
 */
import { handOver, type Bus, type Subscription } from './bus.js';
import type { ShardMap } from './shards.js';
import type { Clock } from './clock.js';
import { Mailbox, type Later } from './mailbox.js';
import { KindredError } from '../errors.js';

export interface Actor<M, R> {
  /** Loads state (from storage) before the first message. */
  activate(): Promise<void>;
  /** May answer `later(promise)` to release its turn while the reply settles (see mailbox.ts). */
  receive(msg: M): Promise<R | Later<R>> | R | Later<R>;
  /** Whether the actor may be passivated now, e.g. false while it holds live sessions. */
  canPassivate(): boolean;
  /** Flushes anything it keeps before being dropped from memory. */
  passivate(): Promise<void>;
}

interface Envelope<M> {
  id: string;
  msg: M;
  /** epoch ms after which the asker has given up: the letter is then dropped unprocessed */
  deadline?: number;
  /** 1 = only deliver if the actor is already active (do not activate it for this) */
  ifActive?: 1;
}

interface Cell<M, R> {
  actor: Actor<M, R>;
  mailbox: Mailbox<M, R>;
  ready: Promise<void>;
  /** `ready` has resolved: letters go straight to the mailbox */
  activated: boolean;
  lastUsed: number;
}

/**
 * `handOver`: the caller hands `msg` over (plain data it keeps no reference to, see
 * HandOver in bus.ts), so a bus inside this process may pass it on without a copy.
 */
export interface SendOptions {
  handOver?: boolean;
}

export interface ActorSystemOptions<M, R> {
  /** the kind of actor, part of its subjects: `kindred.actor.<kind>.<shard>` */
  kind: string;
  bus: Bus;
  shards: ShardMap;
  /** who this system hosts shards for */
  owner: string;
  create: (id: string) => Actor<M, R>;
  mailboxLimit: number;
  idleMs: number;
  askTimeoutMs: number;
  clock: Clock;
  /**
   * Cluster mode: an ask that finds nobody serving its shard (the gap while a shard moves
   * between owners) is retried until its deadline instead of failing at once, so a
   * steady client sees latency rather than errors during a handoff. Default false.
   */
  waitForOwner?: boolean;
  /**
   * Cluster mode: whether this node may run actors of `shard` at this instant (its lease
   * was renewed recently enough). Checked synchronously before a letter activates an actor
   * and again before each letter runs, so a node that stalled past its lease (GC pause,
   * SIGSTOP, CPU starvation) refuses what it finds queued on waking, before its fencing
   * timer even runs: the shard's new owner may already be serving those users.
   */
  mayServe?: (shard: number) => boolean;
}

/** Backoff between retries of an ask whose shard has no owner yet. */
const OWNER_RETRY_FIRST_MS = 50;
const OWNER_RETRY_MAX_MS = 400;
/** What `deliver` answers while this system stops: the letter was not processed. */
const NOT_HOSTED = 'actor not hosted here: node is shutting down';
/**
 * What a node answers for a shard whose lease lapsed under it. Not retried by the asker:
 * after a stall the new owner may have received the same request too.
 */
const LEASE_LAPSED = 'actor not served here: the shard lease lapsed on this node; not processed';

/**
 * Whether a failed ask certainly never reached an actor, so sending it again cannot
 * apply it twice: nobody subscribed to the shard (both buses say "no responder") or the
 * receiving system was stopping and refused it unprocessed.
 */
export function neverDelivered(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (e?.code !== 'UNAVAILABLE') return false;
  const message = String(e.message ?? '');
  return message.startsWith('no responder for ') || message === NOT_HOSTED;
}

export class ActorSystem<M, R> {
  private readonly cells = new Map<string, Cell<M, R>>();
  private readonly subscriptions = new Map<number, Subscription>();
  private readonly releasing = new Map<number, Promise<void>>();
  /** asks waiting for a reply, by shard, so those sent to a node that died can be given up early */
  private readonly waiting = new Map<number, Set<(err: KindredError) => void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private unlisten: (() => void) | undefined;
  private stopping = false;
  /** subject strings by shard, built once (a string built per message is hashed anew by every Map it meets) */
  private readonly subjects: string[];

  constructor(private readonly opts: ActorSystemOptions<M, R>) {
    this.subjects = Array.from({ length: opts.shards.shardCount }, (_, shard) => `kindred.actor.${opts.kind}.${shard}`);
  }

  subject(shard: number): string {
    return this.subjects[shard] ?? `kindred.actor.${this.opts.kind}.${shard}`;
  }

  /** Subscribes to every shard this owner holds, and follows later reassignments. */
  start(): void {
    for (const shard of this.opts.shards.shardsOwnedBy(this.opts.owner)) this.host(shard);
    this.unlisten = this.opts.shards.onChange((shard, previous, next) => {
      if (next === this.opts.owner) this.host(shard);
      else if (previous === this.opts.owner) {
        const done = this.release(shard);
        this.releasing.set(shard, done);
        void done.finally(() => {
          if (this.releasing.get(shard) === done) this.releasing.delete(shard);
        });
      }
    });
    const every = Math.max(1000, Math.floor(this.opts.idleMs / 2));
    this.sweepTimer = setInterval(() => void this.sweep(), every);
    this.sweepTimer.unref();
  }

  /** Request/reply to the actor `id`, wherever it lives. */
  ask(id: string, msg: M, how?: SendOptions): Promise<R> {
    // The deadline is a little shorter than the bus timeout, so a request the asker
    // reports as timed out has certainly not been (and will not be) processed.
    const envelope: Envelope<M> = { id, msg, deadline: this.opts.clock.now() + Math.max(1, this.opts.askTimeoutMs - 250) };
    const payload = how?.handOver ? handOver(envelope) : envelope;
    const shard = this.opts.shards.shardOf(id);
    const subject = this.subject(shard);
    if (!this.opts.waitForOwner) return this.opts.bus.request(subject, payload, this.opts.askTimeoutMs) as Promise<R>;
    return this.askUntilOwned(shard, subject, payload);
  }

  /**
   * The node `owner` died (membership stopped hearing it): asks waiting for a reply from a
   * shard it owned get `TIMEOUT` now instead of at their timeout. The dead node may have
   * processed them before dying, exactly as with a timeout; a `message.send` resent with the
   * same clientId is recognised by the shard's next owner.
   */
  abandonAsksTo(owner: string): number {
    let n = 0;
    for (const [shard, asks] of this.waiting) {
      if (this.opts.shards.ownerOf(shard) !== owner) continue;
      const err = new KindredError('TIMEOUT', `the node serving this actor (${owner}) died; the request may or may not have been processed`);
      for (const abandon of asks) {
        abandon(err);
        n++;
      }
      this.waiting.delete(shard);
    }
    return n;
  }

  /**
   * Asks, and while the shard has no owner (released by one node, not yet leased by the
   * next: up to the lease TTL after a node dies) asks again with backoff. Only letters
   * that never reached an actor are re-sent, and all within the one ask timeout, measured
   * in real time (the actor clock may be a test's manual clock).
   */
  private async askUntilOwned(shard: number, subject: string, envelope: unknown): Promise<R> {
    const end = Date.now() + this.opts.askTimeoutMs;
    let backoff = OWNER_RETRY_FIRST_MS;
    for (;;) {
      let abandon!: (err: KindredError) => void;
      const abandoned = new Promise<never>((_, reject) => (abandon = reject));
      let asks = this.waiting.get(shard);
      if (!asks) this.waiting.set(shard, (asks = new Set()));
      asks.add(abandon);
      let failure: unknown;
      try {
        return (await Promise.race([this.opts.bus.request(subject, envelope, Math.max(1, end - Date.now())), abandoned])) as R;
      } catch (err) {
        failure = err;
      } finally {
        asks.delete(abandon);
        if (asks.size === 0 && this.waiting.get(shard) === asks) this.waiting.delete(shard);
      }
      // the last retry leaves 250 ms to be answered
      const wait = Math.min(backoff, end - 250 - Date.now());
      if (!neverDelivered(failure) || this.stopping || wait <= 0) throw failure;
      await new Promise((r) => setTimeout(r, wait));
      backoff = Math.min(backoff * 2, OWNER_RETRY_MAX_MS);
    }
  }

  /** Fire-and-forget to the actor `id`, activating it if needed. */
  tell(id: string, msg: M, how?: SendOptions): void {
    const envelope: Envelope<M> = { id, msg };
    this.opts.bus.publish(this.subject(this.opts.shards.shardOf(id)), how?.handOver ? handOver(envelope) : envelope);
  }

  /** Fire-and-forget that is dropped unless the actor is already active (presence, typing to offline users). */
  tellIfActive(id: string, msg: M): void {
    const envelope: Envelope<M> = { id, msg, ifActive: 1 };
    this.opts.bus.publish(this.subject(this.opts.shards.shardOf(id)), envelope);
  }

  /**
   * Posts `msg` to every actor active on this node (e.g. "node X is dead: drop its
   * sessions"). Each actor handles it in its mailbox order, like any other letter; an actor
   * whose mailbox is full misses it (it is bounded work, not a guarantee).
   */
  tellLocal(msg: M): number {
    let n = 0;
    for (const cell of this.cells.values()) {
      n++;
      void cell.ready.then(() => cell.mailbox.post(msg)).catch(() => undefined);
    }
    return n;
  }

  /** Resolves once a shard taken away from this owner has no live actor here any more. */
  whenReleased(shard: number): Promise<void> {
    return this.releasing.get(shard) ?? Promise.resolve();
  }

  get activeCount(): number {
    return this.cells.size;
  }

  get mailboxDepth(): number {
    let depth = 0;
    for (const cell of this.cells.values()) depth += cell.mailbox.depth;
    return depth;
  }

  isActive(id: string): boolean {
    return this.cells.has(id);
  }

  /** Stops accepting messages, lets mailboxes drain, passivates every actor. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweepTimer);
    this.unlisten?.();
    for (const sub of this.subscriptions.values()) sub.unsubscribe();
    this.subscriptions.clear();
    await this.passivateWhere(() => true, true);
  }

  private host(shard: number): void {
    if (this.subscriptions.has(shard) || this.stopping) return;
    const sub = this.opts.bus.subscribe(this.subject(shard), (payload) => this.deliver(payload as Envelope<M>));
    this.subscriptions.set(shard, sub);
  }

  private async release(shard: number): Promise<void> {
    this.subscriptions.get(shard)?.unsubscribe();
    this.subscriptions.delete(shard);
    await this.passivateWhere((id) => this.opts.shards.shardOf(id) === shard, true);
  }

  private deliver(envelope: Envelope<M>): Promise<R> | undefined {
    if (typeof envelope?.id !== 'string') return Promise.reject(new KindredError('BAD_REQUEST', 'actor envelope without id'));
    if (this.opts.mayServe && !this.opts.mayServe(this.opts.shards.shardOf(envelope.id))) {
      return Promise.reject(new KindredError('UNAVAILABLE', LEASE_LAPSED));
    }
    let cell = this.cells.get(envelope.id);
    if (!cell) {
      if (envelope.ifActive) return undefined;
      if (this.stopping) return Promise.reject(new KindredError('UNAVAILABLE', NOT_HOSTED));
      cell = this.activate(envelope.id);
    }
    cell.lastUsed = this.opts.clock.now();
    if (cell.activated) return cell.mailbox.post(envelope.msg, envelope.deadline);
    const target = cell;
    return target.ready.then(() => target.mailbox.post(envelope.msg, envelope.deadline));
  }

  private activate(id: string): Cell<M, R> {
    const actor = this.opts.create(id);
    const { mayServe } = this.opts;
    const shard = this.opts.shards.shardOf(id);
    const receive = mayServe
      ? (m: M) => {
          if (!mayServe(shard)) throw new KindredError('UNAVAILABLE', LEASE_LAPSED);
          return actor.receive(m);
        }
      : (m: M) => actor.receive(m);
    const cell: Cell<M, R> = {
      actor,
      mailbox: new Mailbox<M, R>(this.opts.mailboxLimit, receive, () => this.opts.clock.now()),
      ready: actor.activate(),
      activated: false,
      lastUsed: this.opts.clock.now(),
    };
    this.cells.set(id, cell);
    void cell.ready.then(
      () => (cell.activated = true),
      () => undefined,
    );
    // A failed activation must not leave a broken actor behind: the next message retries.
    cell.ready.catch(() => {
      if (this.cells.get(id) === cell) this.cells.delete(id);
    });
    return cell;
  }

  private async sweep(): Promise<void> {
    const cutoff = this.opts.clock.now() - this.opts.idleMs;
    await this.passivateWhere((_, cell) => cell.lastUsed < cutoff && cell.mailbox.idle && cell.actor.canPassivate(), false);
  }

  /** Exposed for tests with a manual clock. */
  runPassivationSweep(): Promise<void> {
    return this.sweep();
  }

  private async passivateWhere(pick: (id: string, cell: Cell<M, R>) => boolean, waitForMailbox: boolean): Promise<void> {
    const chosen = [...this.cells].filter(([id, cell]) => pick(id, cell));
    await Promise.all(
      chosen.map(async ([id, cell]) => {
        if (waitForMailbox) {
          await cell.ready.catch(() => undefined);
          while (!cell.mailbox.idle) await new Promise((r) => setTimeout(r, 5));
        } else if (!cell.mailbox.idle) return;
        this.cells.delete(id);
        await cell.actor.passivate().catch(() => undefined);
      }),
    );
  }
}
