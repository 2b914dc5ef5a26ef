/**
 * Self-test of the bench's `--tls` option (wss:// against a Kindred whose HTTP/WS listener is
 * uWS.SSLApp with a throwaway self-signed certificate), with tiny loads: `idle` and
 * `connections` over native-ws and xmpp-ws must log every session in over TLS and report
 * memory and CPU per login; the combinations the option is not wired for must be refused
 * with a message, before any server starts.
 */
import t from 'tap';
import { bench, outDir, readJson, readRun } from './run-cli.js';

t.setTimeout(240_000);

t.test('idle --tls: wss:// sessions, memory after a forced GC, CPU per login', async (t) => {
  const out = outDir(t, 'bench-tls-');
  const r = await bench(['idle', '--tls', '--connections', '6', '--settle', '0', '--out-dir', out]);
  if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
  t.match(r.stdout, /6 authenticated idle wss connections/, 'the table names wss');
  const { results, params, server } = readJson(out, 'idle');
  t.equal(params.tls, true);
  t.match(results.url, /^wss:\/\/127\.0\.0\.1:\d+\/ws$/, 'the connections went to a wss:// URL');
  t.ok(server.config.tls?.certFile && server.config.tls?.keyFile, 'the server was given a certificate');
  t.equal(results.connections, 6, 'six connections');
  t.same(results.tlsHandshakes, { full: 6, resumed: 0 }, 'a full TLS handshake per connection');
  t.same(results.failures, {});
  t.equal(results.openAtEnd, 6, 'all still open after the settle');
  t.ok(results.memory && results.memory.after.heapUsed > 0, 'memory read through the inspector');
  // /proc counts CPU in 10 ms ticks: six logins may cost less than one, so 0 is a measurement too
  const measured = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  t.ok(measured(results.cpuMsPerLogin.server) && measured(results.cpuMsPerLogin.loadGenerator), 'CPU per login measured on both sides');
});

for (const protocol of ['native-ws', 'xmpp-ws'] as const) {
  t.test(`connections --tls over ${protocol}: every session logged in over wss://`, async (t) => {
    const out = outDir(t, 'bench-tls-');
    const r = await bench(['connections', '--tls', '--protocol', protocol, '--connections', '6', '--settle', '0', '--out-dir', out]);
    if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
    const { json } = readRun(out, 'connections');
    t.equal(json.params.tls, true);
    const run = json.runs[0];
    t.equal(run.protocol, `${protocol} (wss)`);
    t.equal(run.connect.ok, 6, 'six sessions logged in');
    t.same(run.connect.failures, {});
    t.ok(run.config.tls?.certFile, 'the server was given a certificate');
    t.ok(typeof run.cpuMsPerLogin.serverMs === 'number' && Number.isFinite(run.cpuMsPerLogin.serverMs) && run.cpuMsPerLogin.serverMs >= 0, 'server CPU per login measured (10 ms ticks: may round to 0)');
  });
}

t.test('idle --tls-resume: every connection after the first resumes its TLS session', async (t) => {
  const out = outDir(t, 'bench-tls-');
  // one connection at a time, so that every later one can find the session the first was given
  const r = await bench(['idle', '--tls', '--tls-resume', '--connections', '4', '--concurrency', '1', '--settle', '0', '--no-gc', '--out-dir', out]);
  if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
  const { results } = readJson(out, 'idle');
  t.equal(results.connections, 4);
  t.same(results.tlsHandshakes, { full: 1, resumed: 3 }, 'one full handshake, then resumptions');
});

t.test('--tls where it is not wired is refused with a reason, before any server starts', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['connections', '--tls', '--target', 'prosody', '--protocol', 'xmpp-ws'], /--tls \(wss:\/\/\) is wired for --target kindred only, not prosody/],
    [['connections', '--tls', '--protocol', 'xmpp-tcp'], /--tls is for the WebSocket protocols.*STARTTLS/],
    [['idle', '--tls', '--protocol', 'tcp'], /--tls is for --protocol ws/],
    [['idle', '--tls-resume'], /--tls-resume needs --tls/],
  ];
  for (const [args, message] of cases) {
    const r = await bench([...args, '--connections', '2'], 30_000);
    t.not(r.code, 0, `${args.join(' ')}: non-zero exit`);
    t.match(r.stderr + r.stdout, message, `${args.join(' ')}: says why`);
    t.notMatch(r.stdout + r.stderr, /server pid|target \S+ \(pid/, 'no server was started');
  }
});
