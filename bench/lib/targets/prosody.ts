/**
 * Prosody (Debian `prosody` 0.12) as a benchmark peer: installed on first use, run in
 * the foreground as a child process from its own config, data and log files in a
 * temp dir, c2s (STARTTLS required) and HTTP (for /xmpp-websocket) on free loopback
 * ports, s2s off. Message archiving is on (mod_mam, archive store in SQLite via
 * LuaDBI, every message archived), like Kindred, which stores every message.
 * `--prosody-archive memory` keeps the archive in memory instead (mod_storage_memory), to
 * separate Prosody's routing cost from its storage cost.
 * No mod_limits: Kindred's and ejabberd's rate limits are lifted too.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from '../server.js';
import { registerInBand } from './in-band.js';
import { ensureInstalled, freePort, selfSignedCert, waitForPort, type TargetHandle } from './types.js';

const DOMAIN = 'localhost';

function prosodyConfig(dir: string, c2sPort: number, httpPort: number, archive: 'sql' | 'memory'): string {
  return `-- written by the Kindred bench harness (bench/lib/targets/prosody.ts)
run_as_root = true
pidfile = "${dir}/prosody.pid"
data_path = "${dir}/data"
log = { warn = "${dir}/prosody.log" }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { ${c2sPort} }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { ${httpPort} }
http_interfaces = { "127.0.0.1" }
https_ports = { }
c2s_require_encryption = true
consider_websocket_secure = true
allow_registration = true
authentication = "internal_hashed"
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "register", "mam", "websocket", "http" }
modules_disabled = { "s2s" }
storage = { archive = "${archive}" }
sql = { driver = "SQLite3", database = "${dir}/prosody.sqlite" }
default_archive_policy = true
archive_expires_after = "never"
certificates = "${dir}"
ssl = { certificate = "${dir}/cert.pem", key = "${dir}/key.pem" }
statistics = nil

VirtualHost "${DOMAIN}"
`;
}

export async function startProsody(opts: { keepData?: boolean; archive?: 'sql' | 'memory' }): Promise<TargetHandle> {
  const archive = opts.archive ?? 'sql';
  ensureInstalled('prosody', REPO_ROOT);
  const version = /Prosody (\S+)/.exec(execFileSync('prosodyctl', ['about'], { encoding: 'utf8' }))?.[1] ?? '?';
  const dir = mkdtempSync(join(tmpdir(), 'kindred-bench-prosody-'));
  const c2sPort = await freePort();
  const httpPort = await freePort();
  selfSignedCert(join(dir, 'cert.pem'), join(dir, 'key.pem'), DOMAIN);
  const configFile = join(dir, 'prosody.cfg.lua');
  writeFileSync(configFile, prosodyConfig(dir, c2sPort, httpPort, archive));
  const out = createWriteStream(join(dir, 'stdout.log'));
  const child = spawn('prosody', ['--config', configFile, '-F'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  let exited = false;
  const gone = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  try {
    await waitForPort(c2sPort, 20_000, `prosody (see ${dir}/stdout.log)`, () => !exited);
    await waitForPort(httpPort, 5_000, 'prosody http', () => !exited);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const xmppTcp = { transport: 'tcp' as const, host: '127.0.0.1', port: c2sPort, wsUrl: '', domain: DOMAIN };
  return {
    name: 'prosody',
    version: `Prosody ${version}${archive === 'sql' ? '' : ` (archive in ${archive})`}`,
    pid: child.pid!,
    xmppTcp,
    xmppWs: { transport: 'ws', host: '127.0.0.1', port: 0, wsUrl: `ws://127.0.0.1:${httpPort}/xmpp-websocket`, domain: DOMAIN },
    config: { file: configFile, archive, text: prosodyConfig('<dir>', c2sPort, httpPort, archive) },
    logFile: join(dir, 'prosody.log'),
    createAccounts: (count, o) => registerInBand(xmppTcp, count, o.prefix, o.concurrency),
    backlog: async () => undefined,
    problems() {
      let lines: string[] = [];
      try {
        lines = readFileSync(join(dir, 'prosody.log'), 'utf8').split('\n').filter(Boolean);
      } catch {
        /* no log yet */
      }
      return { warnings: lines.filter((l) => /\bwarn\b/.test(l)).length, errors: lines.filter((l) => /\berror\b/.test(l)).length, last: lines.slice(-10) };
    },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(killer);
      }
      out.end();
      if (!opts.keepData) rmSync(dir, { recursive: true, force: true });
    },
  };
}
