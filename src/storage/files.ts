import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { KindredError } from '../errors.js';
import type { BlobStore } from './types.js';

/**
 * BlobStore on the local file system (embedded mode; S3 in a cluster).
 *
 * A key such as `images/<id>` maps to the file `<root>/images/<id>`. Keys are
 * relative paths of plain segments ([A-Za-z0-9_-] first, then also `.`), so
 * `..`, absolute paths, empty segments, backslashes and hidden names are all
 * rejected with INVALID_ARGUMENT before touching the disk.
 *
 * Each file holds a one-line header with the content type, then the bytes:
 * `KBLOB1 <content-type>\n<data>`. Keeping both in one file means a put is a
 * single atomic rename: the data is written to `<root>/.tmp/<uuid>`, fsynced,
 * renamed over the key's path and the directory fsynced, so a reader (or a
 * crash) sees the old blob or the new one, never a torn or mismatched one.
 */
const MAGIC = 'KBLOB1 ';
const KEY_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const CONTENT_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;
const TMP_DIR = '.tmp';

export function isValidBlobKey(key: unknown): key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512) return false;
  return key.split('/').every((segment) => KEY_SEGMENT.test(segment));
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class FileBlobStore implements BlobStore {
  private constructor(private readonly root: string) {}

  /** Creates the root (and its temp dir), clearing temp files a crash may have left behind. */
  static async open(root: string): Promise<FileBlobStore> {
    const abs = path.resolve(root);
    await fs.rm(path.join(abs, TMP_DIR), { recursive: true, force: true });
    await fs.mkdir(path.join(abs, TMP_DIR), { recursive: true });
    return new FileBlobStore(abs);
  }

  private fileFor(key: string): string {
    if (!isValidBlobKey(key)) throw new KindredError('INVALID_ARGUMENT', 'invalid blob key');
    return path.join(this.root, ...key.split('/'));
  }

  async put(key: string, data: Buffer, contentType: string): Promise<void> {
    const file = this.fileFor(key);
    if (typeof contentType !== 'string' || !CONTENT_TYPE.test(contentType)) {
      throw new KindredError('INVALID_ARGUMENT', 'invalid content type');
    }
    const dir = path.dirname(file);
    const tmp = path.join(this.root, TMP_DIR, randomUUID());
    try {
      await fs.mkdir(dir, { recursive: true });
      const fh = await fs.open(tmp, 'wx');
      try {
        await fh.writev([Buffer.from(`${MAGIC}${contentType}\n`, 'latin1'), data]);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, file);
      await syncDir(dir);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => {});
      if (err instanceof KindredError) throw err;
      if (errno(err) === 'EISDIR' || errno(err) === 'ENOTDIR' || errno(err) === 'EEXIST') {
        // The key collides with a "directory" of other keys (images/a vs images/a/b).
        throw new KindredError('CONFLICT', 'blob key conflicts with an existing key');
      }
      throw new KindredError('UNAVAILABLE', `could not write blob: ${errno(err) ?? (err as Error).message}`);
    }
  }

  async get(key: string): Promise<{ data: Buffer; contentType: string } | undefined> {
    const file = this.fileFor(key);
    let raw: Buffer;
    try {
      raw = await fs.readFile(file);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw new KindredError('UNAVAILABLE', `could not read blob: ${code ?? (err as Error).message}`);
    }
    const nl = raw.indexOf(0x0a);
    if (nl < 0 || raw.toString('latin1', 0, MAGIC.length) !== MAGIC) {
      throw new KindredError('INTERNAL', `blob ${key} is not in the expected format`);
    }
    return { contentType: raw.toString('latin1', MAGIC.length, nl), data: raw.subarray(nl + 1) };
  }

  async remove(key: string): Promise<void> {
    const file = this.fileFor(key);
    try {
      await fs.unlink(file);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return;
      throw new KindredError('UNAVAILABLE', `could not remove blob: ${code ?? (err as Error).message}`);
    }
  }
}

/** fsync a directory so a rename into it survives power loss (best effort: not every platform allows it). */
async function syncDir(dir: string): Promise<void> {
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(dir, 'r');
    await fh.sync();
  } catch {
    // e.g. EISDIR/EPERM on platforms that cannot open or sync directories
  } finally {
    await fh?.close().catch(() => {});
  }
}
