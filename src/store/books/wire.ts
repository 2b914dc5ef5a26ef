/**
 * Starts the book store's catalogue services on a node — Books, Search and Customers — each
 * with its own store: SQLite files under <dataDir>/store/ embedded, their own Cassandra
 * keyspaces (<keyspace>_books, <keyspace>_customers) in a cluster. Every node runs all
 * three; the bus queue groups spread requests over the nodes, and each node's Search keeps
 * its own index (docs/store.md).
 */
import path from 'node:path';
import type { Bus } from '../../actors/bus.js';
import type { KindredConfig } from '../../config.js';
import type { Logger } from '../../log.js';
import { CassandraBookStore } from '../../storage/cassandra/store-books.js';
import { CassandraCustomerStore } from '../../storage/cassandra/store-customers.js';
import { SqliteBookStore } from '../../storage/sqlite/store-books.js';
import { SqliteCustomerStore } from '../../storage/sqlite/store-customers.js';
import type { AccountStore, BlobStore } from '../../storage/types.js';
import { AdminPolicy } from '../customers/admins.js';
import { CustomersService } from '../customers/service.js';
import type { CustomerStore } from '../customers/storage.js';
import { SearchService } from '../search/service.js';
import { BooksService } from './service.js';
import type { BookStore } from './storage.js';

export interface Catalog {
  books: BooksService;
  search: SearchService;
  customers: CustomersService;
  stop(): Promise<void>;
}

export interface CatalogDeps {
  config: KindredConfig;
  log: Logger;
  bus: Bus;
  blobs: BlobStore;
  accounts: AccountStore;
  /** tests: skip fsync in the embedded stores */
  fsync?: boolean;
}

async function openStores(config: KindredConfig, fsync: boolean | undefined): Promise<{ books: BookStore; customers: CustomerStore }> {
  if (!config.cluster.enabled) {
    const books = SqliteBookStore.open(config.dataDir, { fsync });
    try {
      return { books, customers: SqliteCustomerStore.open(config.dataDir, { fsync }) };
    } catch (err) {
      await books.close();
      throw err;
    }
  }
  const c = config.cluster.cassandra as KindredConfig['cluster']['cassandra'] & { replicationFactor?: number };
  const opts = {
    contactPoints: c.contactPoints,
    localDataCenter: c.localDataCenter,
    keyspace: c.keyspace,
    replication: { class: 'NetworkTopologyStrategy', [c.localDataCenter]: c.replicationFactor ?? 1 },
  };
  const books = await CassandraBookStore.open(opts);
  try {
    return { books, customers: await CassandraCustomerStore.open(opts) };
  } catch (err) {
    await books.close();
    throw err;
  }
}

export async function startCatalog(deps: CatalogDeps): Promise<Catalog> {
  const { config, log, bus } = deps;
  const stores = await openStores(config, deps.fsync);
  const admins = new AdminPolicy(config.store.admins, async (userId) => (await deps.accounts.byId(userId))?.username);
  const books = new BooksService({
    bus,
    store: stores.books,
    blobs: deps.blobs,
    admins,
    limits: { coverMaxBytes: config.images.maxBytes, ebookMaxBytes: config.store.ebookMaxBytes },
    log,
  });
  const customers = new CustomersService({ bus, store: stores.customers });
  // The index file is this node's own (every node keeps an index): a restart only catches up.
  const search = new SearchService({ bus, log, rebuildEveryMs: config.store.searchRebuildMinutes * 60_000, index: { file: path.join(config.dataDir, 'store', 'search.db') } });
  books.start();
  customers.start();
  // After Books, so the rebuild's first page finds a responder on this node.
  search.start();
  let stopping: Promise<void> | undefined;
  return {
    books,
    search,
    customers,
    stop() {
      stopping ??= (async () => {
        search.close();
        customers.stop();
        books.stop();
        await Promise.allSettled([stores.books.close(), stores.customers.close()]);
      })();
      return stopping;
    },
  };
}
