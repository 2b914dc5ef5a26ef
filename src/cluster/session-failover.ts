/**
 * Sessions of nodes that died. A user's actor records each live session with the node
 * holding its connection; when that node dies, nobody detaches them, and the user would
 * look online while events go to a node that no longer exists. So:
 *
 * - when membership drops a node (heartbeats lapsed, or it left), every node tells its
 *   active actors `node-gone`: they drop that node's sessions and recompute presence
 *   (peers see the user offline if no session remains). Undelivered messages stay
 *   pending in storage, replayed when the client reconnects (nothing acknowledged is lost).
 * - a node declared dead may only have been cut off or stalled, its connections alive.
 *   When it is heard again with the same `startedAt` (not a restart), the nodes that had
 *   dropped it ask it, on `kindred.node.<id>.resync`, to re-attach every live session;
 *   `attach` is idempotent in the actor and replays pending messages (clients
 *   de-duplicate by messageId).
 */
import type { Bus, Subscription } from '../actors/bus.js';
import type { Membership } from './membership.js';

export function resyncSubject(nodeId: string): string {
  return `kindred.node.${nodeId}.resync`;
}

export interface SessionFailoverOptions {
  bus: Bus;
  membership: Membership;
  /**
   * on this node's active actors: drop the sessions held by `nodeId`. `lapsed`: it fell
   * silent (died, cut off, stalled) rather than leaving cleanly after draining its work.
   */
  nodeGone: (nodeId: string, lapsed: boolean) => void;
  /** re-send `attach` for every live session of this node */
  reattachAll: () => void;
  /** requests to re-attach arriving within this window are served once. Default 250. */
  resyncDebounceMs?: number;
}

export class SessionFailover {
  private members = new Set<string>();
  /** nodes this node declared gone, with the startedAt they had */
  private readonly gone = new Map<string, number | undefined>();
  private unlisten: (() => void) | undefined;
  private sub: Subscription | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: SessionFailoverOptions) {}

  start(): void {
    const { membership, bus } = this.o;
    this.members = new Set(membership.members());
    this.unlisten = membership.onChange((list) => this.changed(list));
    this.sub = bus.subscribe(resyncSubject(membership.nodeId), () => {
      if (this.resyncTimer) return;
      this.resyncTimer = setTimeout(() => {
        this.resyncTimer = undefined;
        this.o.reattachAll();
      }, this.o.resyncDebounceMs ?? 250);
    });
  }

  stop(): void {
    this.unlisten?.();
    this.sub?.unsubscribe();
    clearTimeout(this.resyncTimer);
  }

  private changed(list: string[]): void {
    const { membership, bus } = this.o;
    const now = new Set(list);
    for (const id of this.members) {
      if (now.has(id)) continue;
      const lapsed = !membership.hasLeft(id);
      if (lapsed) this.gone.set(id, membership.startedAtFor(id));
      this.o.nodeGone(id, lapsed);
    }
    for (const id of now) {
      if (this.members.has(id) || !this.gone.has(id)) continue;
      const before = this.gone.get(id);
      this.gone.delete(id);
      // the same run of that node: its connections may still be alive
      if (before !== undefined && before === membership.startedAtFor(id)) bus.publish(resyncSubject(id), { from: membership.nodeId });
    }
    this.members = now;
  }
}
