/**
 * Users → virtual shards → owners. The shard count is fixed for the life of a
 * cluster (users are hashed to shards, shards move between owners), so choose it
 * for the largest cluster expected: ~10x the node count (docs/architecture.md).
 *
 * An owner is an opaque string: a node id today; it could equally name one worker
 * thread of a node, since actors are only ever reached through bus subjects.
 */
export type ShardListener = (shard: number, previous: string | undefined, next: string | undefined) => void;

/** FNV-1a, 32-bit: stable across processes and languages, cheap, well spread for ids. */
export function hashString(value: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    h ^= value.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class ShardMap {
  private readonly owners: Array<string | undefined>;
  private readonly listeners = new Set<ShardListener>();

  constructor(readonly shardCount: number) {
    if (!Number.isInteger(shardCount) || shardCount < 1) throw new Error('shardCount must be a positive integer');
    this.owners = new Array(shardCount).fill(undefined);
  }

  shardOf(entityId: string): number {
    return hashString(entityId) % this.shardCount;
  }

  ownerOf(shard: number): string | undefined {
    return this.owners[shard];
  }

  ownerOfEntity(entityId: string): string | undefined {
    return this.owners[this.shardOf(entityId)];
  }

  shardsOwnedBy(owner: string): number[] {
    const out: number[] = [];
    this.owners.forEach((o, i) => o === owner && out.push(i));
    return out;
  }

  assign(shard: number, owner: string | undefined): void {
    const previous = this.owners[shard];
    if (previous === owner) return;
    this.owners[shard] = owner;
    for (const l of this.listeners) l(shard, previous, owner);
  }

  /** Embedded mode: one owner holds every shard. */
  assignAll(owner: string): void {
    for (let s = 0; s < this.shardCount; s++) this.assign(s, owner);
  }

  onChange(listener: ShardListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
