/**
 * The bound XMPP sessions of this node, by user and resource (RFC 6120 §7: one resource names
 * one session of an account). Used for resource conflicts (§7.7.2.2) and by modules that
 * address a user's other resources (carbons, presence broadcast).
 *
 * Only this node's sessions: sessions on other nodes are reached through the domain's events.
 */
import type { XmppSession } from './session.js';

export class SessionRegistry {
  private readonly byUser = new Map<string, Map<string, XmppSession>>();

  add(userId: string, resource: string, session: XmppSession): void {
    let resources = this.byUser.get(userId);
    if (!resources) {
      resources = new Map();
      this.byUser.set(userId, resources);
    }
    resources.set(resource, session);
  }

  /** Removes the entry if it still points at `session`. */
  remove(userId: string, resource: string, session: XmppSession): void {
    const resources = this.byUser.get(userId);
    if (resources?.get(resource) !== session) return;
    resources.delete(resource);
    if (resources.size === 0) this.byUser.delete(userId);
  }

  get(userId: string, resource: string): XmppSession | undefined {
    return this.byUser.get(userId)?.get(resource);
  }

  /** every bound session of the user on this node */
  ofUser(userId: string): XmppSession[] {
    return [...(this.byUser.get(userId)?.values() ?? [])];
  }

  get size(): number {
    let n = 0;
    for (const r of this.byUser.values()) n += r.size;
    return n;
  }

  all(): XmppSession[] {
    const out: XmppSession[] = [];
    for (const r of this.byUser.values()) out.push(...r.values());
    return out;
  }
}
