/**
 * The one wiring file: composes a Kindred node from its parts with named
 * dependencies. Embedded mode: LocalBus, every shard owned by this node, SQLite
 * storage and local files. Cluster mode (`cluster.enabled`): NatsBus, Cassandra
 * tables with S3 blobs, and shards leased through the ShardManager (src/cluster/).
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createHmac, randomBytes } from 'node:crypto';
import type { KindredConfig } from './config.js';
import type { Logger } from './log.js';
import type { Storage } from './storage/types.js';
import { LocalBus, type Bus } from './actors/bus.js';
import { ShardMap } from './actors/shards.js';
import { ActorSystem } from './actors/system.js';
import { systemClock, type Clock } from './actors/clock.js';
import { SessionHub } from './actors/session-hub.js';
import { UserActor, type UserMsg } from './actors/user-actor.js';
import { KindredService } from './domain/service.js';
import { Recommender } from './recs/recommender.js';
import { TokenAuthority } from './domain/auth.js';
import { ProfileViews } from './domain/profiles.js';
import { ImageService } from './domain/images.js';
import { Metrics } from './metrics.js';
import { openEmbeddedStorage } from './storage/embedded.js';
import { openCassandraStorage } from './storage/cluster.js';
import { S3BlobStore } from './storage/s3.js';
import { NatsBus } from './actors/nats-bus.js';
import { Membership } from './cluster/membership.js';
import { ShardManager } from './cluster/shard-manager.js';
import { SessionFailover } from './cluster/session-failover.js';
import { createHttpServer } from './protocol/http/server.js';
import { attachNativeWebSocket } from './protocol/native/ws.js';
import { attachStaticSite, defaultWebDir, loadStaticSite } from './protocol/http/static.js';
import { NativeTcpListener } from './protocol/native/tcp.js';
import { startXmpp, type XmppServer } from './protocol/xmpp/server.js';
import { startTlsTerminator } from './protocol/tls-front/terminator.js';
import type { TlsFront } from './protocol/tls-front/supervisor.js';
import { startStoreOrders, type StoreOrders } from './store/orders/wire.js';
import { startCatalog, type Catalog } from './store/books/wire.js';
import { StopStack } from './stop-stack.js';

export interface KindredNode {
  httpPort: number;
  tcpPort: number;
  /** XMPP c2s with STARTTLS (RFC 6120) */
  xmppPort: number;
  /** XMPP c2s with direct TLS (XEP-0368) */
  xmppTlsPort: number;
  service: KindredService;
  metrics: Metrics;
  /** kindred-tls-front, when it terminates TLS on the TCP listeners (`tls.terminator`) */
  tlsFront: TlsFront | null;
  /** cluster mode only */
  cluster?: { shardManager: ShardManager; membership: Membership; shards: ShardMap };
  /** Drains connections, lets actors finish, flushes storage. */
  stop(): Promise<void>;
}

export interface NodeOverrides {
  storage?: Storage;
  /** in cluster mode it must be a NatsBus (its connection also carries the shard leases) */
  bus?: Bus;
  shards?: ShardMap;
  clock?: Clock;
}

async function openClusterStorage(config: KindredConfig): Promise<Storage> {
  const blobs = await S3BlobStore.open(config.cluster.s3);
  try {
    const { replicationFactor, ...cassandra } = config.cluster.cassandra;
    if (!Number.isInteger(replicationFactor) || replicationFactor < 1) throw new Error('cluster.cassandra.replicationFactor must be at least 1');
    // the replication applies only when the keyspace is created (an existing one keeps its own)
    const replication = { class: 'NetworkTopologyStrategy', [cassandra.localDataCenter]: replicationFactor };
    const storage = await openCassandraStorage({ ...cassandra, replication, blobs });
    return {
      ...storage,
      close: async () => {
        await storage.close();
        blobs.close();
      },
    };
  } catch (err) {
    blobs.close();
    throw err;
  }
}

function tokenSecret(config: KindredConfig): Buffer {
  if (config.tokenSecret) return Buffer.from(config.tokenSecret, 'hex');
  const file = join(config.dataDir, 'token-secret');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}

export async function startNode(config: KindredConfig, log: Logger, overrides: NodeOverrides = {}): Promise<KindredNode> {
  mkdirSync(config.dataDir, { recursive: true });
  const storage = overrides.storage ?? (config.cluster.enabled ? await openClusterStorage(config) : await openEmbeddedStorage(config.dataDir));
  // What started is stopped newest first, on a failed start as on stop() (parts given as
  // overrides belong to the caller and are left open).
  const stops = new StopStack();
  if (!overrides.storage) stops.push(() => storage.close());
  try {
    return await assemble(config, log, overrides, storage, stops);
  } catch (err) {
    await stops.unwind().catch(() => undefined);
    throw err;
  }
}

/** Starts the node's parts in dependency order on an open storage, registering each one's stop. */
async function assemble(config: KindredConfig, log: Logger, overrides: NodeOverrides, storage: Storage, stops: StopStack): Promise<KindredNode> {
  const clock = overrides.clock ?? systemClock;
  const cluster = config.cluster.enabled;
  const bus: Bus =
    overrides.bus ??
    (cluster
      ? await NatsBus.connect({
          servers: config.cluster.natsUrls,
          name: config.nodeId,
          onStatus: (s) => log.info({ nats: s }, 'nats status'),
          onError: (err, ctx) => log.warn({ err, ...ctx }, 'bus message failed'),
        })
      : new LocalBus());
  if (!overrides.bus) stops.push(() => bus.close());
  if (cluster && !(bus instanceof NatsBus)) throw new Error('cluster mode needs a NatsBus');
  const shards = overrides.shards ?? new ShardMap(config.shards);
  if (!overrides.shards && !cluster) shards.assignAll(config.nodeId);

  const views = new ProfileViews(storage.profiles, storage.images);
  const images = new ImageService({ images: storage.images, blobs: storage.blobs, config: config.images });
  const tokens = new TokenAuthority(tokenSecret(config), config.tokenTtlSeconds, () => clock.now());

  let metrics!: Metrics;
  const users: ActorSystem<UserMsg, unknown> = new ActorSystem<UserMsg, unknown>({
    kind: 'user',
    bus,
    shards,
    owner: config.nodeId,
    create: (userId) =>
      new UserActor(userId, { storage, views, clock, config, bus, users: () => users, onMessagePersisted: () => metrics.messages.inc() }),
    mailboxLimit: config.actors.mailboxLimit,
    idleMs: config.actors.idleMs,
    askTimeoutMs: config.actors.askTimeoutMs,
    clock,
    // an ask arriving while its shard moves between nodes waits for the new owner
    waitForOwner: cluster,
    // letters for a shard whose lease lapsed here (a stalled node) are refused unprocessed
    ...(cluster ? { mayServe: (shard: number) => shardManager?.mayServe(shard) ?? false } : {}),
  });
  metrics = new Metrics({ actors: () => users.activeCount, mailboxDepth: () => users.mailboxDepth });
  const hub = new SessionHub(
    bus,
    config.nodeId,
    (userId, connId) => users.tell(userId, { k: 'detach', connId }),
    (type) => metrics.events.inc({ type }),
  );
  // The deck index: built from storage before the node takes requests, then kept current over the bus.
  const recs = new Recommender({ storage, bus, clock, config: config.recs, log: (msg, extra) => log.info({ nodeId: config.nodeId, ...extra }, msg) });
  stops.push(() => recs.close());
  await recs.start();
  const service = new KindredService({
    recs,
    config,
    storage,
    clock,
    bus,
    users,
    hub,
    tokens,
    views,
    images,
    scramFakeSaltKey: createHmac('sha256', tokenSecret(config)).update('scram fake salt').digest(),
    observe: (op, seconds, ok) => metrics.commands.observe({ op, outcome: ok ? 'ok' : 'error' }, seconds),
  });
  await service.start();
  hub.start();
  stops.push(() => hub.stop());
  users.start();
  stops.push(() => users.stop());
  let membership: Membership | undefined;
  let shardManager: ShardManager | undefined;
  let sessionFailover: SessionFailover | undefined;
  if (cluster) {
    const nats = bus as NatsBus;
    membership = new Membership(bus, config.nodeId);
    shardManager = new ShardManager({
      nodeId: config.nodeId,
      bus: nats,
      nc: nats.nc,
      shards,
      membership,
      released: (shard) => users.whenReleased(shard),
      // the user's actor now lives elsewhere (or anew): tell it about this node's sessions
      onMoved: (shard) => {
        for (const { userId, session } of hub.sessionsWhere((u) => shards.shardOf(u) === shard)) users.tell(userId, { k: 'attach', session });
      },
      log: (msg, extra) => log.info({ nodeId: config.nodeId, ...extra }, msg),
    });
    sessionFailover = new SessionFailover({
      bus,
      membership,
      nodeGone: (nodeId, lapsed) => {
        users.tellLocal({ k: 'node-gone', nodeId });
        // a node that fell silent will never answer what it had received: fail those asks now,
        // not at their timeout (one leaving cleanly still answers them while it drains)
        if (lapsed) users.abandonAsksTo(nodeId);
      },
      reattachAll: () => {
        for (const { userId, session } of hub.sessionsWhere(() => true)) users.tell(userId, { k: 'attach', session });
      },
    });
    membership.start();
    sessionFailover.start();
    const [failover, members, manager] = [sessionFailover, membership, shardManager];
    // leave first, so the others compute the placement without us, then hand the shards over
    stops.push(async () => {
      failover.stop();
      members.stop();
      await manager.stop();
    });
    await shardManager.start(); // fails e.g. when the NATS server has no JetStream
  }
  // The book store's Books, Search and Customers services (docs/store.md), before Orders, which reserves stock through Books.
  const catalog: Catalog = await startCatalog({ config, log, bus, blobs: storage.blobs, accounts: storage.accounts });
  stops.push(() => catalog.stop());
  // The book store's Orders and Payment services (docs/orders.md); their order events reach
  // the customer's open sessions through the customer's actor.
  const allActorsHere = !cluster && !overrides.shards && !overrides.bus;
  const storeOrders: StoreOrders = await startStoreOrders({
    config,
    log,
    bus,
    blobs: storage.blobs,
    tokenSecret: tokenSecret(config),
    notify: (customerId, event) => {
      // Every actor lives on this node (embedded, shards not shared): a customer without an
      // active actor has no session to push to, and the letter (a msgpack copy of the order
      // through the bus, four per order) would only be dropped on arrival.
      if (allActorsHere && !users.isActive(customerId)) return;
      users.tellIfActive(customerId, { k: 'push', event });
    },
  });
  stops.push(() => storeOrders.stop());
  const pruneTimer = setInterval(() => tokens.pruneRevocations(), 3600_000);
  pruneTimer.unref();
  stops.push(() => clearInterval(pruneTimer));

  let ready = false;
  const nativeLimits = {
    maxSendBufferBytes: config.limits.maxSendBufferBytes,
    heartbeatSeconds: config.limits.heartbeatSeconds,
    maxFrameBytes: config.limits.maxFrameBytes,
    maxInFlight: 64,
    authTimeoutSeconds: config.limits.authTimeoutSeconds,
  };
  let ws!: ReturnType<typeof attachNativeWebSocket>;
  // the web front end (web/, built into dist/web): read once into memory, served at /
  const site = loadStaticSite(config.webDir ? resolve(config.webDir) : defaultWebDir());
  if (!site.index) log.warn({ dir: site.dir }, 'no web front end built there (npm run build): / answers 404');
  const http = createHttpServer({
    gateway: service,
    config,
    log,
    images,
    isReady: () => ready && (shardManager?.isReady() ?? true),
    metricsText: () => metrics.text(),
    bus,
    downloads: storeOrders.orders,
    onApp: (app) => {
      ws = attachNativeWebSocket(app, {
        gateway: service,
        limits: nativeLimits,
        onConnectionCount: (d) => metrics.connections.inc({ transport: 'ws' }, d),
        onServerClose: (reason) => metrics.disconnects.inc({ reason }),
      });
      attachStaticSite(app, site);
    },
  });
  let tlsFront: TlsFront | null = null;
  let tcp: NativeTcpListener | undefined;
  let xmpp: XmppServer | undefined;
  // the listeners, as far as they started: connections are drained before anything behind them stops
  stops.push(async () => {
    ready = false;
    ws?.close();
    await xmpp?.close();
    http.close();
    await tcp?.close();
    await tlsFront?.close();
  });
  // who terminates TLS on the TCP listeners (tls.terminator): kindred-tls-front, or node:tls here
  tlsFront = await startTlsTerminator(config.tlsTerminator, log);
  tcp = new NativeTcpListener({
    front: tlsFront,
    gateway: service,
    limits: nativeLimits,
    tls: config.tls,
    onConnectionCount: (d) => metrics.connections.inc({ transport: 'tcp' }, d),
    onServerClose: (reason) => metrics.disconnects.inc({ reason }),
  });
  // (a listener that cannot start, e.g. a port in use, fails the start: startNode releases the rest)
  const httpPort = await http.listen(config.host, config.httpPort);
  storeOrders.registerWebhook(`${config.tls ? 'https' : 'http'}://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${httpPort}`);
  const tcpPort = await tcp.listen(config.host, config.tcpPort);
  xmpp = await startXmpp({
    gateway: service,
    config,
    log,
    images,
    app: http.app,
    tlsFront,
    onConnectionCount: (d) => metrics.connections.inc({ transport: 'xmpp' }, d),
  });
  ready = true;

  let stopping: Promise<void> | undefined;
  return {
    httpPort,
    tcpPort,
    xmppPort: xmpp.ports.port,
    xmppTlsPort: xmpp.ports.tlsPort,
    service,
    metrics,
    tlsFront,
    ...(shardManager && membership ? { cluster: { shardManager, membership, shards } } : {}),
    stop() {
      stopping ??= stops.unwind();
      return stopping;
    },
  };
}
