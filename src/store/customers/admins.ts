/**
 * Who may administer the book store. Admins are ordinary Kindred accounts whose username
 * is listed in the config key `store.admins` (env KINDRED_STORE_ADMINS, comma separated):
 * no separate admin login, no role column to migrate, and revoking an admin is a config
 * change and restart. A bearer token names only a user id, so the username is looked up
 * (through the account store) and cached for a minute, both ways, so an admin request
 * costs no storage read after the first.
 */
export class AdminPolicy {
  private readonly admins: Set<string>;
  private readonly cache = new Map<string, { admin: boolean; until: number }>();

  constructor(
    usernames: readonly string[],
    private readonly usernameOf: (userId: string) => Promise<string | undefined>,
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {
    this.admins = new Set(usernames.map((u) => u.toLowerCase()));
  }

  async isAdmin(userId: string): Promise<boolean> {
    if (this.admins.size === 0) return false;
    const hit = this.cache.get(userId);
    if (hit && hit.until > this.now()) return hit.admin;
    const username = await this.usernameOf(userId);
    const admin = username !== undefined && this.admins.has(username.toLowerCase());
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(userId, { admin, until: this.now() + this.ttlMs });
    return admin;
  }
}
