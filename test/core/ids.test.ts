import t from 'tap';
import { newId, idTime, isId, monthBucket, previousBucket } from '../../src/ids.js';

t.test('ids are time ordered and parse back', async (t) => {
  const now = Date.now();
  const ids = Array.from({ length: 5000 }, () => newId(now));
  const sorted = [...ids].sort();
  t.same(sorted, ids, 'strictly increasing even within one millisecond');
  t.equal(new Set(ids).size, ids.length, 'unique');
  t.ok(isId(ids[0]));
  t.ok(Math.abs(idTime(ids[0]!) - now) <= 2);
});

t.test('month buckets', async (t) => {
  t.equal(monthBucket(Date.UTC(2026, 10, 26)), 202611);
  t.equal(previousBucket(202601), 202512);
  t.equal(previousBucket(202611), 202610);
});
