/** The deck's storage queries on the embedded backend (SQLite); the cluster backend runs them in test/recs/cluster.test.ts. */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbeddedStorage } from '../../src/storage/embedded.js';
import { recsStorageQueries } from './storage-queries.js';

recsStorageQueries(t, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-recs-storage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return openEmbeddedStorage(dir);
});
