/**
 * Loading the orders bench's generated customers into the Customers service's Cassandra
 * table `<keyspace>_customers.customers`, two ways:
 *
 * - `sstables` (default): Cassandra's own bulk path. bench/java/CustomerSSTables.java writes
 *   the rows as SSTables with Cassandra's CQLSSTableWriter (in a JVM of its own, from the jars
 *   deploy/cassandra/install.sh keeps), and Cassandra's bulk loader (sstableloader,
 *   org.apache.cassandra.tools.BulkLoader) streams the files to the node over its storage
 *   port. No commitlog, memtable or compaction work on the server per row. The files are
 *   generated once per row count and kept in ~/.cache/kindred/bench-customers/, so a later
 *   run (a fresh cluster) only streams them again.
 * - `cql`: prepared INSERTs in unlogged batches, many in flight (what every client can do).
 *
 * Either way the rows are counted afterwards (a COUNT over 1,024 token ranges, 4 at a time).
 */
import cassandra from 'cassandra-driver';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, sleep } from '../lib/report.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const QUIET_LOG = path.join(REPO, 'bench/java/logback-quiet.xml');
const CACHE = process.env.KINDRED_CACHE ?? path.join(homedir(), '.cache', 'kindred');

/** The JDK 17 module flags Cassandra's classes need (as deploy/cassandra/start.sh passes them). */
const JVM_FLAGS = [
  '-Djava.net.preferIPv4Stack=true',
  '-Dio.netty.tryReflectionSetAccessible=true',
  ...['java.base/jdk.internal.misc', 'java.base/jdk.internal.ref', 'java.base/sun.nio.ch', 'java.management.rmi/com.sun.jmx.remote.internal.rmi', 'java.rmi/sun.rmi.registry', 'java.rmi/sun.rmi.server', 'java.sql/java.sql', 'jdk.unsupported/sun.misc'].flatMap((m) => ['--add-exports', `${m}=ALL-UNNAMED`]),
  ...[
    'java.base/java.lang.module', 'java.base/jdk.internal.loader', 'java.base/jdk.internal.ref', 'java.base/jdk.internal.reflect', 'java.base/jdk.internal.math',
    'java.base/jdk.internal.module', 'java.base/jdk.internal.util.jar', 'jdk.management/com.sun.management.internal', 'java.base/sun.nio.ch', 'java.base/java.io',
    'java.base/java.lang.reflect', 'java.base/java.lang', 'java.base/java.util', 'java.base/java.nio',
  ].flatMap((m) => ['--add-opens', `${m}=ALL-UNNAMED`]),
];

export interface CustomerRows {
  /** customer i's id */
  id(i: number): string;
  /** customer i's name */
  name(i: number): string;
  createdAt: number;
}

function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs: number }): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.slice(-6).join(' ')} failed: ${err.message}\n${stderr.slice(-3000)}`));
      else resolve({ stdout, stderr });
    });
  });
}

async function cassandraLib(): Promise<string> {
  const { stdout } = await run('bash', [path.join(REPO, 'deploy/cassandra/install.sh')], { timeoutMs: 900_000 });
  return path.join(stdout.trim(), 'lib');
}

/**
 * SSTables of customers 0..n-1 for table `<ks>.customers`, generated once and cached:
 * returns the directory named `<ks>/customers` that the bulk loader streams.
 */
async function customerSSTables(lib: string, ks: string, n: number, createdAt: number): Promise<string> {
  const root = path.join(CACHE, 'bench-customers', `${n}-${createdAt}`);
  const dir = path.join(root, ks, 'customers');
  if (existsSync(path.join(root, `${ks}.done`))) {
    log(`  customers: reusing the SSTables of ${n.toLocaleString('en')} customers in ${dir}`);
    return dir;
  }
  const tmp = path.join(root, `${ks}.tmp`, ks, 'customers');
  rmSync(path.join(root, `${ks}.tmp`), { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const started = performance.now();
  await run(
    'java',
    ['-Xmx1G', `-Dlogback.configurationFile=${QUIET_LOG}`, `-Dcassandra.storagedir=${path.join(root, `${ks}.tmp`, 'storage')}`, ...JVM_FLAGS, '-cp', `${lib}/*`, path.join(REPO, 'bench/java/CustomerSSTables.java'), tmp, ks, '0', String(n), String(createdAt)],
    { timeoutMs: 3_600_000 },
  );
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.dirname(dir), { recursive: true });
  renameSync(tmp, dir);
  rmSync(path.join(root, `${ks}.tmp`), { recursive: true, force: true });
  writeFileSync(path.join(root, `${ks}.done`), new Date().toISOString());
  log(`  customers: ${n.toLocaleString('en')} rows written as SSTables in ${((performance.now() - started) / 1000).toFixed(0)} s (${dir})`);
  return dir;
}

/** Streams the SSTables to the node with Cassandra's bulk loader (sstableloader). */
async function bulkLoad(lib: string, dir: string, cqlPort: number, storagePort: number): Promise<void> {
  await run(
    'java',
    ['-Xmx512M', `-Dlogback.configurationFile=${QUIET_LOG}`, ...JVM_FLAGS, '-cp', `${lib}/*`, 'org.apache.cassandra.tools.BulkLoader', '--no-progress', '-d', '127.0.0.1', '-p', String(cqlPort), '-sp', String(storagePort), dir],
    { timeoutMs: 3_600_000 },
  );
}

async function cqlInsert(client: cassandra.Client, ks: string, rows: CustomerRows, n: number, concurrency: number, batch: number): Promise<void> {
  const query = `INSERT INTO ${ks}.customers (customer_id, name, default_address_id, created_at, updated_at) VALUES (?, ?, null, ?, ?)`;
  const started = performance.now();
  let next = 0;
  let done = 0;
  let reported = 0;
  const worker = async () => {
    while (next < n) {
      const from = next;
      const to = Math.min(n, from + batch);
      next = to;
      // An unlogged batch of `batch` rows (each its own partition): on one node the coordinator
      // is the only replica, so this saves requests without a batch log.
      const queries = [];
      for (let i = from; i < to; i++) queries.push({ query, params: [rows.id(i), rows.name(i), rows.createdAt, rows.createdAt] });
      for (let attempt = 0; ; attempt++) {
        try {
          if (queries.length === 1) await client.execute(queries[0]!.query, queries[0]!.params, { prepare: true, isIdempotent: true });
          else await client.batch(queries, { prepare: true, logged: false, isIdempotent: true });
          break;
        } catch (err) {
          if (attempt >= 8) throw err;
          await sleep(100 * 2 ** attempt);
        }
      }
      done += to - from;
      if (done - reported >= n / 10) {
        reported = done;
        const s = (performance.now() - started) / 1000;
        log(`  customers: ${done.toLocaleString('en')} of ${n.toLocaleString('en')} in ${s.toFixed(0)} s (${Math.round(done / s).toLocaleString('en')}/s)`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/**
 * COUNT(*) over `parts` token ranges, `concurrency` at a time: a range read must finish within
 * Cassandra's range_request_timeout (4 s here), so each range holds a few thousand rows (one
 * COUNT over millions, or 64 ranges of ~100,000, times out on a loaded box). A failed range is
 * counted again.
 */
async function countRows(client: cassandra.Client, table: string, key: string, parts = 1024, concurrency = 4): Promise<number> {
  const min = -(2n ** 63n);
  const span = 2n ** 64n / BigInt(parts);
  const ranges = Array.from({ length: parts }, (_, i) => [min + span * BigInt(i), i === parts - 1 ? 2n ** 63n - 1n : min + span * BigInt(i + 1) - 1n] as const);
  let total = 0;
  let next = 0;
  const worker = async () => {
    while (next < ranges.length) {
      const [lo, hi] = ranges[next++]!;
      for (let attempt = 0; ; attempt++) {
        try {
          const rs = await client.execute(`SELECT count(*) AS c FROM ${table} WHERE token(${key}) >= ? AND token(${key}) <= ?`, [cassandra.types.Long.fromString(lo.toString()), cassandra.types.Long.fromString(hi.toString())], {
            prepare: true,
            readTimeout: 120_000,
          });
          total += Number(rs.first()!.c);
          break;
        } catch (err) {
          if (attempt >= 4) throw err;
          await sleep(500 * 2 ** attempt);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return total;
}

/**
 * Loads customers 0..n-1 into `<keyspace>_customers.customers` on the node at cqlPort (its
 * storage port is storagePort); checks the row count and a sample. Seconds taken (loading
 * only, not counting).
 */
export async function loadCassandraCustomers(o: {
  cqlPort: number;
  storagePort: number;
  keyspace: string;
  rows: CustomerRows;
  n: number;
  method: 'sstables' | 'cql';
  concurrency: number;
  batch: number;
}): Promise<{ seconds: number; counted: number; countSeconds: number }> {
  const ks = `${o.keyspace}_customers`;
  const client = new cassandra.Client({
    contactPoints: [`127.0.0.1:${o.cqlPort}`],
    localDataCenter: 'datacenter1',
    pooling: { coreConnectionsPerHost: { [cassandra.types.distance.local]: 4 } },
    socketOptions: { readTimeout: 120_000 },
  });
  await client.connect();
  try {
    const started = performance.now();
    if (o.method === 'sstables') {
      const lib = await cassandraLib();
      const dir = await customerSSTables(lib, ks, o.n, o.rows.createdAt);
      const streamStarted = performance.now();
      await bulkLoad(lib, dir, o.cqlPort, o.storagePort);
      log(`  customers: streamed into Cassandra in ${((performance.now() - streamStarted) / 1000).toFixed(0)} s`);
    } else {
      await cqlInsert(client, ks, o.rows, o.n, o.concurrency, o.batch);
    }
    const seconds = (performance.now() - started) / 1000;
    for (const i of [0, Math.floor(o.n / 2), o.n - 1]) {
      const row = (await client.execute(`SELECT name FROM ${ks}.customers WHERE customer_id = ?`, [o.rows.id(i)], { prepare: true })).first();
      if (!row || row.name !== o.rows.name(i)) throw new Error(`customer ${i} was not stored`);
    }
    const countStarted = performance.now();
    const counted = await countRows(client, `${ks}.customers`, 'customer_id');
    const countSeconds = (performance.now() - countStarted) / 1000;
    log(`  customers: ${counted.toLocaleString('en')} rows counted in ${countSeconds.toFixed(0)} s`);
    if (counted < o.n) throw new Error(`${ks}.customers holds ${counted} rows, expected at least ${o.n}`);
    return { seconds, counted, countSeconds };
  } finally {
    await client.shutdown();
  }
}
