/**
 * Composes the Orders and Payment services for a node (called from src/node.ts): the
 * service's own store (SQLite file embedded, its own Cassandra keyspace in a cluster), the
 * settlement pool, the provider client, and the webhook registration once HTTP listens.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bus } from '../../actors/bus.js';
import type { KindredConfig } from '../../config.js';
import type { Logger } from '../../log.js';
import { CassandraOrderStore } from '../../storage/cassandra/orders.js';
import { SqliteOrderStore } from '../../storage/sqlite/orders.js';
import type { BlobStore } from '../../storage/types.js';
import { ProviderClient } from '../payments/provider-client.js';
import { PaymentsService } from '../payments/service.js';
import { SettlementPool } from './pool.js';
import { DEFAULT_ORDERS_CONFIG, OrdersService, type OrderPush } from './service.js';
import type { OrderStore } from './storage.js';

export interface StoreOrders {
  orders: OrdersService;
  payments: PaymentsService;
  client: ProviderClient;
  /** Registers this node's webhook endpoint with the provider (retried in the background until it answers). */
  registerWebhook(httpBase: string): void;
  stop(): Promise<void>;
}

export function webhookSecret(config: KindredConfig): string {
  if (config.orders.webhookSecret) return config.orders.webhookSecret;
  const file = join(config.dataDir, 'payments-webhook-secret');
  if (!existsSync(file)) {
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  }
  return readFileSync(file, 'utf8').trim();
}

export async function openOrderStore(config: KindredConfig): Promise<OrderStore> {
  if (!config.cluster.enabled) return SqliteOrderStore.open(config.dataDir);
  const c = config.cluster.cassandra;
  const rf = (c as { replicationFactor?: number }).replicationFactor ?? 1;
  return CassandraOrderStore.open({
    contactPoints: c.contactPoints,
    localDataCenter: c.localDataCenter,
    keyspace: c.keyspace,
    replication: { class: 'NetworkTopologyStrategy', [c.localDataCenter]: rf },
  });
}

export async function startStoreOrders(opts: {
  config: KindredConfig;
  log: Logger;
  bus: Bus;
  blobs: BlobStore;
  /** the node's token secret: download links are signed with a key derived from it */
  tokenSecret: Buffer;
  notify: (customerId: string, event: OrderPush) => void;
  store?: OrderStore;
  onSettled?: (state: string, ms: number) => void;
}): Promise<StoreOrders> {
  const { config, log, bus } = opts;
  const o = config.orders;
  const store = opts.store ?? (await openOrderStore(config));
  const client = new ProviderClient({ baseUrl: o.providerUrl.replace(/\/+$/, ''), apiKey: o.providerApiKey || undefined, timeoutMs: o.providerTimeoutMs, attempts: o.providerAttempts });
  const payments = new PaymentsService({ bus, client, webhookSecret: webhookSecret(config) });
  const linkSecret = createHmac('sha256', opts.tokenSecret).update('kindred download links').digest();
  const pool = new SettlementPool({ threads: o.poolSize, linkSecret, onError: (err) => log.error({ err }, 'settlement pool error') });
  const orders = new OrdersService({
    bus,
    store,
    blobs: opts.blobs,
    pool,
    linkSecret,
    config: {
      ...DEFAULT_ORDERS_CONFIG,
      taxBasisPoints: o.taxBasisPoints,
      downloadTtlSeconds: o.downloadTtlSeconds,
      maxDownloads: o.maxDownloads,
      settleDeadlineMs: o.settleDeadlineSeconds * 1000,
      checkoutWaitMs: o.checkoutWaitMs,
    },
    notify: opts.notify,
    log: (level, msg, extra) => log[level](extra ?? {}, msg),
    onSettled: opts.onSettled,
  });
  payments.start();
  try {
    const { recovered } = await orders.start({ recoverOlderThanMs: config.cluster.enabled ? DEFAULT_ORDERS_CONFIG.staleMs : 0 });
    if (recovered > 0) log.info({ recovered }, 'orders: recovering orders left in a middle state');
  } catch (err) {
    payments.stop();
    client.close();
    await pool.close().catch(() => undefined);
    if (!opts.store) await store.close().catch(() => undefined);
    throw err;
  }
  let registering: NodeJS.Timeout | undefined;
  let stopped = false;
  return {
    orders,
    payments,
    client,
    registerWebhook(httpBase) {
      const url = o.webhookUrl || `${httpBase}/webhooks/payments`;
      const attempt = (delay: number) => {
        client.registerWebhook(url).then(
          () => log.info({ url }, 'payment webhooks registered'),
          (err: unknown) => {
            if (stopped) return;
            log.warn({ err: String(err), url, retryInMs: delay }, 'payment provider unreachable: webhook registration will be retried');
            registering = setTimeout(() => attempt(Math.min(delay * 2, 30_000)), delay);
            registering.unref();
          },
        );
      };
      attempt(1000);
    },
    async stop() {
      stopped = true;
      clearTimeout(registering);
      await orders.stop();
      payments.stop();
      client.close();
      await pool.close().catch(() => undefined);
      if (!opts.store) await store.close();
    },
  };
}
