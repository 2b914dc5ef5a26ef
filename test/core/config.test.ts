import t from 'tap';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, defaults } from '../../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'kindred-config-'));
const file = (json: unknown) => {
  const f = join(dir, `c${Math.random()}.json`);
  writeFileSync(f, JSON.stringify(json));
  return f;
};

t.test('precedence: defaults < file < env < flags', async (t) => {
  const f = file({ httpPort: 9000, tcpPort: 9001, domain: 'file.example', limits: { likesBurst: 5 } });
  const c = loadConfig(['--config', f, '--http-port', '9100'], { KINDRED_TCP_PORT: '9101', KINDRED_DOMAIN: 'env.example' });
  t.equal(c.httpPort, 9100, 'flag beats file');
  t.equal(c.tcpPort, 9101, 'env beats file');
  t.equal(c.domain, 'env.example');
  t.equal(c.limits.likesBurst, 5, 'nested keys merge');
  t.equal(c.limits.likesPerMinute, defaults.limits.likesPerMinute, 'siblings keep defaults');
  t.equal(c.host, '127.0.0.1', 'loopback by default');
});

t.test('TLS cert and key may come from different sources', async (t) => {
  t.same(loadConfig(['--tls-key', 'k.pem'], { KINDRED_TLS_CERT: 'c.pem' }).tls, { certFile: 'c.pem', keyFile: 'k.pem' });
  t.same(loadConfig(['--config', file({ tls: { certFile: 'a', keyFile: 'b' } })], {}).tls, { certFile: 'a', keyFile: 'b' });
  t.throws(() => loadConfig(['--tls-cert', 'c.pem'], {}), /both/);
});

t.test('bad values are refused with the key named', async (t) => {
  t.throws(() => loadConfig(['--http-port', ''], {}), /httpPort/);
  t.throws(() => loadConfig(['--http-port', '0x10'], {}), /httpPort/);
  t.throws(() => loadConfig(['--config', file({ httpPort: '8080' })], {}), /httpPort.*number/);
  t.throws(() => loadConfig(['--config', file({ limits: { nope: 1 } })], {}), /limits\.nope/);
  t.throws(() => loadConfig(['--bogus', '1'], {}), /unknown option --bogus/);
});

t.test('cluster mode: off by default; --cluster, env lists and nested keys', async (t) => {
  t.equal(loadConfig([], {}).cluster.enabled, false);
  const c = loadConfig(['--cluster', '--s3-port', '7171'], {
    KINDRED_NATS_URLS: 'nats://10.0.0.1:4222, nats://10.0.0.2:4222',
    KINDRED_CASSANDRA_CONTACT_POINTS: '10.0.0.5:9042,10.0.0.6',
    KINDRED_S3_ENDPOINT: 's3.internal',
    KINDRED_S3_BUCKET: 'chat',
  });
  t.equal(c.cluster.enabled, true, 'a bare --cluster switches it on');
  t.same(c.cluster.natsUrls, ['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222']);
  t.same(c.cluster.cassandra.contactPoints, ['10.0.0.5:9042', '10.0.0.6']);
  t.equal(c.cluster.cassandra.localDataCenter, 'datacenter1', 'siblings keep defaults');
  t.match(c.cluster.s3, { endPoint: 's3.internal', bucket: 'chat', port: 7171, region: 'us-east-1' });
  t.equal(loadConfig([], { KINDRED_CLUSTER: '1' }).cluster.enabled, true);
  t.equal(loadConfig(['--cluster=false'], { KINDRED_CLUSTER: '1' }).cluster.enabled, false, 'the flag beats the env');
  t.throws(() => loadConfig([], { KINDRED_CLUSTER: 'maybe' }), /cluster\.enabled/);
  t.same(loadConfig(['--config', file({ cluster: { natsUrls: ['nats://a:1'] } })], {}).cluster.natsUrls, ['nats://a:1']);
});
