/**
 * Cluster membership over the bus: every node publishes `kindred.cluster.heartbeat`
 * ({nodeId, startedAt}) every second; a node is live if heard within `liveMs` (3 s);
 * a node that leaves cleanly publishes `kindred.cluster.leave` so the others drop it at
 * once. Core NATS is at-most-once, so a lost heartbeat or two is tolerated by the window.
 */
import type { Bus, Subscription } from '../actors/bus.js';

export const HEARTBEAT_SUBJECT = 'kindred.cluster.heartbeat';
export const LEAVE_SUBJECT = 'kindred.cluster.leave';

export interface Heartbeat {
  nodeId: string;
  startedAt: number;
}

export interface MembershipOptions {
  heartbeatMs?: number;
  liveMs?: number;
  now?: () => number;
}

export class Membership {
  readonly startedAt: number;
  private readonly heardAt = new Map<string, number>();
  /** each node's `startedAt` as last heard (kept after it lapses: a node that comes back
   * with the same value was cut off or stalled, not restarted) */
  private readonly startedAtOf = new Map<string, number>();
  private readonly listeners = new Set<(members: string[]) => void>();
  /** nodes that announced their departure (and have not been heard since) */
  private readonly left = new Set<string>();
  private subs: Subscription[] = [];
  private timer: NodeJS.Timeout | undefined;
  private last = '';
  private readonly heartbeatMs: number;
  private readonly liveMs: number;
  private readonly now: () => number;

  constructor(
    private readonly bus: Bus,
    readonly nodeId: string,
    opts: MembershipOptions = {},
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? 1000;
    this.liveMs = opts.liveMs ?? 3000;
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
  }

  start(): void {
    this.subs.push(
      this.bus.subscribe(HEARTBEAT_SUBJECT, (p) => {
        const hb = p as Heartbeat;
        if (typeof hb?.nodeId !== 'string') return;
        this.heardAt.set(hb.nodeId, this.now());
        this.left.delete(hb.nodeId);
        if (typeof hb.startedAt === 'number') this.startedAtOf.set(hb.nodeId, hb.startedAt);
        this.check();
      }),
      this.bus.subscribe(LEAVE_SUBJECT, (p) => {
        const id = (p as { nodeId?: unknown })?.nodeId;
        if (typeof id !== 'string' || id === this.nodeId) return;
        this.heardAt.delete(id);
        this.left.add(id);
        this.check();
      }),
    );
    this.beat();
    this.timer = setInterval(() => {
      this.beat();
      this.check();
    }, this.heartbeatMs);
    this.timer.unref();
  }

  /** Live members, sorted, this node included. */
  members(): string[] {
    const cutoff = this.now() - this.liveMs;
    const out = new Set<string>([this.nodeId]);
    for (const [id, at] of this.heardAt) if (at >= cutoff) out.add(id);
    return [...out].sort();
  }

  /** When `nodeId` said it started (from its heartbeats), if it was ever heard. */
  startedAtFor(nodeId: string): number | undefined {
    return nodeId === this.nodeId ? this.startedAt : this.startedAtOf.get(nodeId);
  }

  /** Whether `nodeId` left cleanly (announced it), as opposed to falling silent. */
  hasLeft(nodeId: string): boolean {
    return this.left.has(nodeId);
  }

  /** Called with the new member list whenever it changes. */
  onChange(listener: (members: string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Announces the departure and stops heartbeating. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.bus.publish(LEAVE_SUBJECT, { nodeId: this.nodeId });
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
  }

  private beat(): void {
    const hb: Heartbeat = { nodeId: this.nodeId, startedAt: this.startedAt };
    this.bus.publish(HEARTBEAT_SUBJECT, hb);
  }

  private check(): void {
    const members = this.members();
    const key = members.join(',');
    if (key === this.last) return;
    this.last = key;
    for (const l of this.listeners) l(members);
  }
}
