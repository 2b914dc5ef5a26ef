/**
 * A load-generator worker: a child process of the bench CLI (never of the server).
 * It holds a slice of the users' sessions, sends its share of the open-loop message
 * rate and measures delivery latency for the messages its own sessions receive
 * (both users of a pair live in the same worker, so sender and receiver share a
 * clock). It reports to the parent over IPC: once per second a tick with counts and
 * an HDR histogram of that second's latencies, and a summary at the end of a phase.
 *
 * Message k of phase p goes within local pair k mod P, alternating direction, with
 * body `p.k|<intended send time, epoch ms>|padding`. Latency = receive time -
 * intended send time (coordinated-omission-correct: a stall is charged to every
 * message that was due during it).
 */
import { encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import { sourceAddress } from './conn.js';
import { Latency, nowMs } from './hist.js';
import { openSession, type ChatSession, type Endpoints, type Protocol } from './sessions.js';
import type { Account } from './targets/types.js';
import type { ToWorker, FromWorker, PhaseSpec } from './worker-protocol.js';

let protocol: Protocol;
let endpoints: Endpoints;
let accounts: Account[] = [];
let addressOffset = 0;
let sessions: ChatSession[] = [];
const closes: Record<string, number> = {};
let phaseId = -1;
let onBodyOfPhase: ((phase: number, k: number, intended: number) => void) | undefined;

function send(msg: FromWorker): void {
  process.send!(msg);
}

function encode(l: Latency): string {
  return encodeIntoCompressedBase64(l.histogram);
}

async function connect(concurrency: number): Promise<void> {
  const latency = new Latency();
  const failures: Record<string, number> = {};
  const out = new Array<ChatSession | undefined>(accounts.length);
  const t0 = performance.now();
  let next = 0;
  const work = async () => {
    while (next < accounts.length) {
      const i = next++;
      const started = performance.now();
      try {
        const s = await openSession(protocol, endpoints, accounts[i]!, sourceAddress(addressOffset + i));
        latency.recordMs(performance.now() - started);
        s.onClose = (r) => {
          const key = r.slice(0, 80);
          closes[key] = (closes[key] ?? 0) + 1;
        };
        s.onBody = (body) => {
          // "p.k|intended|pad"
          const dot = body.indexOf('.');
          const bar = body.indexOf('|');
          const bar2 = body.indexOf('|', bar + 1);
          onBodyOfPhase?.(Number(body.slice(0, dot)), Number(body.slice(dot + 1, bar)), Number(body.slice(bar + 1, bar2)));
        };
        out[i] = s;
      } catch (err) {
        const key = ((err as { code?: string }).code ?? 'ERROR') + ': ' + (err as Error).message.slice(0, 120);
        failures[key] = (failures[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, accounts.length) }, work));
  const seconds = (performance.now() - t0) / 1000;
  sessions = out.filter((s): s is ChatSession => s !== undefined);
  // keep index alignment for pairs: a failed login leaves its pair unusable
  sessionsByIndex = out;
  send({ type: 'connected', ok: sessions.length, failures, seconds, hist: encode(latency) });
}

let sessionsByIndex: Array<ChatSession | undefined> = [];

async function runPhase(spec: PhaseSpec): Promise<void> {
  phaseId = spec.phase;
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i + 1 < accounts.length; i += 2) if (sessionsByIndex[i] && sessionsByIndex[i + 1]) pairs.push([i, i + 1]);
  if (pairs.length === 0) throw new Error('no connected pair in this worker');
  const total = Math.round(spec.rate * (spec.warmup + spec.duration));
  const interval = 1000 / spec.rate;
  const measureFrom = spec.t0 + spec.warmup * 1000;
  const measureTo = spec.t0 + (spec.warmup + spec.duration) * 1000;
  const pad = 'x'.repeat(Math.max(0, spec.body - 24));
  const received = new Uint8Array(total);
  const all = new Latency();
  let tick = new Latency();
  let tickSent = 0;
  let tickReceived = 0;
  let sent = 0;
  let sentMeasured = 0;
  let receivedCount = 0;
  let receivedMeasured = 0;
  let duplicates = 0;
  let late = 0;
  let maxSendLag = 0;
  onBodyOfPhase = (p, k, intended) => {
    if (p !== phaseId) {
      late++;
      return;
    }
    if (received[k]) {
      duplicates++;
      return;
    }
    received[k] = 1;
    receivedCount++;
    tickReceived++;
    const lat = nowMs() - intended;
    tick.recordMs(lat);
    if (intended >= measureFrom) {
      all.recordMs(lat);
      receivedMeasured++;
    }
  };
  let sec = 0;
  const ticker = setInterval(() => {
    send({ type: 'tick', phase: spec.phase, sec: sec++, sent: tickSent, received: tickReceived, hist: encode(tick) });
    tick = new Latency();
    tickSent = 0;
    tickReceived = 0;
  }, 1000);
  const startTicks = Math.max(0, spec.t0 - nowMs());
  let k = 0;
  await new Promise<void>((resolve) => {
    const loop = () => {
      const now = nowMs();
      const due = Math.min(total, Math.floor((now - spec.t0) / interval) + 1);
      while (k < due) {
        const intended = spec.t0 + k * interval;
        maxSendLag = Math.max(maxSendLag, now - intended);
        const [a, b] = pairs[k % pairs.length]!;
        const dir = Math.floor(k / pairs.length) & 1;
        const from = sessionsByIndex[dir ? b : a]!;
        const to = accounts[dir ? a : b]!;
        from.send(to, `${spec.phase}.${k}|${intended.toFixed(3)}|${pad}`, `m${spec.phase}.${k}`);
        sent++;
        tickSent++;
        if (intended >= measureFrom && intended < measureTo) sentMeasured++;
        k++;
      }
      if (k < total) setTimeout(loop, 1);
      else resolve();
    };
    setTimeout(loop, startTicks);
  });
  // drain: until everything arrived, or nothing arrived for 3 s, or the deadline
  const deadline = nowMs() + spec.drainMs;
  let lastCount = -1;
  let lastProgress = nowMs();
  while (receivedCount < sent && nowMs() < deadline) {
    if (receivedCount !== lastCount) {
      lastCount = receivedCount;
      lastProgress = nowMs();
    } else if (nowMs() - lastProgress > 3000) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  clearInterval(ticker);
  send({ type: 'tick', phase: spec.phase, sec: sec++, sent: tickSent, received: tickReceived, hist: encode(tick) });
  onBodyOfPhase = () => void late++;
  const errors: Record<string, number> = {};
  for (const s of sessions) for (const [code, n] of Object.entries(s.errors)) errors[code] = (errors[code] ?? 0) + n;
  const cpu = process.cpuUsage();
  send({
    type: 'phaseDone',
    phase: spec.phase,
    pairs: pairs.length,
    sent,
    sentMeasured,
    received: receivedCount,
    receivedMeasured,
    notReceived: sent - receivedCount,
    duplicates,
    late,
    errors,
    closes: { ...closes },
    maxSendLagMs: Math.round(maxSendLag * 10) / 10,
    hist: encode(all),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  });
}

process.on('message', (msg: ToWorker) => {
  const run = async () => {
    switch (msg.type) {
      case 'init':
        protocol = msg.protocol;
        endpoints = msg.endpoints;
        accounts = msg.accounts;
        addressOffset = msg.addressOffset;
        send({ type: 'ready' });
        break;
      case 'connect':
        await connect(msg.concurrency);
        break;
      case 'phase':
        await runPhase(msg.spec);
        break;
      case 'close':
        for (const s of sessions) s.close();
        send({ type: 'closed' });
        setTimeout(() => process.exit(0), 100);
        break;
    }
  };
  run().catch((err: Error) => send({ type: 'failed', message: err.stack ?? err.message }));
});
process.on('disconnect', () => process.exit(0));
