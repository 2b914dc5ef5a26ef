/**
 * A lean XMPP client for load generation: one raw socket per session, a tiny
 * top-level-element splitter and string templates, no DOM.
 *
 * Why not @xmpp/client: it builds an ltx tree for every stanza, keeps a middleware
 * stack, reconnect logic and a set of timers per session; at thousands of sessions
 * and thousands of stanzas a second that is the load generator's CPU, not the
 * server's (bench/README.md has the measured difference).
 *
 * Login: STARTTLS (TCP, RFC 6120 §5) or plain RFC 7395 WebSocket framing, then SASL,
 * resource bind, initial presence (Prosody and ejabberd deliver a message to a bare JID
 * only to available resources). Optional in-band registration (XEP-0077) before SASL,
 * which is how the harness creates thousands of users on Prosody and ejabberd in seconds.
 *
 * SASL: PLAIN (RFC 4616) where offered (all three servers offer it once the stream is
 * encrypted; the cheapest for the client, and one round trip fewer), else SCRAM; or, with
 * `sasl: 'scram'` (BENCH_XMPP_SASL=scram), SCRAM-SHA-256 or SCRAM-SHA-1 (RFC 7677 /
 * RFC 5802) first, as real clients do: the server then checks stored keys, so its cost
 * does not depend on how expensive the account's password hash is. The client keeps
 * SaltedPassword per (password, salt, iterations, hash) as RFC 5802 §5.1 allows, and
 * checks the server's signature.
 *
 * The client's TLS is cheap on purpose, so that the generator does not cap the login
 * rate it measures: one SecureContext for every connection (building one per connection
 * cost a fifth of the client's CPU per login).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';
import { wsTls } from './loopback-tls.js';

export interface XmppEndpoint {
  transport: 'tcp' | 'ws';
  host: string;
  /** c2s port with STARTTLS (tcp) */
  port: number;
  /** ws://host:port/xmpp-websocket (ws), or wss:// (the certificate is not checked) */
  wsUrl: string;
  domain: string;
}

export interface XmppAccount {
  username: string;
  password: string;
}

/** which SASL mechanism comes first when the server offers both kinds (either falls back to the other) */
export type SaslChoice = 'plain' | 'scram';

export interface OpenOptions {
  localAddress?: string;
  register?: boolean;
  login?: boolean;
  timeoutMs?: number;
  /** 'scram': SCRAM-SHA-256, else SCRAM-SHA-1, else PLAIN; 'plain' (default): PLAIN where offered, else SCRAM */
  sasl?: SaslChoice;
}

/**
 * The default of `sasl`, which the harness does not pass down to its workers:
 * BENCH_XMPP_SASL (plain, scram). The `connections` scenario sets it from its --sasl
 * flag; workers inherit the environment.
 */
function defaultSasl(): SaslChoice {
  return process.env.BENCH_XMPP_SASL === 'scram' ? 'scram' : 'plain';
}

/** One client context for every connection: certificates are not checked (self-signed servers). */
let clientContext: tls.SecureContext | undefined;
function sharedClientContext(): tls.SecureContext {
  return (clientContext ??= tls.createSecureContext({}));
}

/** SCRAM keys by hash, password, salt and iterations (RFC 5802 §5.1: a client may cache them). */
const scramKeys = new Map<string, { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer }>();
const MAX_CACHED_KEYS = 100_000;

function scramKeysFor(hash: 'sha1' | 'sha256', password: string, salt: string, iterations: number) {
  const key = `${hash}\0${iterations}\0${salt}\0${password}`;
  let keys = scramKeys.get(key);
  if (!keys) {
    const salted = pbkdf2Sync(password, Buffer.from(salt, 'base64'), iterations, hash === 'sha1' ? 20 : 32, hash);
    const clientKey = createHmac(hash, salted).update('Client Key').digest();
    keys = { clientKey, storedKey: createHash(hash).update(clientKey).digest(), serverKey: createHmac(hash, salted).update('Server Key').digest() };
    if (scramKeys.size >= MAX_CACHED_KEYS) scramKeys.delete(scramKeys.keys().next().value!);
    scramKeys.set(key, keys);
  }
  return keys;
}

const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';

/**
 * Splits a character stream of XML into top-level elements. The stream header
 * (`<stream:stream ...>`) is reported on its own and does not nest. Quotes inside
 * tags are honoured (attribute values may contain `>`); text between top-level
 * elements (whitespace keepalives) is dropped.
 */
export class ElementSplitter {
  private buf = '';
  private pos = 0;
  private depth = 0;
  private start = 0;

  constructor(
    private readonly onElement: (xml: string) => void,
    private readonly onHeader: (xml: string) => void,
    private readonly onEnd: () => void,
  ) {}

  reset(): void {
    this.buf = '';
    this.pos = 0;
    this.depth = 0;
    this.start = 0;
  }

  push(chunk: string): void {
    this.buf += chunk;
    const buf = this.buf;
    let i = this.pos;
    for (;;) {
      const lt = buf.indexOf('<', i);
      if (lt < 0) {
        i = buf.length;
        break;
      }
      // find the end of this tag, skipping quoted attribute values
      let j = lt + 1;
      let quote = '';
      for (; j < buf.length; j++) {
        const c = buf[j]!;
        if (quote) {
          if (c === quote) quote = '';
        } else if (c === '"' || c === "'") quote = c;
        else if (c === '>') break;
      }
      if (j >= buf.length) {
        i = lt;
        break;
      }
      const c1 = buf[lt + 1];
      if (c1 === '?' || c1 === '!') {
        // declaration or comment at any depth: no nesting change
      } else if (c1 === '/') {
        if (this.depth === 0) {
          this.onEnd(); // </stream:stream>
        } else if (--this.depth === 0) {
          this.onElement(buf.slice(this.start, j + 1));
        }
      } else if (buf[j - 1] === '/') {
        if (this.depth === 0) this.onElement(buf.slice(lt, j + 1));
      } else if (this.depth === 0 && buf.startsWith('<stream:stream', lt)) {
        this.onHeader(buf.slice(lt, j + 1));
      } else {
        if (this.depth === 0) this.start = lt;
        this.depth++;
      }
      i = j + 1;
    }
    // keep only what is still needed
    const keepFrom = this.depth > 0 ? this.start : i;
    this.buf = buf.slice(keepFrom);
    this.pos = i - keepFrom;
    this.start = 0;
  }
}

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function xmlUnescape(s: string): string {
  if (s.indexOf('&') < 0) return s;
  return s.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!);
}

/** The text of the first <body> in a <message>, or undefined. */
export function messageBody(xml: string): string | undefined {
  const m = /<body(?:\s[^>]*)?>([^<]*)<\/body>/.exec(xml);
  return m ? xmlUnescape(m[1]!) : undefined;
}

export class XmppError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** One logged-in XMPP session. */
export class XmppSession {
  /** bodies of incoming <message> stanzas */
  onBody: (body: string) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;
  /** incoming stanza errors (type='error'), by condition */
  readonly stanzaErrors: Record<string, number> = {};
  closed = false;
  jid = '';
  private waiting: ((xml: string) => void) | undefined;
  private queue: string[] = [];
  private failed: Error | undefined;
  private failWaiter: ((err: Error) => void) | undefined;
  private loggedIn = false;
  /** the last <stream:features> before SASL (which mechanisms are offered) */
  private features = '';
  private writeRaw!: (s: string) => void;
  private endRaw!: () => void;
  private restartStream!: () => void;
  private readonly splitter = new ElementSplitter(
    (xml) => this.onElement(xml),
    (xml) => this.onElement(xml),
    () => this.onClosed('stream closed by the server'),
  );

  private constructor(
    private readonly ep: XmppEndpoint,
    private readonly account: XmppAccount,
    private readonly opts: OpenOptions,
  ) {}

  /**
   * Connects, optionally registers in-band, logs in (SASL, see the header), binds and
   * sends initial presence. `login: false` with `register: true` registers and closes
   * (user creation for the peers).
   */
  static async open(ep: XmppEndpoint, account: XmppAccount, opts: OpenOptions = {}): Promise<XmppSession> {
    const s = new XmppSession(ep, account, opts);
    const timeout = setTimeout(() => s.fail(new XmppError('TIMEOUT', `login of ${account.username} took longer than ${opts.timeoutMs ?? 30_000} ms`)), opts.timeoutMs ?? 30_000);
    try {
      if (ep.transport === 'tcp') await s.startTcp(opts.localAddress);
      else await s.startWs(opts.localAddress);
      if (opts.register) await s.register();
      if (opts.login !== false) await s.login();
      return s;
    } catch (err) {
      s.close();
      throw err;
    } finally {
      clearTimeout(timeout);
    }
  }

  /** Sends a chat message to `to` (a bare JID); the body must already be XML-safe. */
  sendChat(to: string, body: string, id: string): void {
    if (this.closed) return;
    this.writeRaw(`<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'><body>${body}</body></message>`);
  }

  close(): void {
    if (this.closed) return;
    try {
      this.writeRaw('</stream:stream>');
    } catch {
      /* already gone */
    }
    this.endRaw?.();
    this.onClosed('closed by the client');
  }

  // --- transport ---

  private streamHeader(): string {
    return this.ep.transport === 'ws'
      ? `<open xmlns='${NS_FRAMING}' to='${this.ep.domain}' version='1.0'/>`
      : `<?xml version='1.0'?><stream:stream to='${this.ep.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
  }

  private startTcp(localAddress?: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const raw = net.connect({ host: this.ep.host, port: this.ep.port, localAddress });
      raw.setNoDelay(true);
      let sock: net.Socket | tls.TLSSocket = raw;
      raw.setEncoding('utf8');
      const onData = (chunk: string) => this.splitter.push(chunk);
      raw.on('data', onData);
      raw.on('error', (err) => this.fail(new XmppError('SOCKET', err.message)));
      raw.on('close', () => this.onClosed('socket closed'));
      this.writeRaw = (s) => void sock.write(s);
      this.endRaw = () => sock.end();
      this.restartStream = () => {
        this.splitter.reset();
        this.writeRaw(this.streamHeader());
      };
      raw.once('connect', () => {
        this.restartStream();
        // STARTTLS, then hand the socket over to TLS
        void (async () => {
          await this.next('stream:stream');
          const features = await this.next('stream:features');
          if (!features.includes('urn:ietf:params:xml:ns:xmpp-tls')) throw new XmppError('NO_STARTTLS', 'the server offers no STARTTLS');
          this.writeRaw(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
          const answer = await this.next();
          if (!answer.startsWith('<proceed')) throw new XmppError('STARTTLS', `STARTTLS refused: ${answer.slice(0, 200)}`);
          raw.removeListener('data', onData);
          const secure = tls.connect({
            socket: raw,
            servername: this.ep.domain,
            rejectUnauthorized: false,
            secureContext: sharedClientContext(),
          });
          secure.setEncoding('utf8');
          secure.on('data', onData);
          secure.on('error', (err) => this.fail(new XmppError('TLS', err.message)));
          await new Promise<void>((ok, ko) => {
            secure.once('secureConnect', ok);
            secure.once('error', ko);
          });
          sock = secure;
          this.restartStream();
          await this.next('stream:stream');
          this.features = await this.next('stream:features');
        })().then(resolve, reject);
      });
      raw.once('error', reject);
    });
  }

  private startWs(localAddress?: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(this.ep.wsUrl, ['xmpp'], { localAddress, perMessageDeflate: false, ...wsTls(this.ep.wsUrl) });
      this.writeRaw = (s) => ws.send(s);
      this.endRaw = () => ws.close();
      this.restartStream = () => this.writeRaw(this.streamHeader());
      ws.on('message', (data) => {
        const xml = data.toString();
        if (xml.startsWith('<close')) this.onClosed('stream closed by the server');
        else this.onElement(xml);
      });
      ws.on('error', (err) => this.fail(new XmppError('SOCKET', err.message)));
      ws.on('close', () => this.onClosed('websocket closed'));
      ws.once('error', reject);
      ws.once('open', () => {
        this.restartStream();
        void (async () => {
          await this.next('open');
          this.features = await this.next('stream:features');
        })().then(resolve, reject);
      });
    });
  }

  // --- login steps ---

  private async register(): Promise<void> {
    const u = xmlEscape(this.account.username);
    const p = xmlEscape(this.account.password);
    this.writeRaw(`<iq xmlns='jabber:client' type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${u}</username><password>${p}</password></query></iq>`);
    const answer = await this.next('iq');
    // <conflict/>: the account exists already (a rerun on the same data): fine
    if (!/type=["']result["']/.test(answer) && !answer.includes('<conflict')) throw new XmppError('REGISTER', `in-band registration of ${this.account.username} failed: ${answer.slice(0, 300)}`);
  }

  private async login(): Promise<void> {
    const offers = (m: string) => this.features.includes(`>${m}</mechanism>`);
    const scram = offers('SCRAM-SHA-256') ? 'SCRAM-SHA-256' : offers('SCRAM-SHA-1') ? 'SCRAM-SHA-1' : undefined;
    // PLAIN is what a server offers on an encrypted stream; with no <mechanism> at all, try it anyway
    const plain = offers('PLAIN') || !this.features.includes('<mechanism');
    const mech = (this.opts.sasl ?? defaultSasl()) === 'scram' ? (scram ?? 'PLAIN') : plain ? 'PLAIN' : (scram ?? 'PLAIN');
    const answer = mech === 'PLAIN' ? await this.plain() : await this.scram(mech === 'SCRAM-SHA-1' ? 'sha1' : 'sha256', mech);
    if (!answer.startsWith('<success')) throw new XmppError('AUTH', `SASL ${mech} failed for ${this.account.username}: ${answer.slice(0, 300)}`);
    this.restartStream();
    await this.next(this.ep.transport === 'ws' ? 'open' : 'stream:stream');
    await this.next('stream:features');
    this.writeRaw(`<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq>`);
    const bound = await this.next('iq');
    const jid = /<jid>([^<]+)<\/jid>/.exec(bound);
    if (!jid) throw new XmppError('BIND', `bind failed: ${bound.slice(0, 300)}`);
    this.jid = jid[1]!;
    this.writeRaw(`<presence xmlns='jabber:client'/>`);
    this.loggedIn = true;
    // anything queued after bind (presence echoes) is not a message we wait for
    for (const xml of this.queue.splice(0)) this.onElement(xml);
  }

  private async plain(): Promise<string> {
    const creds = Buffer.from(`\0${this.account.username}\0${this.account.password}`).toString('base64');
    this.writeRaw(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${creds}</auth>`);
    return this.next();
  }

  /** SCRAM (RFC 5802 / 7677) without channel binding; the server's signature is checked. */
  private async scram(hash: 'sha1' | 'sha256', mech: string): Promise<string> {
    const nonce = randomBytes(18).toString('base64');
    const user = this.account.username.replace(/=/g, '=3D').replace(/,/g, '=2C');
    const clientFirstBare = `n=${user},r=${nonce}`;
    this.writeRaw(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='${mech}'>${Buffer.from(`n,,${clientFirstBare}`).toString('base64')}</auth>`);
    const challenge = await this.next();
    const m = /<challenge[^>]*>([^<]*)<\/challenge>/.exec(challenge);
    if (!m) return challenge;
    const serverFirst = Buffer.from(m[1]!, 'base64').toString('utf8');
    const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
    const iterations = Number(attrs.i);
    if (!attrs.r?.startsWith(nonce) || !attrs.s || !(iterations >= 1)) throw new XmppError('AUTH', `bad SCRAM challenge for ${this.account.username}: ${serverFirst.slice(0, 200)}`);
    const keys = scramKeysFor(hash, this.account.password, attrs.s, iterations);
    const finalNoProof = `c=biws,r=${attrs.r}`;
    const authMessage = `${clientFirstBare},${serverFirst},${finalNoProof}`;
    const signature = createHmac(hash, keys.storedKey).update(authMessage).digest();
    const proof = Buffer.from(keys.clientKey.map((b, i) => b ^ signature[i]!)).toString('base64');
    this.writeRaw(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(`${finalNoProof},p=${proof}`).toString('base64')}</response>`);
    const answer = await this.next();
    if (answer.startsWith('<success')) {
      // RFC 5802 §3: the server proves it knows the verifier too
      const v = /<success[^>]*>([^<]*)<\/success>/.exec(answer)?.[1] ?? '';
      const expected = createHmac(hash, keys.serverKey).update(authMessage).digest('base64');
      if (Buffer.from(v, 'base64').toString('utf8') !== `v=${expected}`) throw new XmppError('AUTH', `the server's SCRAM signature is wrong for ${this.account.username}`);
    }
    return answer;
  }

  // --- incoming ---

  /** The next top-level element during login (optionally: the next one with this name). */
  private next(name?: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      const take = () => {
        while (this.queue.length) {
          const xml = this.queue.shift()!;
          if (!name || xml.startsWith(`<${name}`)) {
            this.waiting = undefined;
            this.failWaiter = undefined;
            resolve(xml);
            return true;
          }
          if (xml.startsWith('<stream:error')) {
            reject(new XmppError('STREAM_ERROR', xml.slice(0, 300)));
            return true;
          }
        }
        return false;
      };
      if (take()) return;
      this.waiting = () => void take();
      this.failWaiter = reject;
    });
  }

  private onElement(xml: string): void {
    if (!this.loggedIn) {
      this.queue.push(xml);
      this.waiting?.(xml);
      return;
    }
    if (xml.startsWith('<message')) {
      if (xml.includes("type='error'") || xml.includes('type="error"')) {
        const cond = /<([a-z-]+) xmlns=['"]urn:ietf:params:xml:ns:xmpp-stanzas['"]/.exec(xml)?.[1] ?? 'unknown';
        this.stanzaErrors[cond] = (this.stanzaErrors[cond] ?? 0) + 1;
        return;
      }
      const body = messageBody(xml);
      if (body !== undefined) this.onBody(body);
    } else if (xml.startsWith('<iq') && /type=['"]get['"]/.test(xml) && xml.includes('urn:xmpp:ping')) {
      // XEP-0199 pings from the server: answer, or the server closes idle sessions
      const id = /id=['"]([^'"]+)['"]/.exec(xml)?.[1] ?? '';
      const from = /from=['"]([^'"]+)['"]/.exec(xml)?.[1];
      this.writeRaw(`<iq xmlns='jabber:client' type='result' id='${id}'${from ? ` to='${from}'` : ''}/>`);
    } else if (xml.startsWith('<stream:error')) {
      this.onClosed(`stream error: ${xml.slice(0, 200)}`);
    }
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.failWaiter?.(err);
    if (this.loggedIn) this.onClosed(err.message);
  }

  private onClosed(reason: string): void {
    if (!this.failed) this.fail(new XmppError('CLOSED', reason));
    if (this.closed) return;
    this.closed = true;
    this.onClose(reason);
  }
}
