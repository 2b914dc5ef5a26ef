/**
 * The live connections on this node: connection_id → (user_id, event sink). User
 * actors publish events to `kindred.node.<nodeId>.deliver` naming connection ids;
 * the hub hands each event to its connection. A connection that is gone is
 * reported back to its user's actor so the actor stops counting it as online.
 */
import type { Bus, Subscription } from './bus.js';
import type { EventSink } from '../domain/gateway.js';
import { nodeDeliverySubject, type SessionDelivery } from './user-actor.js';

interface LiveSession {
  userId: string;
  sink: EventSink;
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

  add(connId: string, userId: string, sink: EventSink): void {
    this.live.set(connId, { userId, sink });
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
