/**
 * idle: N authenticated, idle native connections (one user per connection, as in
 * reality). Measures the server's RSS after setup and after all connections are up
 * (each time after a settle of --settle seconds, the server can't be told to GC),
 * and reports KiB per connection, plus the connect+auth rate and latency.
 *
 * What one "connection" costs here: the socket (uWS or node:net), the native
 * session, the session-hub entry and the user's actor (activated by `auth`, with its
 * matches and settings loaded). Client sockets are spread over source addresses
 * 127.0.0.2..127.0.0.9 so 10k+ sockets don't exhaust one address's ephemeral ports.
 *
 * `--tls`: the server gets a throwaway self-signed certificate (its HTTP/WS listener becomes
 * uWS.SSLApp) and the connections are wss://, so the figures include uWS's TLS per socket and
 * a full TLS handshake per login (`--tls-resume`: an abbreviated one). CPU per login is
 * reported for the server and for this process (the load generator).
 */
import type { Options } from '../lib/args.js';
import { BenchConn, sourceAddress } from '../lib/conn.js';
import { Latency } from '../lib/hist.js';
import { ProcSampler, procSnapshot, round, selfCpuSeconds, summarizeSamples, tcpSockstat } from '../lib/proc.js';
import { handshakeCounts, makeLoopbackCert, setTlsResume, trustForFetch } from '../lib/loopback-tls.js';
import { fmt, log, ms, printTable, sleep } from '../lib/report.js';
import { scrapeMetrics } from '../lib/server.js';
import { registerUsers } from '../lib/setup.js';
import { gcAndMeasure, type MemoryUsage } from '../lib/inspector.js';
import { contextRows, nativeTarget, scenarioFlags, withScenarioServer, writeScenarioResult } from '../lib/scenario.js';

export async function idle(o: Options): Promise<void> {
  const connections = o.num('connections', 10_000);
  const userCount = o.num('users', connections);
  const concurrency = o.num('concurrency', 100);
  const settle = o.num('settle', 5);
  const protocol = o.str('protocol', 'ws', ['ws', 'tcp'] as const);
  const forceGc = !o.bool('no-gc');
  const useTls = o.bool('tls');
  const tlsResume = o.bool('tls-resume');
  const flags = scenarioFlags(o);
  const setupConcurrency = flags.setupConcurrency;
  o.checkUnknown();
  if (useTls && protocol !== 'ws') throw new Error('--tls is for --protocol ws (wss://); TLS over TCP is measured by `connections --protocol xmpp-tcp` (and the TLS front)');
  if (tlsResume && !useTls) throw new Error('--tls-resume needs --tls');
  const cert = useTls ? makeLoopbackCert() : undefined;
  if (cert) trustForFetch(cert.certPem);
  setTlsResume(tlsResume);
  const wire = useTls ? 'wss' : protocol;

  try {
    await withScenarioServer(flags, { inspect: forceGc, config: cert?.serverConfig }, async ({ server, machine, conns }) => {
      const measureAfterGc = async (): Promise<MemoryUsage | undefined> => {
        if (!forceGc) return undefined;
        if (!server.inspectorUrl) throw new Error('the server printed no inspector URL; run with --no-gc');
        return gcAndMeasure(server.inspectorUrl);
      };
      const fresh = procSnapshot(server.pid);
      log(`setup: registering ${userCount} users over REST, ${setupConcurrency} at a time`);
      const { users, register } = await registerUsers(server.base, userCount, {
        prefix: 'idle',
        concurrency: setupConcurrency,
        progress: (n) => log(`  ${n} registered`),
      });
      log(`setup: ${fmt(register.perSecond)} registrations/s; settling ${settle} s`);
      const sampler = new ProcSampler(server.pid).start();
      await sleep(settle * 1000);
      const beforeNoGc = procSnapshot(server.pid);
      const memBefore = await measureAfterGc();
      const kernelBefore = tcpSockstat();
      const before = procSnapshot(server.pid);
      const metricsBefore = await scrapeMetrics(server.base);

      log(`opening ${connections} ${wire} connections (connect + auth), ${concurrency} at a time`);
      const target = nativeTarget(server, protocol);
      if (useTls && !target.wsUrl.startsWith('wss:')) throw new Error(`--tls: the server did not start with TLS (its WebSocket URL is ${target.wsUrl})`);
      const clientCpuBefore = selfCpuSeconds();
      const serverCpuBefore = procSnapshot(server.pid).cpuSeconds;
      const latency = new Latency();
      const failures: Record<string, number> = {};
      const closes: Record<string, number> = {};
      const t0 = performance.now();
      let next = 0;
      const worker = async () => {
        while (next < connections) {
          const i = next++;
          const started = performance.now();
          try {
            const c = await BenchConn.connect(target, sourceAddress(i));
            c.onClose = (reason) => (closes[reason] = (closes[reason] ?? 0) + 1);
            await c.request('auth', { token: users[i % userCount]!.token });
            latency.recordMs(performance.now() - started);
            conns.push(c);
          } catch (err) {
            const key = (err as { code?: string }).code ?? (err as Error).message;
            failures[key] = (failures[key] ?? 0) + 1;
          }
          if ((i + 1) % 2000 === 0) log(`  ${i + 1} connected`);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, connections) }, worker));
      const connectSeconds = (performance.now() - t0) / 1000;
      const serverCpuConnecting = procSnapshot(server.pid).cpuSeconds - serverCpuBefore;
      const clientCpuConnecting = selfCpuSeconds() - clientCpuBefore;
      log(`connected ${conns.length} in ${round(connectSeconds, 1)} s; settling ${settle} s`);
      await sleep(settle * 1000);
      const afterNoGc = procSnapshot(server.pid);
      const memAfter = await measureAfterGc();
      const kernelAfter = tcpSockstat();
      const after = procSnapshot(server.pid);
      const metricsAfter = await scrapeMetrics(server.base);
      const open = conns.filter((c) => !c.closed).length;
      const closedByServer = { ...closes };

      // Informational: what is given back once the connections are gone.
      for (const c of conns) c.close();
      await sleep(settle * 1000);
      const closed = procSnapshot(server.pid);
      sampler.stop();

      const deltaKiB = after.rssKiB - before.rssKiB;
      const perConn = deltaKiB / Math.max(1, conns.length);
      const n = Math.max(1, conns.length);
      const perConnKiB = (a: number, b: number) => round((b - a) / 1024 / n, 2);
      const memory = memBefore && memAfter
        ? {
            before: memBefore,
            after: memAfter,
            perConnectionKiB: {
              rss: perConnKiB(memBefore.rss, memAfter.rss),
              heapUsed: perConnKiB(memBefore.heapUsed, memAfter.heapUsed),
              heapTotal: perConnKiB(memBefore.heapTotal, memAfter.heapTotal),
              external: perConnKiB(memBefore.external, memAfter.external),
              arrayBuffers: perConnKiB(memBefore.arrayBuffers, memAfter.arrayBuffers),
            },
          }
        : undefined;
      const l = latency.summary();
      const problems = server.problems();
      const results = {
        connections: conns.length,
        /** where the connections went: ws://…/ws, or wss://…/ws with --tls */
        url: protocol === 'ws' ? target.wsUrl : `tcp://127.0.0.1:${target.tcpPort}`,
        distinctUsers: Math.min(userCount, connections),
        failures,
        openAtEnd: open,
        connectionsClosed: closedByServer,
        connectSeconds: round(connectSeconds, 2),
        connectAuthPerSecond: Math.round(conns.length / connectSeconds),
        connectAuthLatencyMs: l,
        forcedGc: forceGc,
        rssKiB: {
          fresh: fresh.rssKiB,
          beforeConnections: before.rssKiB,
          afterConnections: after.rssKiB,
          beforeConnectionsNoGc: beforeNoGc.rssKiB,
          afterConnectionsNoGc: afterNoGc.rssKiB,
          afterClose: closed.rssKiB,
          peak: closed.hwmKiB,
        },
        rssDeltaKiB: deltaKiB,
        /** the headline: (RSS after - RSS before) / connections, both after settle (+ forced GC unless --no-gc) */
        kibPerConnection: round(perConn, 2),
        kibPerConnectionNoGc: round((afterNoGc.rssKiB - beforeNoGc.rssKiB) / n, 2),
        memory,
        /** machine-wide kernel TCP sockets and buffer memory (both ends of every connection are on this box; not in RSS) */
        kernelTcp: { before: kernelBefore, after: kernelAfter },
        /** server CPU from the first connect to the last auth answer (the old figure below also spans the settle) */
        serverCpuSecondsConnecting: round(after.cpuSeconds - before.cpuSeconds, 2),
        /** with --tls: the client's TLS handshakes, full and resumed */
        tlsHandshakes: useTls ? handshakeCounts() : undefined,
        cpuMsPerLogin: {
          server: round((serverCpuConnecting * 1000) / n, 3),
          loadGenerator: round((clientCpuConnecting * 1000) / n, 3),
        },
        serverGauges: { before: metricsBefore, after: metricsAfter },
        contention: summarizeSamples(sampler.samples),
        serverLog: problems,
      };
      printTable(`idle: ${connections} authenticated idle ${wire} connections (${results.distinctUsers} distinct users)`, [
        ['registration', `${fmt(register.perSecond)} users/s (${register.seconds} s)`],
        ['connected / failed', `${conns.length} / ${JSON.stringify(failures)}`],
        ['connect+auth rate', `${fmt(results.connectAuthPerSecond)} /s (${round(connectSeconds, 1)} s, ${concurrency} in flight)`],
        ['connect+auth p50 / p99 / max', `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}`],
        ['CPU per login: server / load generator', `${results.cpuMsPerLogin.server} ms / ${results.cpuMsPerLogin.loadGenerator} ms${useTls ? ` (TLS handshakes: ${results.tlsHandshakes!.full} full, ${results.tlsHandshakes!.resumed} resumed)` : ''}`],
        ['server RSS before / after', `${fmt(before.rssKiB / 1024)} MiB / ${fmt(after.rssKiB / 1024)} MiB`],
        ['RSS per connection', `${fmt(perConn)} KiB${forceGc ? ' (after forced GC)' : ''}`],
        ['RSS per connection without forced GC', `${fmt(results.kibPerConnectionNoGc)} KiB`],
        ...(memory
          ? ([
              ['JS heap used per connection', `${fmt(memory.perConnectionKiB.heapUsed)} KiB`],
              ['external + arrayBuffers per conn', `${fmt(memory.perConnectionKiB.external)} KiB (${fmt(memory.perConnectionKiB.arrayBuffers)} KiB in ArrayBuffers)`],
            ] as Array<[string, string]>)
          : []),
        ['RSS after closing all', `${fmt(closed.rssKiB / 1024)} MiB`],
        ['still open after settle', `${open} (closed by the server: ${JSON.stringify(closedByServer)})`],
        ...contextRows(problems, results.contention, machine),
      ]);
      writeScenarioResult('idle', flags, {
        startedAt: Date.now() - connectSeconds * 1000,
        params: { connections, users: userCount, concurrency, settle, protocol, tls: useTls, tlsResume, forceGc },
        machine,
        server,
        setup: { register },
        results,
        samples: sampler.samples,
      });
    });
  } finally {
    cert?.remove();
  }
}
