/**
 * search: loads N generated books (bench/lib/bookgen.ts, deterministic) into a real server
 * through the admin bulk import (POST /v1/books/import, NDJSON), waits until the Search
 * service has indexed all of them (its index is fed by the Books events), then runs a
 * closed loop of --concurrency searches over HTTP for --duration seconds and reports
 * queries/s and latency (each answer hydrated from the Books service, as users get it).
 *
 * The query mix, drawn deterministically from the generated catalogue:
 *   30% a title with one letter changed (typo tolerance), 20% an author's name,
 *   15% a title prefix (type-ahead on /v1/search/suggest), 15% a description word with
 *   format and price filters sorted by price, 10% author facet filter without text,
 *   10% browse: no text, one format, newest first, a random page of the first 20.
 */
import type { Options } from '../lib/args.js';
import { authorName, generateBook, prng } from '../lib/bookgen.js';
import { Latency, nowMs, watchLoopDelay } from '../lib/hist.js';
import { ProcSampler, machineInfo, procSnapshot, round, selfCpuSeconds, summarizeSamples } from '../lib/proc.js';
import { fmt, log, ms, printTable, writeResult } from '../lib/report.js';
import { gitInfo, resolveEntry, startServer } from '../lib/server.js';

const ADMIN = 'benchadmin';

function typo(word: string, r: () => number): string {
  if (word.length < 5) return word;
  const i = 1 + Math.floor(r() * (word.length - 2));
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  return word.slice(0, i) + letters[Math.floor(r() * 26)] + word.slice(i + 1);
}

export function searchQuery(i: number, books: number, seed: number): { path: string; kind: string } {
  const r = prng(seed * 7919 + i);
  const book = generateBook(Math.floor(r() * books), seed);
  const roll = r();
  if (roll < 0.3) {
    const words = book.title.split(' ');
    const q = words.map((w) => (w.length >= 5 && r() < 0.5 ? typo(w.toLowerCase(), r) : w.toLowerCase())).join(' ');
    return { path: `/v1/search?q=${encodeURIComponent(q)}`, kind: 'title-typo' };
  }
  if (roll < 0.5) return { path: `/v1/search?q=${encodeURIComponent(book.authors[0]!)}`, kind: 'author' };
  if (roll < 0.65) {
    const t = book.title.replace(/^The /, '');
    return { path: `/v1/search/suggest?q=${encodeURIComponent(t.slice(0, 3 + Math.floor(r() * 4)))}`, kind: 'suggest' };
  }
  if (roll < 0.8) {
    const words = book.description.replace('.', '').split(' ').filter((w) => w.length > 4);
    const w = words[Math.floor(r() * words.length)] ?? 'river';
    return { path: `/v1/search?q=${encodeURIComponent(w.toLowerCase())}&format=print&minPrice=500&maxPrice=2000&sort=price`, kind: 'word-filtered' };
  }
  if (roll < 0.9) return { path: `/v1/search?author=${encodeURIComponent(authorName(Math.floor(r() * 200)))}`, kind: 'author-facet' };
  return { path: `/v1/search?format=${r() < 0.5 ? 'ebook' : 'print'}&sort=newest&page=${1 + Math.floor(r() * 20)}`, kind: 'browse' };
}

async function json(res: Response): Promise<any> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

export async function search(o: Options): Promise<void> {
  const count = o.num('books', 1_000_000);
  const concurrency = o.num('concurrency', 16);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 3);
  const seed = o.num('seed', 42);
  const chunk = o.num('import-chunk', 5000);
  const importConcurrency = o.num('import-concurrency', 4);
  const entryFlag = o.str('server-entry', '');
  const keepData = o.bool('keep-data');
  o.checkUnknown();

  const machine = machineInfo();
  const { warning } = resolveEntry(entryFlag || undefined);
  if (warning) log(`warning: ${warning}`);
  const server = await startServer({
    entry: entryFlag || undefined,
    keepData,
    config: { ...o.serverConfig(), store: { admins: [ADMIN], importMaxBytes: 64 * 1024 * 1024 } },
  });
  log(`server pid ${server.pid} on http ${server.httpPort} (${server.entry})`);
  try {
    const reg = await json(await fetch(`${server.base}/v1/register`, { method: 'POST', body: JSON.stringify({ username: ADMIN, password: 'bench admin password' }) }));
    const auth = { authorization: `Bearer ${reg.token}` };

    // ── load the catalogue through the real import path ──
    log(`importing ${count} generated books in chunks of ${chunk}, ${importConcurrency} at a time`);
    const importStart = performance.now();
    let next = 0;
    let created = 0;
    let failed = 0;
    let lastLog = importStart;
    const importer = async () => {
      while (next < count) {
        const from = next;
        next += chunk;
        const lines: string[] = [];
        for (let i = from; i < Math.min(from + chunk, count); i++) lines.push(JSON.stringify(generateBook(i, seed)));
        const r = await json(await fetch(`${server.base}/v1/books/import`, { method: 'POST', headers: { ...auth, 'content-type': 'application/x-ndjson' }, body: lines.join('\n') }));
        created += r.created.length;
        failed += r.failed.length;
        if (performance.now() - lastLog > 15_000) {
          lastLog = performance.now();
          log(`  ${created} imported (${fmt(created / ((lastLog - importStart) / 1000))}/s)`);
        }
      }
    };
    await Promise.all(Array.from({ length: importConcurrency }, importer));
    const importSeconds = (performance.now() - importStart) / 1000;
    if (failed > 0) throw new Error(`${failed} books failed to import`);
    log(`imported ${created} in ${round(importSeconds, 1)} s; waiting for the search index`);
    const indexWaitStart = performance.now();
    for (;;) {
      const s = await json(await fetch(`${server.base}/v1/search/stats`));
      if (s.indexed >= count && !s.building) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const indexLagSeconds = (performance.now() - indexWaitStart) / 1000;
    const rssAfterLoad = procSnapshot(server.pid).rssKiB;

    // ── closed-loop queries ──
    const latency = new Latency();
    const byKind = new Map<string, Latency>();
    const errors: Record<string, number> = {};
    let ok = 0;
    let measured = 0;
    let hits = 0;
    let q = 0;
    const sampler = new ProcSampler(server.pid).start();
    const loop = watchLoopDelay();
    const start = nowMs();
    const measureStart = start + warmup * 1000;
    const end = measureStart + duration * 1000;
    let snapStart: ReturnType<typeof procSnapshot> | undefined;
    let selfStart = 0;
    log(`searching for ${warmup} + ${duration} s with ${concurrency} in flight`);
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (nowMs() < end) {
          const { path, kind } = searchQuery(q++, count, seed);
          const sent = nowMs();
          if (!snapStart && sent >= measureStart) {
            snapStart = procSnapshot(server.pid);
            selfStart = selfCpuSeconds();
          }
          try {
            const body = await json(await fetch(server.base + path));
            ok++;
            if (sent >= measureStart) {
              const took = nowMs() - sent;
              latency.recordMs(took);
              if (!byKind.has(kind)) byKind.set(kind, new Latency());
              byKind.get(kind)!.recordMs(took);
              measured++;
              if ((body.results?.length ?? body.suggestions?.length ?? 0) > 0) hits++;
            }
          } catch (err) {
            const key = String((err as Error).message).slice(0, 60);
            errors[key] = (errors[key] ?? 0) + 1;
          }
        }
      }),
    );
    const snapEnd = procSnapshot(server.pid);
    sampler.stop();
    const loadGenLoopDelay = loop.stop();
    const seconds = duration;
    const serverCpu = snapEnd.cpuSeconds - (snapStart?.cpuSeconds ?? snapEnd.cpuSeconds);
    const l = latency.summary();
    const results = {
      books: count,
      importSeconds: round(importSeconds, 1),
      importBooksPerSecond: Math.round(count / importSeconds),
      indexLagSecondsAfterImport: round(indexLagSeconds, 1),
      serverRssMiBAfterLoad: Math.round(rssAfterLoad / 1024),
      queries: ok,
      queriesMeasured: measured,
      queriesPerSecond: Math.round(measured / seconds),
      withResultsShare: round(hits / Math.max(1, measured), 3),
      latencyMs: l,
      latencyByKindMs: Object.fromEntries([...byKind].map(([k, h]) => [k, h.summary()])),
      errors,
      serverCpuCores: round(serverCpu / seconds, 2),
      loadGenCpuSeconds: round(selfCpuSeconds() - selfStart, 2),
      loadGenLoopDelayMs: loadGenLoopDelay,
      contention: summarizeSamples(sampler.samples, warmup, warmup + duration),
      serverLog: server.problems(),
    };
    printTable(`search: ${count} books, ${concurrency} in flight, ${duration} s`, [
      ['import (NDJSON over HTTP)', `${round(importSeconds, 1)} s, ${fmt(results.importBooksPerSecond)} books/s; index caught up ${round(indexLagSeconds, 1)} s later`],
      ['server RSS after load', `${results.serverRssMiBAfterLoad} MiB`],
      ['queries/s', fmt(results.queriesPerSecond)],
      ['latency p50 / p90 / p99 / max', `${ms(l.p50)} / ${ms(l.p90)} / ${ms(l.p99)} / ${ms(l.max)}`],
      ...[...byKind].map(([k, h]) => [`  ${k} p50 / p99 (n)`, `${ms(h.summary().p50)} / ${ms(h.summary().p99)} (${h.count})`] as [string, string]),
      ['answers with results', `${Math.round(results.withResultsShare * 100)}%`],
      ['errors', JSON.stringify(errors)],
      ['server CPU', `${results.serverCpuCores} cores`],
      ['other tenants (mean cores) / CPU pressure', `${results.contention.otherCores} / ${Math.round(results.contention.cpuPressure * 100)}%`],
      ['machine load avg at start', machine.loadavg.join(' ')],
    ]);
    const file = writeResult('search', {
      scenario: 'search',
      startedAt: new Date(start).toISOString(),
      argv: process.argv.slice(2),
      params: { books: count, concurrency, duration, warmup, seed, chunk, importConcurrency },
      machine,
      server: { entry: server.entry, config: server.config, git: gitInfo() },
      results,
      samples: sampler.samples,
    });
    log(`wrote ${file}`);
  } finally {
    await server.stop();
  }
}
