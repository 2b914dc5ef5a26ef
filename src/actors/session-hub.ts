/**
 * The live connections on this node: connection_id → (user_id, event sink). User
 * actors publish events to `kindred.node.<nodeId>.deliver` naming connection ids;
 * the hub hands each event to its connection. A connection that is gone is
 * reported back to its user's actor so the actor stops counting it as online.
 */
import type { Bus, Subscription } from './bus.js';
import type { EventSink, Transport } from '../domain/gateway.js';
import { nodeDeliverySubject, type SessionDelivery, type SessionRecord } from './user-actor.js';

interface LiveSession {
  userId: string;
  sink: EventSink;
  transport?: Transport;
  device?: string;
}

export class SessionHub {
  private readonly live = new Map<string, LiveSession>();
  private sub: Subscription | undefined;

  constructor(
    private readonly bus: Bus,
    readonly nodeId: string,
    private readonly onGone: (userId: string, connId: string) => void,
    private readonly onPushed: (type: string) => void = () => undefined,
  ) {}

  start(): void {
    this.sub = this.bus.subscribe(nodeDeliverySubject(this.nodeId), (payload) => this.deliver(payload as SessionDelivery));
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  add(connId: string, userId: string, sink: EventSink, info: { transport: Transport; device: string } | undefined = undefined): void {
    this.live.set(connId, { userId, sink, transport: info?.transport, device: info?.device });
  }

  /**
   * The live sessions of the users `pick` selects, as their actors know them: re-sent
   * (`attach`) to a user's actor when its shard moves to another owner (cluster mode).
   */
  sessionsWhere(pick: (userId: string) => boolean): Array<{ userId: string; session: SessionRecord }> {
    const out: Array<{ userId: string; session: SessionRecord }> = [];
    for (const [connId, s] of this.live) {
      if (!s.transport || !pick(s.userId)) continue;
      out.push({ userId: s.userId, session: { connId, nodeId: this.nodeId, transport: s.transport, device: s.device ?? '' } });
    }
    return out;
  }

  remove(connId: string): LiveSession | undefined {
    const s = this.live.get(connId);
    this.live.delete(connId);
    return s;
  }

  get size(): number {
    return this.live.size;
  }

  private deliver(delivery: SessionDelivery): void {
    for (const connId of delivery.connIds) {
      const session = this.live.get(connId);
      if (session && session.sink(delivery.event)) {
        this.onPushed(delivery.event.type);
        continue;
      }
      if (session) {
        this.live.delete(connId);
        this.onGone(session.userId, connId);
      }
    }
  }
}
