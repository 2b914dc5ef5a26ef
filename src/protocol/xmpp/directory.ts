/**
 * JID localparts are usernames; the domain speaks userIds. This maps one to the other through
 * the `users.resolve` command, with a node-wide cache (usernames never change, so entries never
 * go stale; unknown names are not cached, they may be registered later). Bounded: the oldest
 * entries are dropped first.
 */
import type { CommandGateway, Principal } from '../../domain/gateway.js';

export class UserDirectory {
  private readonly idByName = new Map<string, string>();
  private readonly nameById = new Map<string, string>();

  constructor(
    private readonly gateway: CommandGateway,
    private readonly maxEntries = 100_000,
  ) {}

  private remember(userId: string, username: string): void {
    if (this.nameById.has(userId)) return;
    if (this.nameById.size >= this.maxEntries) {
      const oldest = this.nameById.keys().next().value as string;
      const name = this.nameById.get(oldest)!;
      this.nameById.delete(oldest);
      this.idByName.delete(name);
    }
    this.nameById.set(userId, username);
    this.idByName.set(username, userId);
  }

  /** A pair the caller knows to be right (the account SASL just authenticated by that name). */
  learn(userId: string, username: string): void {
    this.remember(userId, username);
  }

  /** The userId of a username, or undefined if there is no such account. */
  async userIdOf(asker: Principal, username: string): Promise<string | undefined> {
    const cached = this.idByName.get(username);
    if (cached) return cached;
    const { users } = await this.gateway.execute(asker, { op: 'users.resolve', usernames: [username] });
    for (const u of users) this.remember(u.userId, u.username);
    return this.idByName.get(username);
  }

  async usernameOf(asker: Principal, userId: string): Promise<string | undefined> {
    return (await this.usernamesOf(asker, [userId])).get(userId);
  }

  /** Usernames of the given users; unknown ids are absent from the result. */
  async usernamesOf(asker: Principal, userIds: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const missing: string[] = [];
    for (const id of new Set(userIds)) {
      const name = this.nameById.get(id);
      if (name) out.set(id, name);
      else missing.push(id);
    }
    // users.resolve takes bounded lists: ask in slices
    for (let i = 0; i < missing.length; i += 100) {
      const { users } = await this.gateway.execute(asker, { op: 'users.resolve', userIds: missing.slice(i, i + 100) });
      for (const u of users) {
        this.remember(u.userId, u.username);
        out.set(u.userId, u.username);
      }
    }
    return out;
  }
}
