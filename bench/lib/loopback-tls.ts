/**
 * TLS for `--tls` runs against a Kindred on loopback: a throwaway self-signed certificate for
 * the server (its `tls` config turns the HTTP/WS listener into uWS.SSLApp, so REST, `/ws` and
 * `/xmpp-websocket` are all TLS), and the load generator's side of it.
 *
 * The certificate is ECDSA P-256, as most public servers now serve: with RSA-2048 the server's
 * signature alone would dominate the cost of a handshake (about 1 ms of CPU against 0.05 ms).
 *
 * Client side, per socket and never through NODE_TLS_REJECT_UNAUTHORIZED: the measured WebSocket
 * connections do not check the certificate (`rejectUnauthorized: false`) and share one
 * SecureContext (building one per connection costs the generator a fifth of its CPU per login,
 * measured for the XMPP client), optionally resuming one TLS session (`--tls-resume`). The
 * setup's REST calls go through the global fetch, which cannot take a per-request TLS option:
 * its dispatcher is given the certificate as its only trusted CA, so those calls are verified
 * (the certificate names 127.0.0.1).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { Agent, setGlobalDispatcher } from 'undici';
import type WebSocket from 'ws';

export interface LoopbackCert {
  certFile: string;
  keyFile: string;
  certPem: string;
  /** `{ tls: { certFile, keyFile } }`, to merge into the server's config */
  serverConfig: { tls: { certFile: string; keyFile: string } };
  remove(): void;
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, in a fresh temp dir. */
export function makeLoopbackCert(): LoopbackCert {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-bench-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '30',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return {
    certFile,
    keyFile,
    certPem: readFileSync(certFile, 'utf8'),
    serverConfig: { tls: { certFile, keyFile } },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Makes this process's fetch trust `certPem` (and only it: the bench fetches nothing else over https). */
export function trustForFetch(certPem: string): void {
  setGlobalDispatcher(new Agent({ connect: { ca: certPem } }));
}

let context: tls.SecureContext | undefined;
/** TLS handshakes completed by this process's wss:// sockets, and how many of them resumed a session */
const handshakes = { full: 0, resumed: 0 };
let resume = process.env.BENCH_TLS_RESUME === '1';
let session: Buffer | undefined;

/**
 * Resume one TLS session for every later connection (abbreviated handshakes: what a client that
 * reconnects does), instead of a full handshake per connection (what many distinct devices cost).
 * Workers read BENCH_TLS_RESUME=1 from the environment they inherit.
 */
export function setTlsResume(on: boolean): void {
  resume = on;
  if (!on) session = undefined;
}

/** Per-socket options for `new WebSocket(wss://…, opts)` (ws passes them to tls.connect). */
export function clientTlsOptions(): tls.ConnectionOptions {
  context ??= tls.createSecureContext({});
  return { rejectUnauthorized: false, secureContext: context, ...(resume && session ? { session } : {}) };
}

/** Remembers the session a TLS socket was given (TLS 1.3 sends it after the handshake), for `--tls-resume`. */
function rememberSession(socket: tls.TLSSocket): void {
  if (resume && !session) socket.once('session', (s: Buffer) => (session ??= s));
}

/** How many of this process's TLS handshakes were full, and how many resumed a session. */
export function handshakeCounts(): { full: number; resumed: number } {
  return { ...handshakes };
}

/**
 * For a wss:// URL, the socket factory ws uses: tls.connect with the bench's per-socket options
 * (certificate not checked, one shared SecureContext, the resumed session with --tls-resume).
 */
export function wsTls(url: string): Pick<WebSocket.ClientOptions, 'createConnection'> {
  if (!url.startsWith('wss:')) return {};
  // ws calls it with the request's options (host, port, localAddress…), never with (port, host)
  const connect = (options: tls.ConnectionOptions): tls.TLSSocket => {
    // as ws's own tlsConnect: no unix path; an IP host gets no SNI
    const socket = tls.connect({ ...options, path: undefined, servername: net.isIP(options.host ?? '') ? '' : options.host, ...clientTlsOptions() });
    rememberSession(socket);
    socket.once('secureConnect', () => void (socket.isSessionReused() ? handshakes.resumed++ : handshakes.full++));
    return socket;
  };
  return { createConnection: connect as unknown as WebSocket.ClientOptions['createConnection'] };
}
