/**
 * Medians of repeated runs: `node --import tsx bench/summarize.ts [--since <epoch s>] [files...]`.
 * Groups bench/results/*.json by scenario and parameters and prints, per figure,
 * the median and the raw values (in file order), as used in bench/RESULTS.md.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './lib/server.js';

type Result = { scenario: string; startedAt: string; params: Record<string, any>; results: Record<string, any>; setup: Record<string, any> };

const args = process.argv.slice(2);
let since = 0;
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--since') since = Number(args[++i]) * 1000;
  else files.push(args[i]!);
}
if (!files.length) {
  const dir = join(REPO_ROOT, 'bench', 'results');
  for (const f of readdirSync(dir).sort()) if (f.endsWith('.json') && statSync(join(dir, f)).mtimeMs >= since) files.push(join(dir, f));
}

const atMax = (r: Result) => r.results.stepLoad?.steps.filter((s: any) => s.ok && s.rate === r.results.stepLoad.maxSustainable).at(-1)?.result;
const metrics: Record<string, Array<[string, (r: Result) => number]>> = {
  'chat-step': [
    ['max sustainable msgs/s at p99 < limit', (r) => r.results.stepLoad.maxSustainable],
    ['first failing step msgs/s', (r) => r.results.stepLoad.firstFailing],
    ['p50 ms at the max', (r) => atMax(r)?.latencyMs.p50],
    ['p99 ms at the max', (r) => atMax(r)?.latencyMs.p99],
    ['connect+login /s', (r) => r.results.connect.perSecond],
    ['server cores (mean over the run)', (r) => r.results.serverCpuCores],
    ['server RSS max MiB', (r) => r.results.serverRssMiBMax],
    ['load generators, cores', (r) => r.results.loadGenCores],
    ['other tenants, cores', (r) => r.results.otherCores],
  ],
  'chat-rate': [
    ['delivered msgs/s', (r) => r.results.phase.deliveredPerSecond],
    ['delivery p50 ms', (r) => r.results.phase.latencyMs.p50],
    ['delivery p99 ms', (r) => r.results.phase.latencyMs.p99],
    ['delivery max ms', (r) => r.results.phase.latencyMs.max],
    ['not received', (r) => r.results.phase.notReceived],
    ['server cores', (r) => r.results.serverCpuCores],
    ['other tenants, cores', (r) => r.results.otherCores],
  ],
  connections: [
    ['connect+login /s', (r) => r.results.connect.perSecond],
    ['connect+login p50 ms', (r) => r.results.connect.latencyMs.p50],
    ['connect+login p99 ms', (r) => r.results.connect.latencyMs.p99],
    ['KiB RSS per session', (r) => r.results.kibPerSession],
    ['RSS before, MiB', (r) => Math.round(r.results.rssKiB.before / 102.4) / 10],
    ['RSS after, MiB', (r) => Math.round(r.results.rssKiB.after / 102.4) / 10],
    ['failed sessions', (r) => Object.values(r.results.connect.failures as Record<string, number>).reduce((a, b) => a + b, 0)],
    ['other tenants, cores', (r) => r.results.contention?.otherCores],
  ],
  'chat-native': [
    ['delivered msgs/s', (r) => r.results.deliveredPerSecond],
    ['delivery p50 ms', (r) => r.results.deliveryLatencyMs.p50],
    ['delivery p90 ms', (r) => r.results.deliveryLatencyMs.p90],
    ['delivery p99 ms', (r) => r.results.deliveryLatencyMs.p99],
    ['delivery max ms', (r) => r.results.deliveryLatencyMs.max],
    ['ack p50 ms', (r) => r.results.ackLatencyMs.p50],
    ['ack p99 ms', (r) => r.results.ackLatencyMs.p99],
    ['lost', (r) => r.results.lost],
    ['unacked + ack errors', (r) => r.results.unacked + Object.values(r.results.ackErrors as Record<string, number>).reduce((a, b) => a + b, 0)],
    ['server CPU s', (r) => r.results.serverCpuSeconds],
    ['msgs per server CPU-s', (r) => r.results.msgsPerServerCpuSecond],
    ['server main thread waiting for CPU', (r) => r.results.serverMainThread?.waitingForCpu],
    ['other tenants, cores', (r) => r.results.contention?.otherCores],
  ],
  swipes: [
    ['swipes/s', (r) => r.results.swipesPerSecond],
    ['p50 ms', (r) => r.results.latencyMs.p50],
    ['p90 ms', (r) => r.results.latencyMs.p90],
    ['p99 ms', (r) => r.results.latencyMs.p99],
    ['max ms', (r) => r.results.latencyMs.max],
    ['errors', (r) => Object.values(r.results.errors as Record<string, number>).reduce((a, b) => a + b, 0)],
    ['server CPU s', (r) => r.results.serverCpuSeconds],
    ['swipes per server CPU-s', (r) => r.results.swipesPerServerCpuSecond],
    ['server main thread waiting for CPU', (r) => r.results.serverMainThread?.waitingForCpu],
    ['other tenants, cores', (r) => r.results.contention?.otherCores],
  ],
  idle: [
    ['KiB RSS per connection', (r) => r.results.kibPerConnection],
    ['KiB RSS per connection, no forced GC', (r) => r.results.kibPerConnectionNoGc],
    ['KiB JS heap per connection', (r) => r.results.memory?.perConnectionKiB.heapUsed],
    ['connect+auth /s', (r) => r.results.connectAuthPerSecond],
    ['connect+auth p99 ms', (r) => r.results.connectAuthLatencyMs.p99],
    ['failed connections', (r) => Object.values(r.results.failures as Record<string, number>).reduce((a, b) => a + b, 0)],
    ['closed by server', (r) => Object.values(r.results.connectionsClosed as Record<string, number>).reduce((a, b) => a + b, 0)],
    ['RSS before, MiB', (r) => Math.round(r.results.rssKiB.beforeConnections / 102.4) / 10],
    ['RSS after, MiB', (r) => Math.round(r.results.rssKiB.afterConnections / 102.4) / 10],
    ['registrations/s (setup)', (r) => r.setup.register.perSecond],
    ['other tenants, cores', (r) => r.results.contention?.otherCores],
  ],
};

function key(r: Result): string {
  const p = r.params;
  if (r.scenario === 'chat-step') return `chat --step-load --target ${p.target} --protocol ${p.protocol} --pairs ${p.pairs} (steps ${p.stepDuration} s)`;
  if (r.scenario === 'chat-rate') return `chat --target ${p.target} --protocol ${p.protocol} --pairs ${p.pairs} --rate ${p.rate} --duration ${p.duration}`;
  if (r.scenario === 'connections') return `connections --target ${p.target} --protocol ${p.protocol} --connections ${p.connections}`;
  if (r.scenario === 'chat-native' || r.scenario === 'chat') return `chat --protocol ${p.protocol} --pairs ${p.pairs} --rate ${p.rate} --duration ${p.duration}`;
  if (r.scenario === 'swipes') return `swipes --protocol ${p.protocol} --users ${p.users} --concurrency ${p.concurrency} --duration ${p.duration}`;
  if (r.scenario === 'idle') return `idle --protocol ${p.protocol} --connections ${p.connections} --users ${p.users}`;
  return `${r.scenario} ${JSON.stringify(p ?? {})}`; // other scenarios' files: grouped, no figures known here
}

function show(v: number): string {
  const a = Math.abs(v);
  return String(a >= 100 ? Math.round(v) : a >= 10 ? Math.round(v * 10) / 10 : Math.round(v * 100) / 100);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const groups = new Map<string, Result[]>();
for (const f of files) {
  const doc = JSON.parse(readFileSync(f, 'utf8')) as Result & { runs?: Array<Record<string, any>> };
  // harness runs (chat, connections) hold one entry per target; the older scripts one result
  const results: Result[] = doc.runs
    ? doc.runs.map((run) => ({
        scenario: doc.scenario === 'chat' ? (doc.params.steps ? 'chat-step' : 'chat-rate') : doc.scenario,
        startedAt: doc.startedAt,
        params: { ...doc.params, target: run.target },
        results: run,
        setup: run.setup,
      }))
    : [{ ...doc, scenario: doc.scenario === 'chat' ? 'chat-native' : doc.scenario }];
  for (const r of results) {
    const k = key(r);
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
}
for (const [k, runs] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`\n### ${k}  (${runs.length} runs: ${runs.map((r) => String(r.startedAt ?? "?").slice(11, 19)).join(', ')} UTC)\n`);
  console.log('| figure | median | runs |\n|---|---:|---|');
  for (const [name, get] of metrics[runs[0]!.scenario] ?? []) {
    const values = runs.map(get).filter((v) => typeof v === 'number' && Number.isFinite(v));
    if (!values.length) continue;
    console.log(`| ${name} | ${show(median(values))} | ${values.map(show).join(', ')} |`);
  }
}
