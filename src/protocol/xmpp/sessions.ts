/**
 * The bound XMPP sessions of this node, by user and resource (RFC 6120 §7: one resource names
 * one session of an account). Used for resource conflicts (§7.7.2.2) and by modules that
 * address a user's other resources (carbons, presence broadcast).
 *
 * Only this node's sessions: sessions on other nodes are reached through the domain's events.
 */
import type { XmppSession } from './session.js';

/** one user's sessions: most users have a single resource, kept without a Map of its own */
type Resources = XmppSession | Map<string, XmppSession>;

export class SessionRegistry {
  private readonly byUser = new Map<string, Resources>();

  add(userId: string, resource: string, session: XmppSession): void {
    const current = this.byUser.get(userId);
    if (current === undefined || (!(current instanceof Map) && current.jid.resource === resource)) {
      this.byUser.set(userId, session);
      return;
    }
    if (current instanceof Map) {
      current.set(resource, session);
      return;
    }
    this.byUser.set(userId, new Map([[current.jid.resource, current], [resource, session]]));
  }

  /** Removes the entry if it still points at `session`. */
  remove(userId: string, resource: string, session: XmppSession): void {
    const current = this.byUser.get(userId);
    if (!(current instanceof Map)) {
      if (current === session) this.byUser.delete(userId);
      return;
    }
    if (current.get(resource) !== session) return;
    current.delete(resource);
    if (current.size === 1) {
      const [last] = current.values();
      this.byUser.set(userId, last!);
    }
  }

  get(userId: string, resource: string): XmppSession | undefined {
    const current = this.byUser.get(userId);
    if (current instanceof Map) return current.get(resource);
    return current?.jid.resource === resource ? current : undefined;
  }

  /** every bound session of the user on this node */
  ofUser(userId: string): XmppSession[] {
    const current = this.byUser.get(userId);
    if (current === undefined) return [];
    return current instanceof Map ? [...current.values()] : [current];
  }

  get size(): number {
    let n = 0;
    for (const r of this.byUser.values()) n += r instanceof Map ? r.size : 1;
    return n;
  }

  all(): XmppSession[] {
    const out: XmppSession[] = [];
    for (const r of this.byUser.values()) {
      if (r instanceof Map) out.push(...r.values());
      else out.push(r);
    }
    return out;
  }
}
