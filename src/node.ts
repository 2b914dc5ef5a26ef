/**
 * The one wiring file: composes a Kindred node from its parts with named
 * dependencies. Embedded mode: LocalBus, every shard owned by this node, SQLite
 * storage and local files.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
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
import { TokenAuthority } from './domain/auth.js';
import { ProfileViews } from './domain/profiles.js';
import { ImageService } from './domain/images.js';
import { Metrics } from './metrics.js';
import { openEmbeddedStorage } from './storage/embedded.js';
import { createHttpServer } from './protocol/http/server.js';
import { attachNativeWebSocket } from './protocol/native/ws.js';
import { NativeTcpListener } from './protocol/native/tcp.js';
import { startXmpp, type XmppServer } from './protocol/xmpp/server.js';

export interface KindredNode {
  httpPort: number;
  tcpPort: number;
  /** XMPP c2s with STARTTLS (RFC 6120) */
  xmppPort: number;
  /** XMPP c2s with direct TLS (XEP-0368) */
  xmppTlsPort: number;
  service: KindredService;
  metrics: Metrics;
  /** Drains connections, lets actors finish, flushes storage. */
  stop(): Promise<void>;
}

export interface NodeOverrides {
  storage?: Storage;
  bus?: Bus;
  shards?: ShardMap;
  clock?: Clock;
}

function tokenSecret(config: KindredConfig): Buffer {
  if (config.tokenSecret) return Buffer.from(config.tokenSecret, 'hex');
  const file = join(config.dataDir, 'token-secret');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}

export async function startNode(config: KindredConfig, log: Logger, overrides: NodeOverrides = {}): Promise<KindredNode> {
  mkdirSync(config.dataDir, { recursive: true });
  const clock = overrides.clock ?? systemClock;
  const storage = overrides.storage ?? (await openEmbeddedStorage(config.dataDir));
  const bus = overrides.bus ?? new LocalBus();
  const shards = overrides.shards ?? new ShardMap(config.shards);
  if (!overrides.shards) shards.assignAll(config.nodeId);

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
  });
  metrics = new Metrics({ actors: () => users.activeCount, mailboxDepth: () => users.mailboxDepth });
  const hub = new SessionHub(
    bus,
    config.nodeId,
    (userId, connId) => users.tell(userId, { k: 'detach', connId }),
    (type) => metrics.events.inc({ type }),
  );
  const service = new KindredService({
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
  users.start();
  const pruneTimer = setInterval(() => tokens.pruneRevocations(), 3600_000);
  pruneTimer.unref();

  let ready = false;
  const nativeLimits = {
    maxSendBufferBytes: config.limits.maxSendBufferBytes,
    heartbeatSeconds: config.limits.heartbeatSeconds,
    maxFrameBytes: config.limits.maxFrameBytes,
    maxInFlight: 64,
    authTimeoutSeconds: config.limits.authTimeoutSeconds,
  };
  let ws!: ReturnType<typeof attachNativeWebSocket>;
  const http = createHttpServer({
    gateway: service,
    config,
    log,
    images,
    isReady: () => ready,
    metricsText: () => metrics.text(),
    onApp: (app) => {
      ws = attachNativeWebSocket(app, {
        gateway: service,
        limits: nativeLimits,
        onConnectionCount: (d) => metrics.connections.inc({ transport: 'ws' }, d),
        onServerClose: (reason) => metrics.disconnects.inc({ reason }),
      });
    },
  });
  const tcp = new NativeTcpListener({
    gateway: service,
    limits: nativeLimits,
    tls: config.tls,
    onConnectionCount: (d) => metrics.connections.inc({ transport: 'tcp' }, d),
    onServerClose: (reason) => metrics.disconnects.inc({ reason }),
  });
  let xmpp: XmppServer | undefined;
  const shutdown = async () => {
    ready = false;
    ws.close();
    await xmpp?.close();
    http.close();
    await tcp.close();
    clearInterval(pruneTimer);
    await users.stop();
    hub.stop();
    if (!overrides.bus) await bus.close();
    if (!overrides.storage) await storage.close();
  };
  let httpPort: number;
  let tcpPort: number;
  try {
    httpPort = await http.listen(config.host, config.httpPort);
    tcpPort = await tcp.listen(config.host, config.tcpPort);
    xmpp = await startXmpp({
      gateway: service,
      config,
      log,
      images,
      app: http.app,
      onConnectionCount: (d) => metrics.connections.inc({ transport: 'xmpp' }, d),
    });
  } catch (err) {
    // A listener could not start (a port in use…): release what did start, so nothing leaks.
    await shutdown().catch(() => undefined);
    throw err;
  }
  ready = true;

  let stopping: Promise<void> | undefined;
  return {
    httpPort,
    tcpPort,
    xmppPort: xmpp.ports.port,
    xmppTlsPort: xmpp.ports.tlsPort,
    service,
    metrics,
    stop() {
      stopping ??= shutdown();
      return stopping;
    },
  };
}
