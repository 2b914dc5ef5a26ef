import fs from 'node:fs/promises';
import path from 'node:path';
import { FileBlobStore } from './files.js';
import { openSqlite, type SqliteOptions } from './sqlite/index.js';
import type { Storage } from './types.js';

export type EmbeddedOptions = SqliteOptions;

/**
 * Embedded storage: SQLite (`<dataDir>/kindred.db`, WAL) for every table and the
 * local file system (`<dataDir>/blobs/`) for image and ebook bytes. One process
 * owns a data directory at a time.
 */
export async function openEmbeddedStorage(dataDir: string, opts: EmbeddedOptions = {}): Promise<Storage> {
  const dir = path.resolve(dataDir);
  await fs.mkdir(dir, { recursive: true });
  const blobs = await FileBlobStore.open(path.join(dir, 'blobs'));
  const sql = openSqlite(path.join(dir, 'kindred.db'), opts);
  return {
    accounts: sql.accounts,
    revocations: sql.revocations,
    profiles: sql.profiles,
    images: sql.images,
    blobs,
    swipes: sql.swipes,
    matches: sql.matches,
    blocks: sql.blocks,
    reports: sql.reports,
    messages: sql.messages,
    close: () => sql.close(),
  };
}
