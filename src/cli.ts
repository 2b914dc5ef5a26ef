#!/usr/bin/env node
/**
 * `kindred start [options]`: runs one node (embedded mode, or cluster mode with --cluster). See README for options.
 */
import { loadConfig } from './config.js';
import { createLogger } from './log.js';
import { startNode } from './node.js';

const USAGE = `usage: kindred start [--config FILE] [--data-dir DIR] [--host HOST] [--http-port N] [--tcp-port N]
                     [--domain NAME] [--node-id ID] [--log-level LEVEL] [--token-secret HEX]
                     [--tls-cert FILE --tls-key FILE] [--xmpp-port N] [--xmpp-tls-port N] [--messaging matches|open]
                     [--cluster [--nats-urls URL,...] [--cassandra-contact-points HOST:PORT,...] [--cassandra-dc DC]
                      [--cassandra-keyspace KS] [--s3-endpoint HOST] [--s3-port N] [--s3-ssl=true|false] [--s3-access-key K]
                      [--s3-secret-key S] [--s3-bucket B] [--s3-region R]]
Environment: KINDRED_CONFIG, KINDRED_DATA_DIR, KINDRED_HOST, KINDRED_HTTP_PORT, KINDRED_TCP_PORT,
             KINDRED_DOMAIN, KINDRED_NODE_ID, KINDRED_LOG_LEVEL, KINDRED_TOKEN_SECRET, KINDRED_TLS_CERT, KINDRED_TLS_KEY,
             KINDRED_XMPP_PORT, KINDRED_XMPP_TLS_PORT, KINDRED_MESSAGING, KINDRED_CLUSTER, KINDRED_NATS_URLS,
             KINDRED_CASSANDRA_CONTACT_POINTS, KINDRED_CASSANDRA_DC, KINDRED_CASSANDRA_KEYSPACE, KINDRED_S3_ENDPOINT,
             KINDRED_S3_PORT, KINDRED_S3_SSL, KINDRED_S3_ACCESS_KEY, KINDRED_S3_SECRET_KEY, KINDRED_S3_BUCKET, KINDRED_S3_REGION`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command !== 'start' || rest.includes('--help') || rest.includes('-h')) {
    console.log(USAGE);
    process.exit(command === 'start' || command === '--help' || command === undefined ? 0 : 2);
  }
  let config;
  try {
    config = loadConfig(rest);
  } catch (err) {
    console.error(`kindred: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel, { node: config.nodeId });
  const node = await startNode(config, log);
  const scheme = config.tls ? 'https' : 'http';
  log.info({ dataDir: config.dataDir, http: node.httpPort, tcp: node.tcpPort, xmpp: node.xmppPort, xmppTls: node.xmppTlsPort }, 'kindred started');
  const mode = config.cluster.enabled
    ? `cluster mode: NATS ${config.cluster.natsUrls.join(',')}, Cassandra keyspace ${config.cluster.cassandra.keyspace}`
    : `embedded mode, data in ${config.dataDir}`;
  console.log(`kindred ${config.nodeId} ready (${mode})`);
  console.log(`  HTTP + REST   ${scheme}://${config.host}:${node.httpPort}/v1   (OpenAPI at /openapi.json, health at /healthz, metrics at /metrics)`);
  console.log(`  native WS     ${config.tls ? 'wss' : 'ws'}://${config.host}:${node.httpPort}/ws`);
  console.log(`  native TCP    ${config.host}:${node.tcpPort}${config.tls ? ' (TLS)' : ''}`);
  console.log(`  XMPP c2s      ${config.host}:${node.xmppPort} (STARTTLS), ${config.host}:${node.xmppTlsPort} (direct TLS), domain ${config.domain}`);
  console.log(`  XMPP WS       ${config.tls ? 'wss' : 'ws'}://${config.host}:${node.httpPort}/xmpp-websocket`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining connections and flushing storage');
    node.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err) => {
        log.error({ err }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

process.on('unhandledRejection', (err) => {
  console.error('kindred: unhandled rejection', err);
});

main(process.argv.slice(2)).catch((err) => {
  console.error('kindred: failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
