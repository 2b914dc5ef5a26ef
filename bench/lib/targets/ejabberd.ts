/**
 * ejabberd (Debian `ejabberd` 23.01) as a benchmark peer: installed on first use,
 * run attached (`ejabberdctl foreground`) from its own config, ctl-config, spool and
 * log dirs in a temp dir, c2s (STARTTLS required) and HTTP (/xmpp-websocket) on
 * free loopback ports, and epmd and Erlang distribution bound to 127.0.0.1. Debian's
 * defaults otherwise (SCRAM password storage, Mnesia), except: no c2s shaper (the
 * Debian config limits each session to 1,000 bytes/s; Kindred's and Prosody's rate
 * limits are lifted too) and in-band registration open to loopback with no
 * per-IP timeout. mod_mam archives every message (`default: always`, Mnesia).
 * ejabberdctl drops to the `ejabberd` user when run as root, so the temp dir is
 * handed to that user, and erl is started through a wrapper that lifts the soft
 * open-files limit (su resets it to 1024).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, copyFileSync, createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../server.js';
import { registerInBand } from './in-band.js';
import { ensureInstalled, freePort, pidsWithCmdline, selfSignedCert, waitForPort, type TargetHandle } from './types.js';

const DOMAIN = 'localhost';

function ejabberdYml(dir: string, c2sPort: number, httpPort: number): string {
  return `# written by the Kindred bench harness (bench/lib/targets/ejabberd.ts)
loglevel: warning
log_rotate_count: 0
hosts:
  - ${DOMAIN}
certfiles:
  - "${dir}/server.pem"
listen:
  -
    port: ${c2sPort}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    starttls_required: true
  -
    port: ${httpPort}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /xmpp-websocket: ejabberd_http_ws
disable_sasl_mechanisms:
  - "digest-md5"
  - "X-OAUTH2"
auth_password_format: scram
registration_timeout: infinity
acl:
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  loopback_ip:
    allow: loopback
  c2s:
    allow: all
  register:
    allow: all
modules:
  mod_disco: {}
  mod_mam:
    default: always
  mod_ping: {}
  mod_register:
    access: register
    ip_access: loopback_ip
  mod_roster: {}
  mod_stream_mgmt: {}
`;
}

export async function startEjabberd(opts: { keepData?: boolean }): Promise<TargetHandle> {
  ensureInstalled('ejabberd', REPO_ROOT);
  const version = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'ejabberd'], { encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(tmpdir(), 'kindred-bench-ejabberd-'));
  const c2sPort = await freePort();
  const httpPort = await freePort();
  const node = `kbench${c2sPort}@localhost`;
  selfSignedCert(join(dir, 'cert.pem'), join(dir, 'key.pem'), DOMAIN);
  writeFileSync(join(dir, 'server.pem'), readFileSync(join(dir, 'key.pem'), 'utf8') + readFileSync(join(dir, 'cert.pem'), 'utf8'));
  writeFileSync(join(dir, 'ejabberd.yml'), ejabberdYml(dir, c2sPort, httpPort));
  writeFileSync(
    join(dir, 'ejabberdctl.cfg'),
    [
      `ERLANG_NODE=${node}`,
      'ERL_EPMD_ADDRESS=127.0.0.1',
      'INET_DIST_INTERFACE=127.0.0.1',
      'POLL=true',
      'ERL_PROCESSES=1000000',
      'ERL_MAX_PORTS=65536',
      `EJABBERD_PID_PATH=${dir}/ejabberd.pid`,
      'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"',
      // `su ejabberd` (ejabberdctl drops root) resets the soft open-files limit to 1024, and at
      // ~1000 sessions the VM ran out of descriptors and died: start erl through a wrapper
      // that raises the soft limit to the hard one first
      `ERL=${dir}/erl`,
    ].join('\n') + '\n',
  );
  copyFileSync('/etc/ejabberd/inetrc', join(dir, 'inetrc'));
  writeFileSync(join(dir, 'erl'), '#!/bin/sh\nulimit -n "$(ulimit -Hn)" 2>/dev/null\nexec /usr/bin/erl "$@"\n', { mode: 0o755 });
  for (const sub of ['spool', 'logs']) execFileSync('mkdir', ['-p', join(dir, sub)]);
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', 'ejabberd'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'ejabberd'], { encoding: 'utf8' }).trim());
    for (const p of [dir, join(dir, 'spool'), join(dir, 'logs'), ...readdirSync(dir).map((f) => join(dir, f))]) chownSync(p, uid, gid);
    chmodSync(dir, 0o755);
  }
  const ctlArgs = ['--config-dir', dir, '--config', join(dir, 'ejabberd.yml'), '--ctl-config', join(dir, 'ejabberdctl.cfg'), '--spool', join(dir, 'spool'), '--logs', join(dir, 'logs')];
  const env = { ...process.env, ERL_EPMD_ADDRESS: '127.0.0.1', INET_DIST_INTERFACE: '127.0.0.1' };
  const out = createWriteStream(join(dir, 'stdout.log'));
  const child = spawn('ejabberdctl', [...ctlArgs, 'foreground'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  let exited = false;
  const gone = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  try {
    await waitForPort(c2sPort, 60_000, `ejabberd (see ${dir}/stdout.log and ${dir}/logs)`, () => !exited);
    await waitForPort(httpPort, 10_000, 'ejabberd http', () => !exited);
  } catch (err) {
    child.kill('SIGKILL');
    for (const pid of pidsWithCmdline(node)) process.kill(pid, 'SIGKILL');
    throw err;
  }
  // the process that holds the sessions is beam.smp, a grandchild (sh -> su -> sh -> erl)
  const beam = pidsWithCmdline(node).find((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('beam'));
  if (!beam) throw new Error(`ejabberd's beam.smp for node ${node} not found`);
  const xmppTcp = { transport: 'tcp' as const, host: '127.0.0.1', port: c2sPort, wsUrl: '', domain: DOMAIN };
  const logFile = join(dir, 'logs', 'ejabberd.log');
  return {
    name: 'ejabberd',
    version: `ejabberd ${version}`,
    pid: beam,
    xmppTcp,
    xmppWs: { transport: 'ws', host: '127.0.0.1', port: 0, wsUrl: `ws://127.0.0.1:${httpPort}/xmpp-websocket`, domain: DOMAIN },
    config: { node, text: ejabberdYml('<dir>', c2sPort, httpPort) },
    logFile,
    createAccounts: (count, o) => registerInBand(xmppTcp, count, o.prefix, o.concurrency),
    backlog: async () => undefined,
    problems() {
      let lines: string[] = [];
      try {
        lines = readFileSync(logFile, 'utf8').split('\n').filter((l) => /\[(warning|error)\]/.test(l));
      } catch {
        /* no log yet */
      }
      return { warnings: lines.filter((l) => l.includes('[warning]')).length, errors: lines.filter((l) => l.includes('[error]')).length, last: lines.slice(-10) };
    },
    async stop() {
      // SIGTERM to the VM is a graceful init:stop() (OTP 19+)
      try {
        process.kill(beam, 'SIGTERM');
      } catch {
        /* gone already */
      }
      const killer = setTimeout(() => {
        for (const pid of pidsWithCmdline(node)) process.kill(pid, 'SIGKILL');
      }, 15_000);
      if (!exited) await gone;
      clearTimeout(killer);
      out.end();
      if (!opts.keepData) rmSync(dir, { recursive: true, force: true });
    },
  };
}
