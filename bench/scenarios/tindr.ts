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
import { DeckSwiper } from '../lib/deck-swiper.js';
import { nowMs } from '../lib/hist.js';
import { eventsIn, runOpenLoop } from '../lib/open-loop.js';
import { ProcSampler, round, summarizeSamples } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import { fmt, log, ms, printTable, sleep } from '../lib/report.js';
import { onlineProfiles, scenarioFlags, withScenarioServer, writeScenarioResult } from '../lib/scenario.js';

export async function tindr(o: Options): Promise<void> {
  const userCount = o.num('users', 1000);
  const rate = o.num('rate', 1000);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 3);
  const matchRate = o.num('match-rate', 0.001);
  const likeShare = o.num('like', 0.3);
  const protocol = o.str('protocol', 'ws', ['ws', 'tcp'] as const);
  const flags = scenarioFlags(o);
  o.checkUnknown();
  if (userCount < 2) throw new Error('--users must be at least 2');

  await withScenarioServer(flags, {}, async ({ server, machine, conns }) => {
    const { users, register } = await onlineProfiles(server.base, server, conns, { count: userCount, prefix: 'tindr', protocol, setupConcurrency: flags.setupConcurrency });
    const swiper = new DeckSwiper(users.map((u) => u.userId), conns, { matchRate, likeShare });

    const sampler = new ProcSampler(server.pid).start();
    const total = eventsIn(rate, warmup + duration);
    const t0 = nowMs() + 50;
    const measureFrom = t0 + warmup * 1000;
    const bar = new Progress(`tindr ${rate} swipes/s`);
    log(`swiping at ${rate}/s for ${warmup} + ${duration} s; about ${matchRate * 100}% of swipes match`);
    let fired = 0;
    await runOpenLoop(
      [
        {
          rate,
          total,
          fire: (k, intended) => {
            fired = k + 1;
            swiper.due(k, intended, intended >= measureFrom);
          },
        },
      ],
      t0,
      () => bar.update(fired, total, `swipes ${swiper.swipes}, matches ${swiper.matches}, p99 so far ${ms(swiper.swipeLat.summary().p99)}`),
    );
    bar.done();
    await sleep(2000);
    sampler.stop();
    const contention = summarizeSamples(sampler.samples, warmup, warmup + duration);
    const results = { offeredRate: rate, ...swiper.summary(duration), contention };
    printTable(`tindr: ${userCount} users, ${fmt(rate)} swipes/s offered for ${duration} s (open loop), ~${matchRate * 100}% match`, [
      ['registration', `${fmt(register.perSecond)} users/s`],
      ...swiper.rows(results),
      ['server cores / RSS max', `${contention.serverCores} / ${round(contention.maxRssKiB / 1024, 1)} MiB`],
      ['other tenants (cores)', contention.otherCores],
    ]);
    writeScenarioResult('tindr', flags, {
      startedAt: t0,
      params: { users: userCount, rate, duration, warmup, matchRate, likeShare, protocol },
      machine,
      server,
      setup: { register },
      results,
      samples: sampler.samples,
    });
  });
}
