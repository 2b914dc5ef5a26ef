/**
 * Hostile and broken input on raw sockets: every case ends in the right stream error and a
 * closed connection, and the server (and a bystander's session) carries on.
 */
import t from 'tap';
import { registerUser } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { RawXmpp, startXmppServer, xml, xmppLogin, type XClient } from './helpers.js';

const HEADER = (domain: string) =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`;

/** The stream error condition the server sent, then checks the connection is closed. */
async function streamError(raw: RawXmpp): Promise<string> {
  const m = await raw.waitFor(/<stream:error>\s*<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-streams"/);
  return m[1]!;
}

let server: TestServer;
let bystander: XClient;

t.before(async () => {
  server = await startXmppServer(t);
  const user = await registerUser(server.base, 'hb');
  bystander = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain: server.config.domain, username: user.username });
});
t.teardown(() => bystander?.stop());

async function bystanderAlive(t: { ok(v: unknown, message?: string): void }): Promise<void> {
  const pong = await bystander.xmpp.iqCaller.request(xml('iq', { type: 'get', to: server.config.domain }, xml('ping', { xmlns: 'urn:xmpp:ping' })), 5000);
  t.ok(pong.attrs.type === 'result', 'the bystander session still answers');
}

t.test('billion laughs: a DTD is refused before any entity is expanded', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppPort);
  const lol = [`<!DOCTYPE lolz [<!ENTITY lol "lol">`];
  for (let i = 1; i < 10; i++) lol.push(`<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10).replace(/lol0/g, 'lol')}">`);
  lol.push(']>');
  await raw.write(`<?xml version='1.0'?>${lol.join('')}${HEADER(server.config.domain)}<message><body>&lol9;</body></message>`);
  t.equal(await streamError(raw), 'restricted-xml');
  t.ok(await raw.waitClosed(), 'closed');
  await bystanderAlive(t);
});

t.test('an entity reference after the header is restricted-xml', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppPort);
  await raw.write(HEADER(server.config.domain));
  await raw.waitFor(/<\/stream:features>/);
  await raw.write(`<message><body>&lol9;</body></message>`);
  t.equal(await streamError(raw), 'restricted-xml');
  t.ok(await raw.waitClosed());
});

t.test('comments and processing instructions are restricted-xml', async (t) => {
  for (const bad of [`<!-- hi -->`, `<?php echo 1; ?>`, `<message><?pi x?></message>`]) {
    const raw = await RawXmpp.connect(server.node.xmppPort);
    await raw.write(HEADER(server.config.domain));
    await raw.waitFor(/<\/stream:features>/);
    await raw.write(bad);
    t.equal(await streamError(raw), 'restricted-xml', bad);
    t.ok(await raw.waitClosed());
  }
});

t.test('a 10 MB stanza: <policy-violation/> and close long before it is all read', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppPort);
  await raw.write(HEADER(server.config.domain));
  await raw.waitFor(/<\/stream:features>/);
  const total = 10 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 'a');
  await raw.write('<message><body>');
  let offered = 0;
  let writtenAtError = -1;
  while (offered < total && !raw.closed) {
    await raw.write(chunk);
    offered += chunk.length;
    if (writtenAtError < 0 && raw.text.includes('policy-violation')) writtenAtError = raw.bytesWritten;
  }
  t.equal(await streamError(raw), 'policy-violation');
  t.ok(await raw.waitClosed(), 'closed');
  // What was written includes what sat in kernel buffers; the server itself read ~maxStanzaBytes.
  t.ok(raw.bytesWritten < total, `the connection was closed after ${raw.bytesWritten} of ${total} bytes (error seen after ${writtenAtError})`);
  await bystanderAlive(t);
});

t.test('deep nesting is a policy violation', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppPort);
  await raw.write(HEADER(server.config.domain));
  await raw.waitFor(/<\/stream:features>/);
  await raw.write('<message>' + '<x>'.repeat(1000));
  t.equal(await streamError(raw), 'policy-violation');
  t.ok(await raw.waitClosed());
});

t.test('invalid UTF-8 is not-well-formed; a UTF-16 stream is unsupported-encoding', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppPort);
  await raw.write(HEADER(server.config.domain));
  await raw.waitFor(/<\/stream:features>/);
  await raw.write(Buffer.concat([Buffer.from('<message><body>'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('</body></message>')]));
  t.equal(await streamError(raw), 'not-well-formed');
  t.ok(await raw.waitClosed());

  const raw16 = await RawXmpp.connect(server.node.xmppPort);
  await raw16.write(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(HEADER(server.config.domain), 'utf16le')]));
  t.equal(await streamError(raw16), 'unsupported-encoding');
  t.ok(await raw16.waitClosed());

  const rawDecl = await RawXmpp.connect(server.node.xmppPort);
  await rawDecl.write(`<?xml version='1.0' encoding='ISO-8859-1'?>${HEADER(server.config.domain).replace(/^<\?xml[^>]*>/, '')}`);
  t.equal(await streamError(rawDecl), 'unsupported-encoding');
});

t.test('unclosed and mismatched tags', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppPort);
  await raw.write(HEADER(server.config.domain));
  await raw.waitFor(/<\/stream:features>/);
  await raw.write('<message><body>unclosed</stream:stream>');
  t.equal(await streamError(raw), 'not-well-formed');
  t.ok(await raw.waitClosed());

  // Unclosed tags and then the client just hangs up: nothing to answer, nothing left behind.
  const raw2 = await RawXmpp.connect(server.node.xmppPort);
  await raw2.write(HEADER(server.config.domain));
  await raw2.waitFor(/<\/stream:features>/);
  await raw2.write('<message><body><a><b>');
  raw2.end();
  t.ok(await raw2.waitClosed());
  await bystanderAlive(t);
});

t.test('stanzas before authentication: <not-authorized/>', async (t) => {
  for (const stanza of [
    `<message to='someone@${server.config.domain}'><body>hi</body></message>`,
    `<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`,
    `<presence/>`,
    `<enable xmlns='urn:xmpp:sm:3'/>`,
  ]) {
    const raw = await RawXmpp.connect(server.node.xmppPort);
    await raw.write(HEADER(server.config.domain));
    await raw.waitFor(/<\/stream:features>/);
    await raw.write(stanza);
    t.equal(await streamError(raw), 'not-authorized', stanza);
    t.ok(await raw.waitClosed());
  }
});

t.test('the stream header is checked', async (t) => {
  const cases: Array<[string, string]> = [
    [`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='elsewhere.example' version='1.0'>`, 'host-unknown'],
    [`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='${server.config.domain}' version='1.0'>`, 'invalid-namespace'],
    [`<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='${server.config.domain}' version='1.0'>`, 'invalid-namespace'],
    [`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${server.config.domain}'>`, 'unsupported-version'],
  ];
  for (const [header, condition] of cases) {
    const raw = await RawXmpp.connect(server.node.xmppPort);
    await raw.write(header);
    await raw.waitFor(/<stream:stream [^>]*>/); // a header comes first, then the error (RFC 6120 §4.9.1.2)
    t.equal(await streamError(raw), condition, condition);
    t.ok(await raw.waitClosed());
  }
});

t.test('TLS is required: no mechanisms and no PLAIN in clear; SCRAM-SHA-256 works after STARTTLS', async (t) => {
  const user = await registerUser(server.base, 'hs');
  const raw = await RawXmpp.connect(server.node.xmppPort);
  t.teardown(() => raw.destroy());
  const before = await raw.open(server.config.domain);
  t.match(before, /<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required\/><\/starttls>/);
  t.notMatch(before, /mechanism/, 'no SASL before STARTTLS');
  t.notMatch(before, /iq-register/, 'no registration before STARTTLS');
  await raw.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user.username}\0correct horse battery`).toString('base64')}</auth>`);
  t.match((await raw.waitFor(/<failure[\s\S]*?<\/failure>/))[0], /<encryption-required\/>/, 'PLAIN in clear is refused');
  await raw.starttls();
  const after = await raw.open(server.config.domain);
  t.match(after, /<mechanism>SCRAM-SHA-256<\/mechanism><mechanism>SCRAM-SHA-1<\/mechanism><mechanism>PLAIN<\/mechanism>/);
  t.equal(await raw.scram('SCRAM-SHA-256', user.username, 'wrong password!!'), 'not-authorized', 'a wrong password');
  t.equal(await raw.scram('SCRAM-SHA-256', 'no-such-user', 'whatever123'), 'not-authorized', 'an unknown user looks the same');
  t.equal(await raw.scram('SCRAM-SHA-256', user.username, 'correct horse battery'), 'success', 'and the right one, with the server signature checked');
  const post = await raw.open(server.config.domain);
  t.match(post, /<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"\/>/);
  t.notMatch(post, /mechanism/);
});

t.test('without requireTls, SCRAM is offered in clear but PLAIN still is not', async (t) => {
  const relaxed = await startXmppServer(t, { xmpp: { requireTls: false } });
  const raw = await RawXmpp.connect(relaxed.node.xmppPort);
  t.teardown(() => raw.destroy());
  const features = await raw.open(relaxed.config.domain);
  t.match(features, /<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"\/>/, 'STARTTLS offered, not required');
  t.match(features, /SCRAM-SHA-256/);
  t.notMatch(features, /PLAIN/);
});

t.test('five failed logins close the stream', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppTlsPort, { tls: true });
  await raw.open(server.config.domain);
  for (let i = 0; i < 4; i++) t.equal(await raw.scram('SCRAM-SHA-256', 'nobody', 'nothing-at-all'), 'not-authorized');
  await raw.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0nobody\0nothing-at-all').toString('base64')}</auth>`);
  t.equal(await streamError(raw), 'policy-violation');
  t.ok(await raw.waitClosed());
});

t.test('bad SASL input', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppTlsPort, { tls: true });
  t.teardown(() => raw.destroy());
  await raw.open(server.config.domain);
  await raw.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>`);
  t.match((await raw.waitFor(/<failure[\s\S]*?<\/failure>/))[0], /<invalid-mechanism\/>/);
  await raw.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>not base64!</auth>`);
  t.match((await raw.waitFor(/<failure[\s\S]*?<\/failure>/))[0], /<incorrect-encoding\/>/);
  await raw.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${Buffer.from('p=tls-unique,,n=x,r=abc').toString('base64')}</auth>`);
  t.match((await raw.waitFor(/<failure[\s\S]*?<\/failure>/))[0], /<malformed-request\/>/, 'channel binding is not offered');
  await raw.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>`);
  await raw.waitFor(/<challenge xmlns="urn:ietf:params:xml:ns:xmpp-sasl"\/>/);
  await raw.write(`<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`);
  t.match((await raw.waitFor(/<failure[\s\S]*?<\/failure>/))[0], /<aborted\/>/);
});

t.test('a spoofed from is <invalid-from/>; own bare JID is normalised', async (t) => {
  const user = await registerUser(server.base, 'hf');
  const { raw, jid } = await RawXmpp.login(server.node.xmppPort, server.config.domain, user.username, 'spoof');
  await raw.write(`<iq type='get' id='own' from='${user.username}@${server.config.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const reply = (await raw.waitFor(/<iq [^>]*id="own"[^>]*\/>/))[0];
  t.match(reply, /type="result"/);
  t.match(reply, new RegExp(`to="${jid.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`), 'answered to the full JID');
  await raw.write(`<message from='someone-else@${server.config.domain}/x' to='${user.username}@${server.config.domain}'><body>x</body></message>`);
  t.equal(await streamError(raw), 'invalid-from');
  t.ok(await raw.waitClosed());
});

t.test('bytes after <starttls/> in the same packet are dropped (no command injection)', async (t) => {
  const raw = await RawXmpp.connect(server.node.xmppPort);
  t.teardown(() => raw.destroy());
  await raw.open(server.config.domain);
  // Written in one go: the server must not act on the iq after the TLS upgrade.
  const raw2 = raw as unknown as { write(s: string): Promise<void> };
  const origWrite = raw.write.bind(raw);
  raw2.write = async (s: string) => {
    if (s.includes('<starttls')) return origWrite(s + `<iq type='set' id='injected'><query xmlns='jabber:iq:register'><username>injected${process.pid}</username><password>injected-password</password></query></iq>`);
    return origWrite(s);
  };
  await raw.starttls();
  raw2.write = origWrite;
  await raw.open(server.config.domain);
  await new Promise((r) => setTimeout(r, 200));
  t.notMatch(raw.text, /injected/, 'no answer to the injected IQ');
  const res = await fetch(`${server.base}/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: `injected${process.pid}`, password: 'injected-password' }) });
  t.equal(res.status, 401, 'and no account was made');
});

t.test('a flood is slowed down, not dropped, and the session survives', async (t) => {
  const user = await registerUser(server.base, 'hl');
  const { raw } = await RawXmpp.login(server.node.xmppPort, server.config.domain, user.username, 'flood');
  t.teardown(() => raw.destroy());
  const n = 400;
  let burst = '';
  for (let i = 0; i < n; i++) burst += `<iq type='get' id='f${i}'><ping xmlns='urn:xmpp:ping'/></iq>`;
  const started = Date.now();
  await raw.write(burst);
  await raw.waitFor(new RegExp(`id="f${n - 1}"`), 20_000);
  const elapsed = Date.now() - started;
  const answered = raw.text.match(/id="f\d+"/g)?.length ?? 0;
  t.equal(answered, n, 'every ping answered, in order');
  t.ok(elapsed >= ((n - server.config.xmpp.stanzaBurst) / server.config.xmpp.stanzasPerSecond) * 1000 * 0.8, `paced by the token bucket (${elapsed} ms)`);
});

t.test('the server is still fine', async (t) => {
  await bystanderAlive(t);
  const user = await registerUser(server.base, 'hz');
  const c = await xmppLogin({ service: `xmpp://127.0.0.1:${server.node.xmppPort}`, domain: server.config.domain, username: user.username });
  await c.stop();
});
