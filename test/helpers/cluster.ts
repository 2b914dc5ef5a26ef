/**
 * Kindred cluster nodes in the test's own process, on the real services a cluster needs:
 * nats-server with JetStream, Cassandra and versitygw (see nats.ts, cassandra.ts, s3.ts).
 * One `ClusterServices` per test file; its nodes share a token secret and a keyspace named
 * after the file and its pid, so files that share a Cassandra never see each other's data.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createLogger, type Logger } from '../../src/log.js';
import { startNode, type KindredNode } from '../../src/node.js';
import { NatsBus } from '../../src/actors/nats-bus.js';
import { startNats, type NatsServer } from './nats.js';
import { startCassandra, type TestCassandra } from './cassandra.js';
import { startS3, type S3Server } from './s3.js';
import { sleep } from './async.js';
import { nameService } from './exit-watch.js';
import { testConfig } from './server.js';

type Teardown = { teardown(fn: () => unknown): void; comment(...msg: unknown[]): void };

export interface ClusterServices {
  nats: NatsServer;
  cassandra: TestCassandra;
  s3: S3Server;
  /** shared by every node, so a token issued by one is accepted by all */
  tokenSecret: string;
  keyspace: string;
  bucket: string;
}

/** `name` tells the keyspace and bucket apart; `cassandra` is passed to startCassandra. */
export async function startClusterServices(
  t: Teardown,
  name: string,
  opts: { cassandra?: Parameters<typeof startCassandra>[1] } = {},
): Promise<ClusterServices> {
  const nats = await startNats(t, { jetstream: true });
  const cassandra = await startCassandra(t, opts.cassandra);
  t.comment(`Cassandra up after ${cassandra.startSeconds.toFixed(1)} s`);
  const s3 = await startS3();
  t.teardown(() => s3.close());
  // so that a leaked socket is reported by what it connects to (exit-watch.ts)
  nameService(nats.port, 'nats-server');
  nameService(cassandra.port, 'cassandra CQL');
  nameService(s3.port, 'versitygw S3');
  return { nats, cassandra, s3, tokenSecret: randomBytes(32).toString('hex'), keyspace: `kindred_${name}_${process.pid}`, bucket: `kindred-${name}` };
}

export interface ClusterNode {
  id: string;
  node: KindredNode;
  /** set with `ownBus`: the test can cut this node off NATS without stopping it */
  bus?: NatsBus;
  base: string;
  wsUrl: string;
  xmpp: string;
  stop(): Promise<void>;
}

export async function startClusterNode(
  t: Teardown,
  svc: ClusterServices,
  id: string,
  opts: { ownBus?: boolean; log?: Logger; config?: Record<string, unknown> } = {},
): Promise<ClusterNode> {
  const dataDir = mkdtempSync(join(tmpdir(), `kindred-${id}-`));
  const config = testConfig(dataDir, {
    nodeId: id,
    tokenSecret: svc.tokenSecret,
    cluster: {
      enabled: true,
      natsUrls: [svc.nats.url],
      cassandra: { contactPoints: [svc.cassandra.contactPoint], localDataCenter: 'datacenter1', keyspace: svc.keyspace },
      s3: svc.s3.options(svc.bucket),
    },
    ...opts.config,
  } as Parameters<typeof testConfig>[1]);
  const bus = opts.ownBus ? await NatsBus.connect({ servers: [svc.nats.url], name: id, reconnectWaitMs: 100 }) : undefined;
  const node = await startNode(config, opts.log ?? createLogger('silent'), bus ? { bus } : {});
  nameService(node.httpPort, `kindred ${id} http/ws`);
  nameService(node.tcpPort, `kindred ${id} native tcp`);
  nameService(node.xmppPort, `kindred ${id} xmpp`);
  let stopped: Promise<void> | undefined;
  const cn: ClusterNode = {
    id,
    node,
    bus,
    base: `http://127.0.0.1:${node.httpPort}`,
    wsUrl: `ws://127.0.0.1:${node.httpPort}/ws`,
    xmpp: `xmpp://127.0.0.1:${node.xmppPort}`,
    stop: () =>
      (stopped ??= (async () => {
        await node.stop();
        await bus?.close();
        rmSync(dataDir, { recursive: true, force: true });
      })()),
  };
  t.teardown(() => cn.stop());
  return cn;
}

/** Every shard hosted by exactly one of `nodes`. */
export function covered(nodes: Array<{ node: KindredNode }>, shardCount = 256): boolean {
  const counts = new Array<number>(shardCount).fill(0);
  for (const n of nodes) for (const s of n.node.cluster!.shardManager.held()) counts[s]!++;
  return counts.every((c) => c === 1);
}

/** Waits for `cond` (sync or async); resolves with the milliseconds it took. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string, pollMs = 25): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(pollMs);
  }
  return Date.now() - start;
}
