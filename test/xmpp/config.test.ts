/** The xmpp section of the configuration: defaults, flags and environment for the two ports. */
import t from 'tap';
import { loadConfig, makeConfig } from '../../src/config.js';

t.test('defaults', async (t) => {
  t.same(makeConfig().xmpp, { port: 5222, tlsPort: 5223, requireTls: true, resumeTimeoutSeconds: 300, maxStanzaBytes: 262144, stanzasPerSecond: 50, stanzaBurst: 200 });
});

t.test('flags and environment set the ports, nested keys keep their siblings', async (t) => {
  const c = loadConfig(['--xmpp-port', '6222'], { KINDRED_XMPP_TLS_PORT: '6223' });
  t.equal(c.xmpp.port, 6222);
  t.equal(c.xmpp.tlsPort, 6223);
  t.equal(c.xmpp.requireTls, true);
  t.equal(c.xmpp.maxStanzaBytes, 262144);
  t.equal(loadConfig(['--xmpp-port=0']).xmpp.port, 0, 'port 0 picks a free port');
  t.throws(() => loadConfig(['--xmpp-port', 'x']), /port number/);
  const tls = loadConfig(['--tls-cert', 'c.pem'], { KINDRED_TLS_KEY: 'k.pem' }).tls;
  t.match(tls, { certFile: 'c.pem', keyFile: 'k.pem' }, 'the TLS pair still merges from two sources');
});

t.test('unknown xmpp keys are refused', async (t) => {
  t.throws(() => makeConfig({ xmpp: { prot: 1 } }), /unknown config key "xmpp.prot"/);
});
