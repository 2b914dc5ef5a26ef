/**
 * Configuration: defaults < config file (--config / KINDRED_CONFIG, JSON) < environment
 * (KINDRED_*) < command-line flags. docs and README list every key.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface KindredConfig {
  dataDir: string;
  host: string;
  httpPort: number;
  tcpPort: number;
  domain: string;
  /** who may chat: `matches` (Tindr rules) or `open` (any registered users, as on an ordinary XMPP server) */
  messaging: 'matches' | 'open';
  nodeId: string;
  /** hex secret for signing access tokens; generated into the data dir when empty */
  tokenSecret: string;
  tokenTtlSeconds: number;
  /** password hashing cost: scrypt N and SCRAM PBKDF2 iterations (RFC 7677 asks for >= 4096) */
  auth: { scryptN: number; scramIterations: number; registration: boolean };
  logLevel: string;
  tls: { certFile: string; keyFile: string } | null;
  /**
   * who terminates TLS on the TCP listeners (native TCP, XMPP): set as `tls.terminator`;
   * `front` = kindred-tls-front (src/protocol/tls-front/), `node` = node:tls, `auto` = the front when built
   */
  tlsTerminator: 'auto' | 'node' | 'front';
  shards: number;
  actors: { mailboxLimit: number; idleMs: number; askTimeoutMs: number };
  limits: {
    maxFrameBytes: number;
    maxHttpBodyBytes: number;
    maxMessageChars: number;
    /** bytes queued for a slow reader before it is disconnected */
    maxSendBufferBytes: number;
    heartbeatSeconds: number;
    authTimeoutSeconds: number;
    likesPerMinute: number;
    likesBurst: number;
    messagesPerSecond: number;
    messagesBurst: number;
  };
  images: {
    maxBytes: number;
    maxWidth: number;
    maxHeight: number;
    minWidth: number;
    minHeight: number;
    maxPerProfile: number;
  };
  /** XMPP c2s (RFC 6120, RFC 7395, XEP-0368); see src/protocol/xmpp/ */
  xmpp: XmppConfig;
  /** cluster mode (docs/cluster.md): NATS bus, Cassandra tables, S3 blobs, leased shards */
  cluster: ClusterConfig;
  /** the book store's Books, Search and Customers services (docs/store.md) */
  store: StoreConfig;
  /** the built web front end served on the HTTP port; empty = the build in <repo>/dist/web */
  webDir: string;
  /** the ranked deck (docs/recommendations.md) */
  recs: RecsConfig;
  /** the book store's Orders and Payment services (docs/orders.md) */
  orders: OrdersSettings;
}

export interface OrdersSettings {
  /** base URL of the payment provider (the stand-in: node dist/payments/provider/main.js) */
  providerUrl: string;
  /** sent as `Authorization: Bearer <key>` to the provider; empty = none */
  providerApiKey: string;
  /** shared with the provider: HMAC key of its webhooks; empty = generated into <dataDir>/payments-webhook-secret */
  webhookSecret: string;
  /** where the provider sends webhooks; empty = this node's /webhooks/payments, registered at start */
  webhookUrl: string;
  /** per provider request, and attempts in all (retried with backoff on timeouts and 5xx) */
  providerTimeoutMs: number;
  providerAttempts: number;
  /** settlement worker threads (piscina) */
  poolSize: number;
  taxBasisPoints: number;
  downloadTtlSeconds: number;
  maxDownloads: number;
  /** an order without stock or payment this long after checkout fails and releases its stock */
  settleDeadlineSeconds: number;
  /** how long POST /v1/orders waits for a final state by default */
  checkoutWaitMs: number;
}

export interface RecsConfig {
  /** deck worker threads; 0 = one per core */
  threads: number;
  /** deck pages waiting for a worker before new ones are refused with OVERLOADED */
  maxQueue: number;
  /** geo cell size in degrees (must divide 180) */
  cellDeg: number;
  /** candidates ranked together (a distance tier) */
  tierSize: number;
  /** index slots allocated at start (it doubles when full) */
  initialCapacity: number;
  /** users whose exclusions (swiped, matched, blocked) are cached, and for how long */
  exclusionCacheUsers: number;
  exclusionCacheMs: number;
}

export interface StoreConfig {
  /** usernames of the Kindred accounts that may change the catalogue (case-insensitive) */
  admins: string[];
  /** largest ebook file upload; in a cluster also bounded by the NATS max_payload */
  ebookMaxBytes: number;
  /** largest bulk import body (JSON array or NDJSON) */
  importMaxBytes: number;
  /** each node re-reads the whole catalogue into its search index this often; 0 = only at start */
  searchRebuildMinutes: number;
}

export interface ClusterConfig {
  enabled: boolean;
  natsUrls: string[];
  /** replicationFactor: copies per data center, used only when Kindred creates the keyspace (3 in production) */
  cassandra: { contactPoints: string[]; localDataCenter: string; keyspace: string; replicationFactor: number };
  s3: { endPoint: string; port: number; useSSL: boolean; accessKey: string; secretKey: string; bucket: string; region: string };
}

export interface XmppConfig {
  /** c2s with STARTTLS (RFC 6120); 0 picks a free port */
  port: number;
  /** c2s with direct TLS (XEP-0368); 0 picks a free port */
  tlsPort: number;
  /** SASL is offered only after STARTTLS (loopback WebSocket and wss:// count as acceptable) */
  requireTls: boolean;
  /** how long a stream-management session waits for a resumption */
  resumeTimeoutSeconds: number;
  /** a top-level element larger than this ends the stream with <policy-violation/> */
  maxStanzaBytes: number;
  /** per-stream token bucket on inbound elements: beyond it, processing is delayed */
  stanzasPerSecond: number;
  stanzaBurst: number;
}

export const defaults: KindredConfig = {
  dataDir: './.data',
  host: '127.0.0.1',
  httpPort: 8080,
  tcpPort: 7070,
  domain: 'localhost',
  messaging: 'matches',
  nodeId: 'node-1',
  tokenSecret: '',
  tokenTtlSeconds: 7 * 24 * 3600,
  auth: { scryptN: 16384, scramIterations: 4096, registration: true },
  logLevel: 'info',
  tls: null,
  tlsTerminator: 'auto',
  shards: 256,
  actors: { mailboxLimit: 1024, idleMs: 120_000, askTimeoutMs: 10_000 },
  limits: {
    maxFrameBytes: 64 * 1024,
    maxHttpBodyBytes: 64 * 1024,
    maxMessageChars: 4000,
    maxSendBufferBytes: 1024 * 1024,
    heartbeatSeconds: 30,
    authTimeoutSeconds: 30,
    likesPerMinute: 120,
    likesBurst: 60,
    messagesPerSecond: 10,
    messagesBurst: 50,
  },
  images: {
    maxBytes: 5 * 1024 * 1024,
    maxWidth: 4096,
    maxHeight: 4096,
    minWidth: 64,
    minHeight: 64,
    maxPerProfile: 5,
  },
  store: { admins: [], ebookMaxBytes: 50 * 1024 * 1024, importMaxBytes: 32 * 1024 * 1024, searchRebuildMinutes: 0 },
  xmpp: {
    port: 5222,
    tlsPort: 5223,
    requireTls: true,
    resumeTimeoutSeconds: 300,
    maxStanzaBytes: 262144,
    stanzasPerSecond: 50,
    stanzaBurst: 200,
  },
  cluster: {
    enabled: false,
    natsUrls: ['nats://127.0.0.1:4222'],
    cassandra: { contactPoints: ['127.0.0.1:9042'], localDataCenter: 'datacenter1', keyspace: 'kindred', replicationFactor: 1 },
    s3: { endPoint: '127.0.0.1', port: 7070, useSSL: false, accessKey: '', secretKey: '', bucket: 'kindred', region: 'us-east-1' },
  },
  webDir: '',
  recs: { threads: 0, maxQueue: 1000, cellDeg: 0.1, tierSize: 300, initialCapacity: 65_536, exclusionCacheUsers: 50_000, exclusionCacheMs: 10 * 60_000 },
  orders: {
    providerUrl: 'http://127.0.0.1:8099',
    providerApiKey: '',
    webhookSecret: '',
    webhookUrl: '',
    providerTimeoutMs: 2000,
    providerAttempts: 4,
    poolSize: 2,
    taxBasisPoints: 1000,
    downloadTtlSeconds: 86_400,
    maxDownloads: 5,
    settleDeadlineSeconds: 60,
    checkoutWaitMs: 10_000,
  },
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep-merges `patch` into `base`, keeping the base's types: unknown keys are an error. */
function merge<T>(base: T, patch: unknown, path: string): T {
  if (!isObject(patch)) return base;
  const out: Json = { ...(base as Json) };
  for (const [key, value] of Object.entries(patch)) {
    if (!(key in out)) throw new Error(`unknown config key "${path}${key}"`);
    const current = out[key];
    if (isObject(current) && isObject(value)) out[key] = merge(current, value, `${path}${key}.`);
    else if (current !== null && value !== null && typeof current !== typeof value) {
      throw new Error(`config key "${path}${key}" must be a ${typeof current}, got ${JSON.stringify(value)}`);
    } else if (Array.isArray(current) !== Array.isArray(value)) {
      throw new Error(`config key "${path}${key}" has the wrong shape`);
    } else out[key] = value;
  }
  return out as T;
}

/** Flags and env vars for the documented top-level settings. */
type Kind = 'num' | 'bool' | 'list';
const FLAGS: Record<string, { key: keyof KindredConfig | `${'tls' | 'xmpp' | 'cluster' | 'recs' | 'orders' | 'store'}.${string}`; env: string; num?: boolean; kind?: Kind }> = {
  '--data-dir': { key: 'dataDir', env: 'KINDRED_DATA_DIR' },
  '--host': { key: 'host', env: 'KINDRED_HOST' },
  '--http-port': { key: 'httpPort', env: 'KINDRED_HTTP_PORT', num: true },
  '--tcp-port': { key: 'tcpPort', env: 'KINDRED_TCP_PORT', num: true },
  '--domain': { key: 'domain', env: 'KINDRED_DOMAIN' },
  '--messaging': { key: 'messaging', env: 'KINDRED_MESSAGING' },
  '--node-id': { key: 'nodeId', env: 'KINDRED_NODE_ID' },
  '--log-level': { key: 'logLevel', env: 'KINDRED_LOG_LEVEL' },
  '--token-secret': { key: 'tokenSecret', env: 'KINDRED_TOKEN_SECRET' },
  '--tls-cert': { key: 'tls.certFile', env: 'KINDRED_TLS_CERT' },
  '--tls-key': { key: 'tls.keyFile', env: 'KINDRED_TLS_KEY' },
  '--tls-terminator': { key: 'tls.terminator', env: 'KINDRED_TLS_TERMINATOR' },
  '--xmpp-port': { key: 'xmpp.port', env: 'KINDRED_XMPP_PORT', num: true },
  '--xmpp-tls-port': { key: 'xmpp.tlsPort', env: 'KINDRED_XMPP_TLS_PORT', num: true },
  '--cluster': { key: 'cluster.enabled', env: 'KINDRED_CLUSTER', kind: 'bool' },
  '--nats-urls': { key: 'cluster.natsUrls', env: 'KINDRED_NATS_URLS', kind: 'list' },
  '--cassandra-contact-points': { key: 'cluster.cassandra.contactPoints', env: 'KINDRED_CASSANDRA_CONTACT_POINTS', kind: 'list' },
  '--cassandra-dc': { key: 'cluster.cassandra.localDataCenter', env: 'KINDRED_CASSANDRA_DC' },
  '--cassandra-keyspace': { key: 'cluster.cassandra.keyspace', env: 'KINDRED_CASSANDRA_KEYSPACE' },
  '--cassandra-replication-factor': { key: 'cluster.cassandra.replicationFactor', env: 'KINDRED_CASSANDRA_REPLICATION_FACTOR', num: true },
  '--s3-endpoint': { key: 'cluster.s3.endPoint', env: 'KINDRED_S3_ENDPOINT' },
  '--s3-port': { key: 'cluster.s3.port', env: 'KINDRED_S3_PORT', num: true },
  '--s3-ssl': { key: 'cluster.s3.useSSL', env: 'KINDRED_S3_SSL', kind: 'bool' },
  '--s3-access-key': { key: 'cluster.s3.accessKey', env: 'KINDRED_S3_ACCESS_KEY' },
  '--s3-secret-key': { key: 'cluster.s3.secretKey', env: 'KINDRED_S3_SECRET_KEY' },
  '--s3-bucket': { key: 'cluster.s3.bucket', env: 'KINDRED_S3_BUCKET' },
  '--s3-region': { key: 'cluster.s3.region', env: 'KINDRED_S3_REGION' },
  '--web-dir': { key: 'webDir', env: 'KINDRED_WEB_DIR' },
  '--store-admins': { key: 'store.admins', env: 'KINDRED_STORE_ADMINS', kind: 'list' },
  '--deck-threads': { key: 'recs.threads', env: 'KINDRED_DECK_THREADS', num: true },
  '--payments-url': { key: 'orders.providerUrl', env: 'KINDRED_PAYMENTS_URL' },
  '--payments-webhook-secret': { key: 'orders.webhookSecret', env: 'KINDRED_PAYMENTS_WEBHOOK_SECRET' },
  '--orders-pool-size': { key: 'orders.poolSize', env: 'KINDRED_ORDERS_POOL_SIZE', num: true },
};

function setValue(target: Json, key: string, raw: string, num: boolean | undefined, kind?: Kind): void {
  if (num && !/^\d{1,5}$/.test(raw)) throw new Error(`${key} must be a port number, got "${raw}"`);
  if (kind === 'bool' && !/^(1|0|true|false|yes|no)$/i.test(raw)) throw new Error(`${key} must be true or false, got "${raw}"`);
  const value: unknown = num
    ? Number(raw)
    : kind === 'bool'
      ? /^(1|true|yes)$/i.test(raw)
      : kind === 'list'
        ? raw.split(',').map((v) => v.trim()).filter((v) => v !== '')
        : raw;
  // A dotted key ("tls.certFile", "xmpp.port") sets a nested value, creating the objects on the way.
  const path = key.split('.');
  let obj = target;
  for (const part of path.slice(0, -1)) {
    if (!isObject(obj[part])) obj[part] = {};
    obj = obj[part] as Json;
  }
  obj[path[path.length - 1]!] = value;
}

function mergeTls(...parts: unknown[]): KindredConfig['tls'] {
  const tls: Json = {};
  for (const part of parts) if (isObject(part)) Object.assign(tls, part);
  delete tls.terminator; // kept apart, in tlsTerminator (withTlsTerminator)
  if (Object.keys(tls).length === 0) return null;
  for (const k of Object.keys(tls)) if (k !== 'certFile' && k !== 'keyFile') throw new Error(`unknown config key "tls.${k}"`);
  return { certFile: String(tls.certFile ?? ''), keyFile: String(tls.keyFile ?? '') };
}

/** `tls.terminator` (the last one set among `parts`) goes to `tlsTerminator`, so `tls` stays "a certificate is configured". */
function withTlsTerminator(config: KindredConfig, ...parts: unknown[]): KindredConfig {
  let terminator: unknown = config.tlsTerminator;
  for (const part of parts) if (isObject(part) && part.terminator !== undefined) terminator = part.terminator;
  if (terminator !== 'auto' && terminator !== 'node' && terminator !== 'front') throw new Error('tls.terminator must be "auto", "node" or "front"');
  return { ...config, tlsTerminator: terminator };
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): KindredConfig {
  const fromEnv: Json = {};
  const fromFlags: Json = {};
  let configFile = env.KINDRED_CONFIG;
  for (const spec of Object.values(FLAGS)) {
    const raw = env[spec.env];
    if (raw !== undefined && raw !== '') setValue(fromEnv, spec.key, raw, spec.num, spec.kind);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [name, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = inline ?? argv[i + 1];
    if (name === '--config') {
      configFile = value;
      if (inline === undefined) i++;
      continue;
    }
    const spec = FLAGS[name];
    if (!spec) throw new Error(`unknown option ${name}`);
    if (spec.kind === 'bool' && inline === undefined) {
      // a bare switch (`--cluster`)
      setValue(fromFlags, spec.key, 'true', false, 'bool');
      continue;
    }
    if (value === undefined) throw new Error(`option ${name} needs a value`);
    setValue(fromFlags, spec.key, value, spec.num, spec.kind);
    if (inline === undefined) i++;
  }
  let config = defaults;
  if (configFile) config = merge(config, JSON.parse(readFileSync(resolve(configFile), 'utf8')), '');
  // tls starts as null, so its keys merge by hand: cert and key may come from different sources.
  const { tls: envTls, ...envRest } = fromEnv;
  const { tls: flagTls, ...flagRest } = fromFlags;
  config = merge(config, envRest, '');
  config = merge(config, flagRest, '');
  config = withTlsTerminator(config, config.tls, envTls, flagTls);
  config = { ...config, tls: mergeTls(config.tls, envTls, flagTls) };
  if (config.messaging !== 'matches' && config.messaging !== 'open') throw new Error('messaging must be "matches" or "open"');
  if (config.tls && (!config.tls.certFile || !config.tls.keyFile)) throw new Error('TLS needs both --tls-cert and --tls-key');
  return { ...config, dataDir: resolve(config.dataDir) };
}

/** A config for tests and embedding: defaults with overrides, no env or argv. */
export function makeConfig(overrides: unknown = {}): KindredConfig {
  const merged = merge(defaults, overrides, '');
  const config = { ...withTlsTerminator(merged, merged.tls), tls: mergeTls(merged.tls) };
  return { ...config, dataDir: resolve(config.dataDir) };
}
