/**
 * The Search service against a stand-in Books responder on a LocalBus: the start-up rebuild
 * pages through the whole catalogue, events that arrive during it win over older pages (an
 * update is not undone, a deleted book does not come back), and results are hydrated from
 * Books in ranking order. Restarted with its index file, it re-indexes only what changed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalBus } from '../../src/actors/bus.js';
import { newId } from '../../src/ids.js';
import { SUBJECTS, type Book } from '../../src/store/contracts.js';
import { SearchService } from '../../src/store/search/service.js';

function book(title: string, at: number, authors = ['Anon']): Book {
  return { bookId: newId(at), title, authors, isbn: '9790000000000', description: '', priceCents: 500, currency: 'EUR', formats: ['ebook'], stock: 0, hasEbookFile: false, createdAt: at, updatedAt: at };
}

t.test('rebuild, events during the rebuild, hydration', async (t) => {
  const bus = new LocalBus();
  const catalogue = new Map<string, Book>();
  for (let i = 0; i < 250; i++) {
    const b = book(`Filler volume ${i}`, 1_700_000_000_000 + i);
    catalogue.set(b.bookId, b);
  }
  const target = book('The Quiet Orchard', 1_700_000_001_000, ['Mina Park']);
  const doomed = book('The Loud Harbor', 1_700_000_001_001);
  catalogue.set(target.bookId, target);
  catalogue.set(doomed.bookId, doomed);

  let pages = 0;
  let releaseSecondPage!: () => void;
  const secondPage = new Promise<void>((r) => (releaseSecondPage = r));
  bus.subscribe(SUBJECTS.books, async (raw) => {
    const req = raw as { op: string; after?: string | null; limit?: number; bookIds?: string[] };
    if (req.op === 'page') {
      pages++;
      if (pages === 2) await secondPage; // hold the rebuild half-way
      const sorted = [...catalogue.values()].sort((a, b) => (a.bookId < b.bookId ? -1 : 1));
      const rest = sorted.filter((b) => req.after == null || b.bookId > req.after);
      const page = rest.slice(0, req.limit);
      return { books: page, next: page.length === req.limit ? page[page.length - 1]!.bookId : null };
    }
    if (req.op === 'get') return { books: req.bookIds!.map((id) => catalogue.get(id)).filter(Boolean) };
    throw new Error('unexpected');
  }, { queue: 'books' });

  const search = new SearchService({ bus, rebuildPageSize: 100 });
  search.start();
  // While page 2 is held: the target is renamed (its page, read later, has the old version)
  // and the doomed book is deleted (its page, read later, still has it).
  while (pages < 2) await new Promise((r) => setImmediate(r));
  const renamed = { ...target, title: 'The Quiet Orchard Revisited', updatedAt: target.updatedAt + 10 };
  search.apply({ type: 'book.upserted', book: renamed });
  search.apply({ type: 'book.deleted', bookId: doomed.bookId });
  releaseSecondPage();
  await search.ready();

  const stats = (await bus.request(SUBJECTS.search, { op: 'stats' }, 1000)) as { indexed: number; building: boolean; rebuiltAt: number | null };
  t.equal(stats.indexed, 251, '250 fillers + the target, not the deleted book');
  t.equal(stats.building, false, 'the rebuild is over');
  t.type(stats.rebuiltAt, 'number', 'and says when it ended');
  t.equal(pages, 3, 'three pages of 100');
  const found = (await bus.request(SUBJECTS.search, { op: 'search', query: { q: 'revisited', sort: 'relevance', page: 1, size: 5 } }, 1000)) as { results: Book[]; total: number };
  t.equal(found.total, 1, 'the newer title, from the event, survived the older page');
  t.equal(found.results[0]?.bookId, target.bookId, 'hydrated from Books');
  const gone = (await bus.request(SUBJECTS.search, { op: 'search', query: { q: 'loud harbor', sort: 'relevance', page: 1, size: 5 } }, 1000)) as { total: number };
  t.equal(gone.total, 0, 'the book deleted during the rebuild stays deleted');
  const typo = (await bus.request(SUBJECTS.search, { op: 'search', query: { q: 'quiet orchrd', sort: 'relevance', page: 1, size: 5 } }, 1000)) as { results: Book[] };
  t.equal(typo.results[0]?.bookId, target.bookId, 'a typo still finds it');
  const stale = { ...target, title: 'Stale Title', updatedAt: target.updatedAt + 1 };
  search.apply({ type: 'book.upserted', book: stale });
  const staleHit = (await bus.request(SUBJECTS.search, { op: 'search', query: { q: 'stale', sort: 'relevance', page: 1, size: 5 } }, 1000)) as { total: number };
  t.equal(staleHit.total, 0, 'an event older than what is indexed is ignored');
  await t.rejects(bus.request(SUBJECTS.search, { op: 'search', query: { q: 'x', sort: 'random', page: 1, size: 5 } }, 1000), { code: 'INVALID_ARGUMENT' }, 'bad sort: INVALID_ARGUMENT');
  search.stop();
  await bus.close();
});

t.test('restart with a kept index file: only the changes are re-indexed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-search-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'search.db');
  const bus = new LocalBus();
  const catalogue = new Map<string, Book>();
  for (let i = 0; i < 120; i++) {
    const b = book(`Filler volume ${i}`, 1_700_000_000_000 + i);
    catalogue.set(b.bookId, b);
  }
  bus.subscribe(SUBJECTS.books, async (raw) => {
    const req = raw as { op: string; after?: string | null; limit?: number; bookIds?: string[] };
    if (req.op === 'page') {
      const rest = [...catalogue.values()].sort((a, b) => (a.bookId < b.bookId ? -1 : 1)).filter((b) => req.after == null || b.bookId > req.after);
      const page = rest.slice(0, req.limit);
      return { books: page, next: page.length === req.limit ? page[page.length - 1]!.bookId : null };
    }
    if (req.op === 'get') return { books: req.bookIds!.map((id) => catalogue.get(id)).filter(Boolean) };
    throw new Error('unexpected');
  }, { queue: 'books' });

  const first = new SearchService({ bus, rebuildPageSize: 50, index: { file } });
  first.start();
  await first.ready();
  t.equal(first.index.size, 120);
  first.close();

  // While the node is down: one book renamed, one deleted, one added.
  const [renamedFrom, deleted] = [...catalogue.values()];
  const renamed = { ...renamedFrom!, title: 'Filler Renamed Meanwhile', updatedAt: renamedFrom!.updatedAt + 5 };
  catalogue.set(renamed.bookId, renamed);
  catalogue.delete(deleted!.bookId);
  const added = book('Arrived Meanwhile', 1_700_000_009_000);
  catalogue.set(added.bookId, added);

  const second = new SearchService({ bus, rebuildPageSize: 50, index: { file } });
  t.equal(second.index.size, 120, 'the kept index is there before the rebuild');
  const written: string[] = [];
  const upsertMany = second.index.upsertMany.bind(second.index);
  second.index.upsertMany = (books) => {
    written.push(...books.map((b) => b.bookId));
    upsertMany(books);
  };
  second.start();
  await second.ready();
  t.same(written.sort(), [renamed.bookId, added.bookId].sort(), 'only the renamed and the added book are written again');
  t.equal(second.index.size, 120, '120 - 1 deleted + 1 added');
  const ask = async (q: string) => ((await bus.request(SUBJECTS.search, { op: 'search', query: { q, sort: 'relevance', page: 1, size: 5 } }, 1000)) as { results: Book[]; total: number });
  t.equal((await ask('renamed meanwhile')).results[0]?.bookId, renamed.bookId, 'the new title');
  t.equal((await ask('arrived')).results[0]?.bookId, added.bookId, 'the added book');
  t.equal(second.index.updatedAt(deleted!.bookId), undefined, 'the deleted book is dropped');
  second.close();
  await bus.close();
});
