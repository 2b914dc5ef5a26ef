import { KindredError } from '../../errors.js';
import type { ImageRecord, ImageStore } from '../types.js';
import { read, write, type SqliteContext } from './common.js';

interface ImageRow {
  profile_id: string;
  image_id: string;
  position: number;
  url: string;
  content_type: string;
  width: number;
  height: number;
  bytes: number;
  created_at: number;
}

function toImage(r: ImageRow): ImageRecord {
  return {
    profileId: r.profile_id,
    imageId: r.image_id,
    url: r.url,
    position: r.position,
    contentType: r.content_type,
    width: r.width,
    height: r.height,
    bytes: r.bytes,
    createdAt: r.created_at,
  };
}

/**
 * Positions are kept dense (0..n-1): a new image goes last, and removing one
 * closes the gap. The count check of addIfUnder and the insert share one
 * IMMEDIATE transaction (the write lock is taken before the count is read), so
 * no interleaving of adds, in this process or another, can exceed the limit.
 */
export class SqliteImageStore implements ImageStore {
  private readonly countStmt;
  private readonly ownerStmt;
  private readonly insertByProfile;
  private readonly insertImage;
  private readonly listStmt;
  private readonly getStmt;
  private readonly deleteByProfile;
  private readonly deleteImage;
  private readonly setPosition;
  private readonly addTx;
  private readonly removeTx;
  private readonly reorderTx;

  constructor(private readonly ctx: SqliteContext) {
    const { db } = ctx;
    this.countStmt = db.prepare('SELECT count(*) AS n FROM images_by_profile WHERE profile_id = ?').pluck();
    this.ownerStmt = db.prepare('SELECT profile_id FROM images WHERE image_id = ?').pluck();
    this.insertByProfile = db.prepare(`INSERT INTO images_by_profile
        (profile_id, image_id, position, url, content_type, width, height, bytes, created_at)
      VALUES (@profile_id, @image_id, @position, @url, @content_type, @width, @height, @bytes, @created_at)`);
    this.insertImage = db.prepare('INSERT INTO images (image_id, profile_id) VALUES (?, ?)');
    this.listStmt = db.prepare('SELECT * FROM images_by_profile WHERE profile_id = ? ORDER BY position, image_id');
    this.getStmt = db.prepare(
      'SELECT p.* FROM images i JOIN images_by_profile p ON p.profile_id = i.profile_id AND p.image_id = i.image_id WHERE i.image_id = ?',
    );
    this.deleteByProfile = db.prepare('DELETE FROM images_by_profile WHERE profile_id = ? AND image_id = ?');
    this.deleteImage = db.prepare('DELETE FROM images WHERE image_id = ?');
    this.setPosition = db.prepare('UPDATE images_by_profile SET position = ? WHERE profile_id = ? AND image_id = ?');

    this.addTx = db.transaction((image: ImageRecord, max: number): boolean => {
      const owner = this.ownerStmt.get(image.imageId) as string | undefined;
      if (owner !== undefined) {
        // A retried add of the same image succeeds again without a second row.
        if (owner === image.profileId) return true;
        throw new KindredError('CONFLICT', 'image id already used by another profile');
      }
      const n = this.countStmt.get(image.profileId) as number;
      if (n >= max) return false;
      this.insertByProfile.run({
        profile_id: image.profileId,
        image_id: image.imageId,
        position: n,
        url: image.url,
        content_type: image.contentType,
        width: image.width,
        height: image.height,
        bytes: image.bytes,
        created_at: image.createdAt,
      });
      this.insertImage.run(image.imageId, image.profileId);
      return true;
    });

    this.removeTx = db.transaction((profileId: string, imageId: string): boolean => {
      if (this.deleteByProfile.run(profileId, imageId).changes === 0) return false;
      this.deleteImage.run(imageId);
      this.renumber(profileId, (this.listStmt.all(profileId) as ImageRow[]).map((r) => r.image_id));
      return true;
    });

    this.reorderTx = db.transaction((profileId: string, imageIds: string[]) => {
      const current = (this.listStmt.all(profileId) as ImageRow[]).map((r) => r.image_id);
      const wanted = new Set(imageIds);
      if (wanted.size !== imageIds.length || wanted.size !== current.length || !current.every((id) => wanted.has(id))) {
        throw new KindredError('INVALID_ARGUMENT', "imageIds must list each of the profile's images exactly once");
      }
      this.renumber(profileId, imageIds);
    });
  }

  private renumber(profileId: string, imageIds: string[]): void {
    imageIds.forEach((id, i) => this.setPosition.run(i, profileId, id));
  }

  /** The stored position is always the end of the list (the count before the add); `image.position` is ignored. */
  addIfUnder(image: ImageRecord, max: number): Promise<boolean> {
    return write(this.ctx, () => this.addTx.immediate(image, max));
  }

  list(profileId: string): Promise<ImageRecord[]> {
    return read(() => (this.listStmt.all(profileId) as ImageRow[]).map(toImage));
  }

  get(imageId: string): Promise<ImageRecord | undefined> {
    return read(() => {
      const r = this.getStmt.get(imageId) as ImageRow | undefined;
      return r && toImage(r);
    });
  }

  remove(profileId: string, imageId: string): Promise<boolean> {
    return write(this.ctx, () => this.removeTx.immediate(profileId, imageId));
  }

  reorder(profileId: string, imageIds: string[]): Promise<void> {
    return write(this.ctx, () => this.reorderTx.immediate(profileId, imageIds));
  }
}
