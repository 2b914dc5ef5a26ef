/**
 * Keyspaces of the book-store services. Each service owns its own keyspace,
 * `<base>_<service>` (e.g. kindred_books, kindred_customers), so its tables cannot be
 * read by another service's queries by accident, can get their own replication, and
 * could move to their own cluster. Migrations are idempotent and safe to run from every
 * app node at every start, like src/storage/cassandra/schema.ts (deterministic table ids).
 */
import { Session, toNum } from './client.js';
import { assertKeyspaceName, tableId, type Replication } from './schema.js';

export interface ServiceKeyspaceOptions {
  contactPoints: string[];
  localDataCenter: string;
  /** the base keyspace name (config cluster.cassandra.keyspace); the service's is `<base>_<service>` */
  keyspace: string;
  replication?: Replication;
  readTimeoutMs?: number;
  connectTimeoutMs?: number;
  maxConcurrentRequests?: number;
}

function replicationCql(replication: Replication): string {
  const entries = Object.entries(replication).map(([k, v]) => {
    if (!/^[A-Za-z0-9_.]+$/.test(k) || !/^[A-Za-z0-9_.]+$/.test(String(v))) throw new Error(`invalid replication option ${k}: ${String(v)}`);
    return `'${k}': '${String(v)}'`;
  });
  return `{${entries.join(', ')}}`;
}

/** The service's keyspace name for a base keyspace. */
export function serviceKeyspace(base: string, service: string): string {
  const ks = `${base}_${service}`;
  assertKeyspaceName(ks);
  return ks;
}

/**
 * Connects a session for one service, creates its keyspace and tables (each `[name, body]`,
 * the CQL after `CREATE TABLE name`) and records `version`. `columns` are columns added in
 * later versions (`[table, column, type]`, also in the table's body for a fresh keyspace):
 * added with `ALTER TABLE … ADD IF NOT EXISTS` to a keyspace created by an older version.
 */
export async function openServiceKeyspace(
  opts: ServiceKeyspaceOptions,
  service: string,
  tables: Array<[string, string]>,
  version: number,
  columns: Array<[string, string, string]> = [],
): Promise<{ session: Session; ks: string }> {
  const ks = serviceKeyspace(opts.keyspace, service);
  const session = new Session(opts);
  await session.connect();
  try {
    const ddlOpts = { unprepared: true, idempotent: true, readTimeoutMs: 30_000 } as const;
    const replication = opts.replication ?? { class: 'NetworkTopologyStrategy', [opts.localDataCenter]: 1 };
    await session.execute(`CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = ${replicationCql(replication)} AND durable_writes = true`, [], ddlOpts);
    const ddl = (table: string, body: string) => {
      const id = tableId(ks, table);
      return `CREATE TABLE IF NOT EXISTS ${ks}.${table} ${/\)\s*WITH\s/i.test(body) ? `${body} AND ID = '${id}'` : `${body} WITH ID = '${id}'`}`;
    };
    await session.execute(ddl('schema_version', '(id int PRIMARY KEY, version int, applied_at bigint)'), [], ddlOpts);
    const found = (await session.execute(`SELECT version FROM ${ks}.schema_version WHERE id = 1`, [], { serial: true })).first();
    const current = found ? toNum(found.version) : undefined;
    if (current !== undefined && current > version) throw new Error(`keyspace ${ks} has schema version ${current}, newer than this server (${version})`);
    for (const [table, body] of tables) await session.execute(ddl(table, body), [], ddlOpts);
    if (current !== undefined && current < version) {
      for (const [table, column, type] of columns) await session.execute(`ALTER TABLE ${ks}.${table} ADD IF NOT EXISTS ${column} ${type}`, [], ddlOpts);
      await session.execute(`UPDATE ${ks}.schema_version SET version = ?, applied_at = ? WHERE id = 1 IF version = ?`, [version, Date.now(), current]);
    }
    if (current === undefined) {
      await session.execute(`INSERT INTO ${ks}.schema_version (id, version, applied_at) VALUES (1, ?, ?) IF NOT EXISTS`, [version, Date.now()]);
    }
  } catch (err) {
    await session.close().catch(() => {});
    throw err;
  }
  return { session, ks };
}
