/**
 * Interop with slixmpp (Python, Debian's python3-slixmpp) over TCP with STARTTLS: it logs in with
 * the strongest SASL mechanism it sees (SCRAM-SHA-256), gets the roster, sends a message to its
 * match (a native-protocol client) and receives one back.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connectWs, matchedPair } from '../helpers/server.js';
import { PASSWORD, startXmppServer } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./fixtures/slixmpp_client.py', import.meta.url));

t.test('slixmpp logs in with SCRAM-SHA-256 over STARTTLS and chats with a native client', async (t) => {
  const check = spawnSync(PYTHON, ['-c', 'import slixmpp'], { encoding: 'utf8' });
  if (check.error || check.status !== 0) {
    throw new Error(`slixmpp is required for this test and is missing (${check.error?.message ?? check.stderr.trim()}): apt-get install python3-slixmpp`);
  }
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const [alice, bob] = await matchedPair(server, 'sx');
  const bobWs = await connectWs(server, bob);
  t.teardown(() => bobWs.close());

  const child = spawn(PYTHON, [SCRIPT, `${alice.username}@${domain}/slix`, PASSWORD, '127.0.0.1', String(server.node.xmppPort), `${bob.username}@${domain}`, '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  t.teardown(() => child.kill());
  const events: any[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      events.push(JSON.parse(line));
    } catch {
      events.push({ event: 'noise', line });
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const next = async (name: string, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = events.find((x) => x.event === name);
      if (e) return e;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no "${name}" from slixmpp; got ${JSON.stringify(events)}; stderr: ${stderr.slice(-2000)}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 200);
        waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  };

  const ready = await next('ready');
  t.equal(ready.jid, `${alice.username}@${domain}/slix`);
  t.equal(ready.tls, true, 'STARTTLS');
  t.equal(ready.mechanism, 'SCRAM-SHA-256', 'SCRAM-SHA-256');
  t.same(ready.roster, [`${bob.username}@${domain}`], 'roster = matches');

  const got = await bobWs.nextEvent((e) => e.type === 'message', 15_000);
  t.match(got, { type: 'message', message: { from: alice.userId, body: 'hello from slixmpp' } });

  await bobWs.request('message.send', { to: alice.userId, body: 'hello back, python' });
  const msg = await next('message');
  t.equal(msg.body, 'hello back, python');
  t.equal(msg.sender, `${bob.username}@${domain}`);
  t.equal(await exited, 0, 'slixmpp exited cleanly');
});

t.test('slixmpp registers in-band (XEP-0077), then logs in with SCRAM-SHA-256; the account works over REST', async (t) => {
  const server = await startXmppServer(t);
  const { domain } = server.config;
  const username = `slixreg${process.pid}`;
  const script = fileURLToPath(new URL('./fixtures/slixmpp_register.py', import.meta.url));
  const child = spawn(PYTHON, [script, `${username}@${domain}`, PASSWORD, '127.0.0.1', String(server.node.xmppPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill());
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  await new Promise((resolve) => child.on('exit', resolve));
  const events = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  t.match(events.find((e) => e.event === 'registered'), { username }, `registered in-band (${stdout} ${stderr.slice(-500)})`);
  t.match(events.find((e) => e.event === 'ready'), { mechanism: 'SCRAM-SHA-256' }, 'then logged in with SCRAM-SHA-256');
  const login = await fetch(`${server.base}/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }) });
  t.equal(login.status, 200, 'the same account works over REST');
});
