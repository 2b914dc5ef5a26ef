/**
 * connections: N authenticated idle sessions per target (one user each), opened by
 * the load-generator workers `--concurrency` at a time. Reports the connect + login
 * rate and latency (TCP connect, STARTTLS, SASL, bind and presence for XMPP; connect
 * and token auth for the native protocol), the CPU per login of the server (its own
 * process and its children: Kindred's TLS front) and of the load generators, which
 * share the machine and so cap the rate too, and the server process's RSS growth per
 * session: (RSS after - RSS before) / sessions, each read after a settle of --settle
 * seconds. No forced GC, for any target (Kindred's `idle` scenario has one).
 *
 * XMPP SASL: `--sasl scram` (the default here; what real clients do, and the server's
 * cost then does not depend on the account's password-hash cost, which the bench config
 * makes nearly free for setup's sake) or `--sasl plain` (PLAIN where offered).
 *
 * `--tls` (Kindred, `native-ws` and `xmpp-ws`): Kindred gets a throwaway self-signed certificate,
 * so its HTTP/WS listener is uWS.SSLApp, and the sessions connect over wss://: a full TLS
 * handshake per login, or an abbreviated one with `--tls-resume`.
 */
import type { Options } from '../lib/args.js';
import { Fleet } from '../lib/fleet.js';
import { log, ms, sleep } from '../lib/report.js';
import { descendants, machineInfo, ProcSampler, procSnapshot, round, summarizeSamples, type Sample } from '../lib/proc.js';
import { machineLine, printSideBySide, processSeries, writeRun } from '../lib/output.js';
import { parseProtocol } from '../lib/sessions.js';
import { gitInfo } from '../lib/server.js';
import { scenarioFlags, warnIfStale } from '../lib/scenario.js';
import { parseTargets, startTarget } from '../lib/targets/index.js';
import { makeLoopbackCert, trustForFetch, type LoopbackCert } from '../lib/loopback-tls.js';
import type { ReportSection } from '../lib/html.js';

export async function connections(o: Options): Promise<void> {
  const targets = parseTargets(o.str('target', 'kindred'));
  const onlyKindred = targets.every((t) => t.startsWith('kindred'));
  const protocol = parseProtocol(o.str('protocol', onlyKindred ? 'native-ws' : 'xmpp-tcp'));
  const n = o.num('connections', 1000);
  const concurrency = o.num('concurrency', 50);
  const settle = o.num('settle', 5);
  const workers = o.num('workers', 2);
  const { setupConcurrency, outDir, entry, keepData, serverConfig } = scenarioFlags(o);
  const prosodyArchive = o.str('prosody-archive', 'sql', ['sql', 'memory'] as const);
  const sasl = o.str('sasl', 'scram', ['scram', 'plain'] as const);
  const useTls = o.bool('tls');
  const tlsResume = o.bool('tls-resume');
  o.checkUnknown();
  if (useTls) {
    const others = targets.filter((t) => t !== 'kindred');
    if (others.length) throw new Error(`--tls (wss://) is wired for --target kindred only, not ${others.join(', ')}: run those without --tls`);
    if (protocol !== 'native-ws' && protocol !== 'xmpp-ws') throw new Error(`--tls is for the WebSocket protocols (native-ws, xmpp-ws); ${protocol} ${protocol === 'xmpp-tcp' ? 'is TLS already (STARTTLS)' : 'is plain TCP here'}`);
  }
  if (tlsResume && !useTls) throw new Error('--tls-resume needs --tls');
  // the workers read it from their environment (bench/lib/loopback-tls.ts)
  if (tlsResume) process.env.BENCH_TLS_RESUME = '1';
  let cert: LoopbackCert | undefined;
  if (useTls) {
    cert = makeLoopbackCert();
    trustForFetch(cert.certPem);
  }
  // the workers read it from their environment (bench/lib/xmpp-client.ts)
  process.env.BENCH_XMPP_SASL = sasl;
  if (protocol.startsWith('native') && !onlyKindred) throw new Error(`--protocol ${protocol} is Kindred's own; compare servers with --protocol xmpp-tcp or xmpp-ws`);
  if (targets.includes('kindred')) warnIfStale(entry);
  const machine = machineInfo();
  const runs = [];
  /** targets whose run failed (e.g. the server died): reported, and the other targets still run */
  const failed: Array<{ target: string; error: string }> = [];
  for (const name of targets) {
    try {
      log(`target ${name}: starting`);
      const config = cert ? { ...serverConfig, ...cert.serverConfig } : serverConfig;
      const target = await startTarget(name, { entry, config, keepData, prosodyArchive });
      if (cert) {
        // the harness's Kindred target names ws:// for XMPP; with `tls` the listener is TLS only
        target.xmppWs = { ...target.xmppWs, wsUrl: target.xmppWs.wsUrl.replace(/^ws:/, 'wss:') };
        if (!target.native?.wsUrl.startsWith('wss:')) throw new Error(`--tls: the server did not start with TLS (${target.native?.wsUrl})`);
      }
      let fleet: Fleet | undefined;
      try {
        log(`target ${target.version} (pid ${target.pid}); setup: ${n} accounts`);
        const setup = await target.createAccounts(n, { prefix: 'idle', pairs: false, concurrency: setupConcurrency });
        fleet = await Fleet.start({ workers, protocol, endpoints: { xmppTcp: target.xmppTcp, xmppWs: target.xmppWs, native: target.native }, accounts: setup.accounts });
        const sampler = new ProcSampler(target.pid, 1000, fleet.pids).start();
        await sleep(settle * 1000);
        const before = procSnapshot(target.pid);
        const cpuBefore = cpuSplit(target.pid, fleet.pids);
        log(`RSS before ${round(before.rssKiB / 1024, 1)} MiB; opening ${n} ${protocol} sessions, ${concurrency} at a time`);
        const connect = await fleet.connect(concurrency);
        const cpuAfter = cpuSplit(target.pid, fleet.pids);
        const cpu = perLogin(cpuBefore, cpuAfter, connect.ok);
        log(`connected ${connect.ok} in ${round(connect.seconds, 1)} s; CPU ms per login: server ${cpu.serverMs} (main process ${cpu.serverMainMs}, children ${cpu.serverChildrenMs}), load generators ${cpu.loadGenMs}; settling ${settle} s`);
        await sleep(settle * 1000);
        const after = procSnapshot(target.pid);
        sampler.stop();
        const samples: Sample[] = sampler.samples;
        runs.push({
          target: name,
          version: target.version,
          protocol: cert ? `${protocol} (wss)` : protocol,
          tls: cert ? { resume: tlsResume } : undefined,
          setup: { accounts: setup.accounts.length, seconds: round(setup.seconds, 2) },
          connect,
          rssKiB: { before: before.rssKiB, after: after.rssKiB },
          kibPerSession: round((after.rssKiB - before.rssKiB) / Math.max(1, connect.ok), 2),
          serverCpuSecondsConnecting: round(after.cpuSeconds - before.cpuSeconds, 2),
          cpuMsPerLogin: cpu,
          contention: summarizeSamples(samples),
          samples,
          serverLog: target.problems(),
          config: target.config,
        });
      } finally {
        await fleet?.close();
        await target.stop();
      }
    } catch (err) {
      const error = (err as Error).message;
      log(`target ${name} failed: ${error}`);
      failed.push({ target: name, error });
    }
  }
  cert?.remove();
  const header = ['target', 'protocol', 'sessions', 'failed', 'connect+login/s', 'p50', 'p99', 'server CPU ms/login', 'load-gen CPU ms/login', 'RSS before', 'RSS after', 'KiB per session'];
  const rows = runs.map((r) => [
    r.version,
    r.protocol,
    String(r.connect.ok),
    String(Object.values(r.connect.failures).reduce((a, b) => a + b, 0)),
    String(r.connect.perSecond),
    ms(r.connect.latencyMs.p50),
    ms(r.connect.latencyMs.p99),
    String(r.cpuMsPerLogin.serverMs),
    String(r.cpuMsPerLogin.loadGenMs),
    `${round(r.rssKiB.before / 1024, 1)} MiB`,
    `${round(r.rssKiB.after / 1024, 1)} MiB`,
    String(r.kibPerSession),
  ]);
  const title = `connections over ${protocol}: ${n} idle sessions, ${concurrency} connecting at a time from ${workers} load-generator processes`;
  printSideBySide(title, header, rows);
  for (const f of failed) console.log(`${f.target}: FAILED: ${f.error}\n`);
  if (failed.length) process.exitCode = 1;
  const sections: ReportSection[] = runs.map((r) => ({
    title: `${r.version} over ${r.protocol}`,
    rows: [
      ['connect + login', `${r.connect.ok} sessions in ${round(r.connect.seconds, 2)} s: ${r.connect.perSecond}/s; p50 ${ms(r.connect.latencyMs.p50)}, p99 ${ms(r.connect.latencyMs.p99)}, max ${ms(r.connect.latencyMs.max)}`],
      ['failures', JSON.stringify(r.connect.failures)],
      ['RSS per session', `${r.kibPerSession} KiB (${round(r.rssKiB.before / 1024, 1)} → ${round(r.rssKiB.after / 1024, 1)} MiB)`],
      ['server CPU while connecting', `${r.serverCpuSecondsConnecting} s`],
      ['CPU per login', `server ${r.cpuMsPerLogin.serverMs} ms (main process ${r.cpuMsPerLogin.serverMainMs}, child processes such as the TLS front ${r.cpuMsPerLogin.serverChildrenMs}); load generators ${r.cpuMsPerLogin.loadGenMs} ms`],
      ['load generators / other tenants', `${r.contention.loadGenCores} / ${r.contention.otherCores} cores`],
    ],
    throughput: [],
    latency: [],
    distribution: [],
    ...processSeries(r.samples),
  }));
  const files = writeRun('connections', outDir, {
    scenario: 'connections',
    startedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
    params: { targets, protocol, connections: n, concurrency, settle, workers, sasl, tls: useTls, tlsResume },
    machine,
    git: gitInfo(),
    table: { header, rows },
    failed,
    runs,
  }, { title, command: `npm run bench -- ${process.argv.slice(2).join(' ')}`, machine: machineLine(machine), table: { header, rows }, sections });
  log(`wrote ${files.json} and ${files.html}`);
}

interface CpuSplit {
  serverMain: number;
  serverChildren: number;
  loadGen: number;
}

/**
 * CPU seconds so far of the server's own process, of its child processes (Kindred's TLS
 * front does the TLS handshakes), and of the load generators. The generators share the
 * machine with the server, so a costly client caps the login rate as surely as the server.
 */
function cpuSplit(serverPid: number, loadGenPids: number[]): CpuSplit {
  const sum = (pids: number[]) =>
    pids.reduce((a, pid) => {
      try {
        return a + procSnapshot(pid).cpuSeconds;
      } catch {
        return a; // exited meanwhile
      }
    }, 0);
  const all = procSnapshot(serverPid).cpuSeconds;
  // procSnapshot(child) includes the child's own descendants: count direct children only
  const below = descendants(serverPid);
  const grandchildren = new Set(below.flatMap((pid) => descendants(pid)));
  const children = sum(below.filter((pid) => !grandchildren.has(pid)));
  return { serverMain: all - children, serverChildren: children, loadGen: sum(loadGenPids) };
}

function perLogin(before: CpuSplit, after: CpuSplit, logins: number): { serverMs: number; serverMainMs: number; serverChildrenMs: number; loadGenMs: number } {
  const ms = (k: keyof CpuSplit) => round(((after[k] - before[k]) * 1000) / Math.max(1, logins), 3);
  const serverMainMs = ms('serverMain');
  const serverChildrenMs = ms('serverChildren');
  return { serverMs: round(serverMainMs + serverChildrenMs, 3), serverMainMs, serverChildrenMs, loadGenMs: ms('loadGen') };
}
