/**
 * tindr: a day in the app, for Kindred over its native protocol. M users with
 * profiles in one city are online. Swipes arrive open loop at --rate per second in
 * total; swipe k belongs to user k mod M, who takes the next card of their deck,
 * fetching a deck (`deck.get`, 20 cards) when theirs is empty. About --match-rate
 * (0.1%) of swipes make a match: a swipe is a like when its card already liked the
 * swiper and matches are below the target share, otherwise a like with probability
 * --like (0.3, mostly one-sided) or a pass. On each match the swiper sends a first
 * message to the new match, which is online.
 *
 * Reported: swipes/s, swipe latency from the intended time (open loop, no
 * coordinated omission), deck fetch latency, match share, the time from a match to
 * the other user's `match` event, first-message delivery latency, errors, server CPU
 * and RSS. One load-generator process (the CLI), like swipes and idle.
 */
import type { Options } from '../lib/args.js';
import { connectAll, type BenchConn, type Target } from '../lib/conn.js';
import { Latency, nowMs } from '../lib/hist.js';
import { machineInfo, ProcSampler, round, summarizeSamples } from '../lib/proc.js';
import { fmt, log, ms, printTable, sleep, writeResult } from '../lib/report.js';
import { gitInfo, resolveEntry, startServer } from '../lib/server.js';
import { registerUsers } from '../lib/setup.js';
import { Progress } from '../lib/progress.js';

export async function tindr(o: Options): Promise<void> {
  const userCount = o.num('users', 1000);
  const rate = o.num('rate', 1000);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 3);
  const matchRate = o.num('match-rate', 0.001);
  const likeShare = o.num('like', 0.3);
  const protocol = o.str('protocol', 'ws', ['ws', 'tcp'] as const);
  const setupConcurrency = o.num('setup-concurrency', 50);
  const entryFlag = o.str('server-entry', '');
  const keepData = o.bool('keep-data');
  o.checkUnknown();
  if (userCount < 2) throw new Error('--users must be at least 2');

  const machine = machineInfo();
  const { warning } = resolveEntry(entryFlag || undefined);
  if (warning) log(`warning: ${warning}`);
  const server = await startServer({ entry: entryFlag || undefined, keepData, config: o.serverConfig() });
  const conns: BenchConn[] = [];
  try {
    log(`setup: ${userCount} users with profiles over REST`);
    const { users, register } = await registerUsers(server.base, userCount, { prefix: 'tindr', concurrency: setupConcurrency, profiles: true });
    const target: Target = { protocol, wsUrl: server.wsUrl, host: '127.0.0.1', tcpPort: server.tcpPort };
    conns.push(...(await connectAll(target, users.map((u) => u.token), { concurrency: 100 })));
    const index = new Map(users.map((u, i) => [u.userId, i]));

    const decks: string[][] = users.map(() => []);
    const fetching = new Uint8Array(userCount);
    const exhausted = new Uint8Array(userCount);
    const likedBy: Array<Set<number>> = users.map(() => new Set());
    const swipeLat = new Latency();
    const deckLat = new Latency();
    const matchEventLat = new Latency();
    const firstMsgLat = new Latency();
    const errors: Record<string, number> = {};
    const pendingMatchAt = new Map<string, number>();
    let swipes = 0;
    let swipesMeasured = 0;
    let likes = 0;
    let matches = 0;
    let skipped = 0;
    let firstMessages = 0;
    let firstDelivered = 0;
    const err = (code: string) => (errors[code] = (errors[code] ?? 0) + 1);

    conns.forEach((c, i) => {
      c.onEvent = (e) => {
        const now = nowMs();
        if (e.type === 'match') {
          const other = (e.peer?.userId ?? '') as string;
          const at = pendingMatchAt.get(`${other}>${users[i]!.userId}`);
          if (at !== undefined) matchEventLat.recordMs(now - at);
        } else if (e.type === 'message' && typeof e.message?.body === 'string' && e.message.body.startsWith('hi|')) {
          firstDelivered++;
          firstMsgLat.recordMs(now - Number(e.message.body.slice(3)));
        }
      };
    });

    const fetchDeck = (u: number, then: () => void) => {
      fetching[u] = 1;
      const t = nowMs();
      conns[u]!.call('deck.get', { limit: 20 }, (e, res) => {
        fetching[u] = 0;
        deckLat.recordMs(nowMs() - t);
        if (e) return err(`deck.get ${e.code}`);
        const cards = (res.cards as Array<{ userId: string }>).map((c) => c.userId);
        if (cards.length === 0) exhausted[u] = 1;
        decks[u]!.push(...cards);
        then();
      });
    };

    const swipe = (u: number, intended: number, measured: boolean) => {
      const card = decks[u]!.shift();
      if (!card) {
        skipped++;
        return;
      }
      const c = index.get(card)!;
      const wantMatch = likedBy[u]!.has(c) && matches < Math.max(1, Math.floor(swipes * matchRate));
      const kind = wantMatch || (!likedBy[u]!.has(c) && Math.random() < likeShare) ? 'like' : 'pass';
      swipes++;
      if (kind === 'like') {
        likes++;
        likedBy[c]!.add(u);
      }
      const sentAt = nowMs();
      conns[u]!.call('swipe', { targetId: card, kind }, (e, res) => {
        const now = nowMs();
        if (e) return err(`swipe ${e.code}`);
        if (measured) {
          swipeLat.recordMs(now - intended);
          swipesMeasured++;
        }
        if (res?.matched) {
          matches++;
          pendingMatchAt.set(`${users[u]!.userId}>${card}`, sentAt);
          firstMessages++;
          conns[u]!.call('message.send', { to: card, body: `hi|${nowMs().toFixed(3)}` }, (e2) => e2 && err(`message.send ${e2.code}`));
        }
      });
    };

    const sampler = new ProcSampler(server.pid).start();
    const total = Math.round(rate * (warmup + duration));
    const interval = 1000 / rate;
    const t0 = nowMs() + 50;
    const measureFrom = t0 + warmup * 1000;
    const bar = new Progress(`tindr ${rate} swipes/s`);
    log(`swiping at ${rate}/s for ${warmup} + ${duration} s; about ${matchRate * 100}% of swipes match`);
    let k = 0;
    await new Promise<void>((resolve) => {
      const loop = () => {
        const now = nowMs();
        const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
        while (k < due) {
          const intended = t0 + k * interval;
          const u = k % userCount;
          k++;
          if (exhausted[u]) {
            skipped++;
            continue;
          }
          if (decks[u]!.length === 0) {
            if (!fetching[u]) fetchDeck(u, () => swipe(u, intended, intended >= measureFrom));
            else skipped++;
          } else swipe(u, intended, intended >= measureFrom);
        }
        bar.update(k, total, `swipes ${swipes}, matches ${matches}, p99 so far ${ms(swipeLat.summary().p99)}`);
        if (k < total) setTimeout(loop, 1);
        else resolve();
      };
      setTimeout(loop, Math.max(0, t0 - nowMs()));
    });
    bar.done();
    await sleep(2000);
    sampler.stop();
    const s = swipeLat.summary();
    const d = deckLat.summary();
    const contention = summarizeSamples(sampler.samples, warmup, warmup + duration);
    const results = {
      offeredRate: rate,
      swipes,
      swipesPerSecond: Math.round(swipesMeasured / duration),
      skipped,
      likes,
      matches,
      matchShare: swipes ? round(matches / swipes, 5) : 0,
      firstMessages,
      firstDelivered,
      swipeLatencyMs: s,
      deckLatencyMs: d,
      matchEventLatencyMs: matchEventLat.summary(),
      firstMessageLatencyMs: firstMsgLat.summary(),
      errors,
      contention,
    };
    printTable(`tindr: ${userCount} users, ${fmt(rate)} swipes/s offered for ${duration} s (open loop), ~${matchRate * 100}% match`, [
      ['registration', `${fmt(register.perSecond)} users/s`],
      ['swipes measured / per second', `${fmt(swipesMeasured)} / ${fmt(results.swipesPerSecond)}`],
      ['swipe p50 / p99 / max (from intended time)', `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}`],
      ['deck.get p50 / p99 (count)', `${ms(d.p50)} / ${ms(d.p99)} (${d.count})`],
      ['likes / matches (share of swipes)', `${likes} / ${matches} (${round(results.matchShare * 100, 3)}%)`],
      ['first messages sent / delivered, p99', `${firstMessages} / ${firstDelivered}, ${ms(results.firstMessageLatencyMs.p99)}`],
      ['skipped (deck empty or being fetched)', skipped],
      ['errors', JSON.stringify(errors)],
      ['server cores / RSS max', `${contention.serverCores} / ${round(contention.maxRssKiB / 1024, 1)} MiB`],
      ['other tenants (cores)', contention.otherCores],
    ]);
    const file = writeResult('tindr', {
      scenario: 'tindr',
      startedAt: new Date(t0).toISOString(),
      argv: process.argv.slice(2),
      params: { users: userCount, rate, duration, warmup, matchRate, likeShare, protocol },
      machine,
      server: { entry: server.entry, config: server.config, git: gitInfo() },
      setup: { register },
      results,
      samples: sampler.samples,
    });
    log(`wrote ${file}`);
  } finally {
    for (const c of conns) c.close();
    await server.stop();
  }
}
