import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { SqliteBookStore } from '../../src/storage/sqlite/store-books.js';
import { SqliteCustomerStore } from '../../src/storage/sqlite/store-customers.js';
import { booksContract } from './books-contract.js';
import { customersContract } from './customers-contract.js';

const dirs: string[] = [];
t.teardown(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

booksContract(t, 'embedded', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kindred-books-'));
  dirs.push(dir);
  return SqliteBookStore.open(dir, { fsync: false });
});

customersContract(t, 'embedded', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kindred-customers-'));
  dirs.push(dir);
  return SqliteCustomerStore.open(dir, { fsync: false });
});
