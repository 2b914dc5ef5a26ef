import { KindredError } from '../../errors.js';
import type { ImageRecord, ImageStore } from '../types.js';
import { backoff, isRetryable, isUnknownOutcome, toNum, type Row, type Session } from './client.js';

/** Rounds of a contended change before giving up (each round at least one concurrent change wins). */
const IMAGE_CAS_ATTEMPTS = 20;

function toImage(r: Row): ImageRecord {
  return {
    profileId: r.profile_id,
    imageId: r.image_id,
    url: r.url,
    position: r.position,
    contentType: r.content_type,
    width: r.width,
    height: r.height,
    bytes: r.bytes,
    createdAt: toNum(r.created_at),
  };
}

interface Snapshot {
  /** The partition's static version column; null before the profile's first image. */
  version: number | null;
  /** The profile's images in position order. */
  images: ImageRecord[];
}

/**
 * images_by_profile ((profile_id), image_id) keeps a profile's images and a static
 * `version` column. Every change (add, remove, reorder) is one conditional batch on that
 * single partition: `UPDATE ... SET version = v + 1 IF version = v` plus the row changes,
 * computed from a snapshot read at version v. If another change got in first the
 * condition fails and the change is recomputed from a fresh (SERIAL) snapshot, so the
 * count check of addIfUnder and the insert are atomic: no interleaving of concurrent adds
 * can exceed the limit, and positions stay dense 0..n-1.
 *
 * `images ((image_id)) -> profile_id` serves get(imageId); it is written after the image
 * row (a crash in between is repaired by the retried add, which finds its row).
 */
export class CassandraImageStore implements ImageStore {
  private readonly snapshotQ: string;
  private readonly bumpQ: string;
  private readonly insertQ: string;
  private readonly deleteQ: string;
  private readonly positionQ: string;
  private readonly ownerQ: string;
  private readonly ownerInsertQ: string;
  private readonly ownerDeleteQ: string;
  private readonly rowQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
  ) {
    this.snapshotQ = `SELECT profile_id, image_id, version, position, url, content_type, width, height, bytes, created_at
      FROM ${ks}.images_by_profile WHERE profile_id = ?`;
    this.bumpQ = `UPDATE ${ks}.images_by_profile SET version = ? WHERE profile_id = ? IF version = ?`;
    this.insertQ = `INSERT INTO ${ks}.images_by_profile (profile_id, image_id, position, url, content_type, width, height, bytes, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    this.deleteQ = `DELETE FROM ${ks}.images_by_profile WHERE profile_id = ? AND image_id = ?`;
    this.positionQ = `UPDATE ${ks}.images_by_profile SET position = ? WHERE profile_id = ? AND image_id = ?`;
    this.ownerQ = `SELECT profile_id FROM ${ks}.images WHERE image_id = ?`;
    this.ownerInsertQ = `INSERT INTO ${ks}.images (image_id, profile_id) VALUES (?, ?)`;
    this.ownerDeleteQ = `DELETE FROM ${ks}.images WHERE image_id = ?`;
    this.rowQ = `SELECT profile_id, image_id, position, url, content_type, width, height, bytes, created_at
      FROM ${ks}.images_by_profile WHERE profile_id = ? AND image_id = ?`;
  }

  private async snapshot(profileId: string, serial: boolean): Promise<Snapshot> {
    const rows = await this.s.all(this.snapshotQ, [profileId], { serial });
    const version = rows.length > 0 && rows[0]!.version !== null ? (rows[0]!.version as number) : null;
    const images = rows
      .filter((r) => r.image_id !== null)
      .map(toImage)
      .sort((a, b) => a.position - b.position || (a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0));
    return { version, images };
  }

  /**
   * Applies `change` (row statements computed from a snapshot) guarded by the version.
   * `decide` looks at a snapshot and returns the statements to apply, or a final answer.
   */
  private async guarded<T>(
    profileId: string,
    decide: (snap: Snapshot, uncertain: boolean) => { done: T } | { apply: Array<{ query: string; params: unknown[] }>; result: T },
  ): Promise<T> {
    let uncertain = false; // an earlier attempt may have been applied
    for (let attempt = 0; ; attempt++) {
      const snap = await this.snapshot(profileId, attempt > 0);
      const step = decide(snap, uncertain);
      if ('done' in step) return step.done;
      const next = (snap.version ?? 0) + 1;
      try {
        const rs = await this.s.batch([{ query: this.bumpQ, params: [next, profileId, snap.version] }, ...step.apply], { logged: false });
        if (rs.wasApplied()) return step.result;
      } catch (err) {
        if (attempt + 1 >= IMAGE_CAS_ATTEMPTS || !(isUnknownOutcome(err) || isRetryable(err))) throw err;
        if (isUnknownOutcome(err)) uncertain = true;
      }
      if (attempt + 1 >= IMAGE_CAS_ATTEMPTS) throw new KindredError('UNAVAILABLE', 'images: too much contention on this profile, retry');
      await backoff(attempt);
    }
  }

  /** The stored position is always the end of the list (the count before the add); `image.position` is ignored. */
  async addIfUnder(image: ImageRecord, max: number): Promise<boolean> {
    const owner = (await this.s.execute(this.ownerQ, [image.imageId], { idempotent: true })).first()?.profile_id as string | undefined;
    if (owner !== undefined && owner !== image.profileId) throw new KindredError('CONFLICT', 'image id already used by another profile');
    const added = await this.guarded<boolean | 'exists'>(image.profileId, (snap) => {
      // A retried add (or an earlier attempt of this one that timed out but applied) finds its row.
      if (snap.images.some((i) => i.imageId === image.imageId)) return { done: 'exists' };
      if (snap.images.length >= max) return { done: false };
      return {
        apply: [
          {
            query: this.insertQ,
            params: [
              image.profileId,
              image.imageId,
              snap.images.length,
              image.url,
              image.contentType,
              image.width,
              image.height,
              image.bytes,
              image.createdAt,
            ],
          },
        ],
        result: true,
      };
    });
    if (added === false) return false;
    await this.s.execute(this.ownerInsertQ, [image.imageId, image.profileId], { idempotent: true });
    return true;
  }

  async list(profileId: string): Promise<ImageRecord[]> {
    return (await this.snapshot(profileId, false)).images;
  }

  async get(imageId: string): Promise<ImageRecord | undefined> {
    const owner = (await this.s.execute(this.ownerQ, [imageId], { idempotent: true })).first()?.profile_id as string | undefined;
    if (owner === undefined) return undefined;
    const r = (await this.s.execute(this.rowQ, [owner, imageId], { idempotent: true })).first();
    return r ? toImage(r) : undefined;
  }

  async remove(profileId: string, imageId: string): Promise<boolean> {
    const removed = await this.guarded<boolean>(profileId, (snap, uncertain) => {
      const rest = snap.images.filter((i) => i.imageId !== imageId);
      // Gone already: ours if an earlier attempt of this call may have applied.
      if (rest.length === snap.images.length) return { done: uncertain };
      return {
        apply: [{ query: this.deleteQ, params: [profileId, imageId] }, ...this.renumber(profileId, rest)],
        result: true,
      };
    });
    if (removed) {
      // Only drop the lookup row if it still points at this profile.
      const owner = (await this.s.execute(this.ownerQ, [imageId], { idempotent: true })).first()?.profile_id;
      if (owner === profileId) await this.s.execute(this.ownerDeleteQ, [imageId], { idempotent: true });
    }
    return removed;
  }

  /** Sets positions 0..n-1 in the given order; `imageIds` must be exactly the profile's images. */
  async reorder(profileId: string, imageIds: string[]): Promise<void> {
    await this.guarded<void>(profileId, (snap) => {
      const wanted = new Set(imageIds);
      const current = snap.images.map((i) => i.imageId);
      if (wanted.size !== imageIds.length || wanted.size !== current.length || !current.every((id) => wanted.has(id))) {
        throw new KindredError('INVALID_ARGUMENT', "imageIds must list each of the profile's images exactly once");
      }
      const byId = new Map(snap.images.map((i) => [i.imageId, i]));
      const ordered = imageIds.map((id) => byId.get(id)!);
      const apply = this.renumber(profileId, ordered);
      // Nothing to change: still bump the version so the reorder is ordered against concurrent changes.
      return { apply, result: undefined };
    });
  }

  /** Statements giving `ordered` the positions 0..n-1 (only rows whose position changes). */
  private renumber(profileId: string, ordered: ImageRecord[]): Array<{ query: string; params: unknown[] }> {
    const out: Array<{ query: string; params: unknown[] }> = [];
    ordered.forEach((img, i) => {
      if (img.position !== i) out.push({ query: this.positionQ, params: [i, profileId, img.imageId] });
    });
    return out;
  }
}
