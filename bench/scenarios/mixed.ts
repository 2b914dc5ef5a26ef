/**
 * mixed: one Kindred server carrying both products at once, as production would.
 *
 * - Tindr, over the native protocol (one session per user): --pairs matched pairs chatting
 *   at --chat-rate msgs/s in total (bench/lib/native-chat.ts: a message is acknowledged once
 *   it is durable, so ack latency includes the group commit), and --users people swiping
 *   through their decks at --swipe-rate swipes/s, about --match-rate of them matching, each
 *   match followed by a first message (bench/lib/deck-swiper.ts). The chat pairs live in the
 *   same city, so they turn up in the swipers' decks too.
 * - The book store, over REST: --books generated books (both formats, ample stock) imported
 *   through the real import, --customers registered accounts; searches at --search-rate/s
 *   (the `search` scenario's query mix: typos, authors, type-ahead, filters, browsing) and
 *   checkouts at --order-rate/s (POST /v1/orders, answered once settled) paying through the
 *   payment provider stand-in, its own process, answering after --provider-latency ms.
 *
 * Every part is open loop (bench/lib/open-loop.ts: event k of a part is due at t0 + k/rate and
 * is sent then, whatever happened to earlier ones), rates scaled together by --scale, for
 * --warmup + --duration seconds. Latency is measured from the intended time: delivery for chat
 * (receive − intended), the answer for swipes (including a deck fetch when one was needed),
 * searches and orders. A part's achieved rate = its operations due in the measured window that
 * completed, / --duration. Server CPU and RSS over the measured window come from /proc.
 */
import type { Options } from '../lib/args.js';
import { checkoutBody, importBooks, registerStoreAdmin, startPaymentProvider, storeConfig, waitForSearchIndex } from '../lib/bookstore.js';
import type { Protocol } from '../lib/conn.js';
import { DeckSwiper } from '../lib/deck-swiper.js';
import { Latency, nowMs, watchLoopDelay, type LatencySummary } from '../lib/hist.js';
import { JsonHttp } from '../lib/http-client.js';
import { drain, PairChat } from '../lib/native-chat.js';
import { eventsIn, firedBy, runOpenLoop, type ArrivalStream } from '../lib/open-loop.js';
import { machineLine, printSideBySide, processSeries, writeRun } from '../lib/output.js';
import { machineInfo, ProcSampler, round, summarizeSamples } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import { prng } from '../lib/random.js';
import { fmt, log, ms, printTable, type Row } from '../lib/report.js';
import { CostWindow, nativeTarget, onlineProfiles, openSessions, scenarioEnvelope, scenarioFlags, serverCostRows, warnIfStale, type ScenarioFlags } from '../lib/scenario.js';
import { deepMerge, scrapeMetrics, startServer } from '../lib/server.js';
import { matchedPairs, registerUsers } from '../lib/setup.js';
import { startKindredCluster } from '../lib/targets/kindred-cluster.js';
import { Timeline } from '../lib/timeline.js';
import type { BenchConn } from '../lib/conn.js';
import { searchQuery } from './search.js';

const PARTS = ['chat', 'swipes', 'search', 'orders'] as const;
type Part = (typeof PARTS)[number];

/** The system under test, embedded or cluster: what the scenario needs of it. */
interface System {
  /** the sampled server process (cluster: node 1) */
  pid: number;
  /** REST base (cluster: node 1) */
  base: string;
  native: { wsUrl: string; tcpPort: number };
  describe: string;
  entry: string;
  config: unknown;
  problems(): { warnings: number; errors: number };
  stop(): Promise<void>;
}

async function startSystem(target: 'kindred' | 'kindred-cluster', f: ScenarioFlags, config: Record<string, unknown>): Promise<System> {
  const merged = deepMerge(config, f.serverConfig);
  if (target === 'kindred-cluster') {
    log('starting a 2-node cluster (deploy/local/up.sh: NATS, Cassandra, versitygw)');
    const c = await startKindredCluster({ config: merged, keepData: f.keepData });
    return { pid: c.pid, base: c.base, native: c.native!, describe: c.version, entry: 'dist/cli.js (cluster)', config: c.config, problems: () => c.problems(), stop: () => c.stop() };
  }
  warnIfStale(f.entry);
  const s = await startServer({ entry: f.entry, keepData: f.keepData, config: merged });
  log(`server pid ${s.pid} on http ${s.httpPort}, tcp ${s.tcpPort} (${s.entry})`);
  return { pid: s.pid, base: s.base, native: s, describe: 'Kindred embedded', entry: s.entry, config: s.config, problems: () => s.problems(), stop: () => s.stop() };
}

/** Open-loop REST calls of one part: in flight, completions, measured latency, errors by kind. */
class RestPart {
  readonly latency = new Latency();
  readonly errors: Record<string, number> = {};
  inFlight = 0;
  completed = 0;
  measured = 0;

  constructor(
    private readonly name: Part,
    private readonly timeline: Timeline,
    private readonly window: { from: number; to: number },
  ) {}

  /** Runs one call due at `intended`; `call` answers an error description, or undefined when it succeeded. */
  async run(intended: number, call: () => Promise<string | undefined>): Promise<void> {
    this.inFlight++;
    let error: string | undefined;
    try {
      error = await call();
    } catch (err) {
      error = `client error ${(err as Error).message}`;
    }
    this.inFlight--;
    this.completed++;
    if (error !== undefined) {
      this.errors[error] = (this.errors[error] ?? 0) + 1;
      return;
    }
    if (intended >= this.window.from && intended < this.window.to) {
      const took = nowMs() - intended;
      this.latency.recordMs(took);
      this.timeline.record(this.name, took);
      this.measured++;
    }
  }
}

function errorCount(errors: Record<string, number>): number {
  return Object.values(errors).reduce((a, b) => a + b, 0);
}

export async function mixed(o: Options): Promise<void> {
  const target = o.str('target', 'kindred', ['kindred', 'kindred-cluster'] as const);
  const scale = o.num('scale', 1);
  const rates: Record<Part, number> = {
    chat: o.num('chat-rate', 200) * scale,
    swipes: o.num('swipe-rate', 100) * scale,
    search: o.num('search-rate', 10) * scale,
    orders: o.num('order-rate', 10) * scale,
  };
  const pairs = o.num('pairs', 200);
  const userCount = o.num('users', 500);
  const bookCount = o.num('books', 10_000);
  const customerCount = o.num('customers', 500);
  const duration = o.num('duration', 20);
  const warmup = o.num('warmup', 5);
  const drainSeconds = o.num('drain', 30);
  const protocol = o.str('protocol', 'ws', ['ws', 'tcp'] as const) as Protocol;
  const bodySize = o.num('body', 64);
  const matchRate = o.num('match-rate', 0.001);
  const likeShare = o.num('like', 0.3);
  const providerLatency = o.num('provider-latency', 50);
  const providerJitter = o.num('provider-jitter', 10);
  const poolSize = o.num('pool-size', 2);
  const ebookShare = o.num('ebook-share', 0.5);
  const seed = o.num('seed', 42);
  const flags = scenarioFlags(o);
  o.checkUnknown();
  for (const p of PARTS) if (!(rates[p] >= 0)) throw new Error(`the ${p} rate must be 0 or more`);
  if (!(duration > 0)) throw new Error('--duration must be above 0');
  if (rates.chat > 0 && pairs < 1) throw new Error('--pairs must be at least 1 when chat runs');
  if (rates.swipes > 0 && userCount < 2) throw new Error('--users must be at least 2 when swipes run');
  if ((rates.search > 0 || rates.orders > 0) && bookCount < 1) throw new Error('--books must be at least 1 when searches or orders run');
  if (rates.orders > 0 && customerCount < 1) throw new Error('--customers must be at least 1 when orders run');

  const machine = machineInfo();
  const provider = await startPaymentProvider({ latencyMs: providerLatency, jitterMs: providerJitter, declineRate: 0 });
  log(`payment provider on ${provider.url}: latency ${providerLatency} ± ${providerJitter} ms`);
  const conns: BenchConn[] = [];
  let system: System | undefined;
  try {
    system = await startSystem(target, flags, storeConfig(provider.url, poolSize));
    const sys = system;
    const base = sys.base;
    const setup: Record<string, unknown> = {};
    const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      const out = await fn();
      setup[what] = round((performance.now() - started) / 1000, 2);
      return out;
    };

    // ── Tindr: matched pairs and swipers with profiles, one native session each ──
    log(`setup: ${rates.chat > 0 ? pairs : 0} matched pairs, ${rates.swipes > 0 ? userCount : 0} swipers with profiles, ${rates.orders > 0 ? customerCount : 0} customers, ${rates.search > 0 || rates.orders > 0 ? bookCount : 0} books`);
    const chatUsers = rates.chat > 0 ? (await timed('pairsSeconds', () => matchedPairs(base, pairs, flags.setupConcurrency))).pairs.flatMap(([a, b]) => [a, b]) : [];
    const chatConns = (await timed('chatConnectSeconds', () => openSessions(nativeTarget(sys.native, protocol), chatUsers.map((u) => u.token), conns))).conns;
    const { users: swipers, conns: swiperConns } =
      rates.swipes > 0 ? await timed('swipersSeconds', () => onlineProfiles(base, sys.native, conns, { count: userCount, prefix: 'tindr', protocol, setupConcurrency: flags.setupConcurrency })) : { users: [], conns: [] };

    // ── book store: catalogue, search index, customers ──
    let bookIds: string[] = [];
    if (rates.search > 0 || rates.orders > 0) {
      const admin = await registerStoreAdmin(base);
      bookIds = (await timed('booksSeconds', () => importBooks(base, admin, { count: bookCount, seed, sellable: true }))).bookIds;
      await timed('searchIndexSeconds', () => waitForSearchIndex(base, bookCount));
    }
    const customers = rates.orders > 0 ? (await timed('customersSeconds', () => registerUsers(base, customerCount, { prefix: 'shopper', concurrency: flags.setupConcurrency }))).users : [];
    log(`setup done: ${JSON.stringify(setup)}`);

    // ── the load ──
    const totals = Object.fromEntries(PARTS.map((p) => [p, eventsIn(rates[p], warmup + duration)])) as Record<Part, number>;
    const t0 = nowMs() + 100;
    const window = { from: t0 + warmup * 1000, to: t0 + (warmup + duration) * 1000 };
    const timeline = new Timeline(PARTS, t0);
    const chat = new PairChat(chatUsers.map((u) => u.userId), chatConns, totals.chat, eventsIn(rates.chat, warmup), bodySize);
    chat.onMeasuredDelivery = (took) => timeline.record('chat', took);
    const swiper = new DeckSwiper(swipers.map((u) => u.userId), swiperConns, { matchRate, likeShare });
    swiper.onMeasuredSwipe = (took) => timeline.record('swipes', took);
    const http = new JsonHttp(base);
    const search = new RestPart('search', timeline, window);
    const orders = new RestPart('orders', timeline, window);
    const orderOutcomes: Record<string, number> = {};
    let searchHits = 0;
    const random = prng(seed);
    const streams: Record<Part, ArrivalStream> = {
      chat: { rate: rates.chat, total: totals.chat, fire: (k, intended) => chat.send(k, intended) },
      swipes: { rate: rates.swipes, total: totals.swipes, fire: (k, intended) => swiper.due(k, intended, intended >= window.from && intended < window.to) },
      search: {
        rate: rates.search,
        total: totals.search,
        fire: (k, intended) =>
          void search.run(intended, async () => {
            const res = await http.get(searchQuery(k, bookCount, seed).path);
            if (res.status !== 200) return `http ${res.status} ${res.json?.error?.code ?? ''}`.trim();
            if ((res.json?.results?.length ?? res.json?.suggestions?.length ?? 0) > 0) searchHits++;
            return undefined;
          }),
      },
      orders: {
        rate: rates.orders,
        total: totals.orders,
        fire: (k, intended) => {
          const customer = customers[Math.floor(random() * customers.length)]!;
          const body = checkoutBody(bookIds, random, ebookShare);
          void orders.run(intended, async () => {
            const res = await http.post('/v1/orders?waitMs=20000', body, { authorization: `Bearer ${customer.token}`, 'idempotency-key': `mixed-${k}` });
            const outcome = res.status < 300 ? String(res.json?.order?.state ?? 'unknown') : `http ${res.status} ${res.json?.error?.code ?? ''}`.trim();
            orderOutcomes[outcome] = (orderOutcomes[outcome] ?? 0) + 1;
            return outcome === 'fulfilled' ? undefined : outcome;
          });
        },
      },
    };

    const cost = new CostWindow(sys.pid);
    const sampler = new ProcSampler(sys.pid).start();
    const loop = watchLoopDelay();
    timeline.start();
    const bar = new Progress(`mixed ×${scale}`);
    const totalEvents = PARTS.reduce((a, p) => a + totals[p], 0);
    let lastBar = 0;
    log(`load for ${warmup} + ${duration} s: chat ${fmt(rates.chat)} msgs/s, swipes ${fmt(rates.swipes)}/s, searches ${fmt(rates.search)}/s, orders ${fmt(rates.orders)}/s`);
    await runOpenLoop(
      PARTS.map((p) => streams[p]),
      t0,
      () => {
        const now = nowMs();
        if (now >= window.from) cost.open();
        if (now - lastBar < 250) return;
        lastBar = now;
        const fired = PARTS.reduce((a, p) => a + firedBy(streams[p], t0, now), 0);
        bar.update(fired, totalEvents, `chat ${chat.receivedCount}, swipes ${swiper.swipes}, searches ${search.completed}, orders ${orders.completed}`);
      },
    );
    cost.close();
    bar.done();
    log(`all sent; draining (up to ${drainSeconds} s)`);
    const drained = await drain({
      settled: () => chat.settled() && swiper.inFlight === 0 && search.inFlight === 0 && orders.inFlight === 0,
      progress: () => chat.progress() + swiper.swipes + swiper.skipped + search.completed + orders.completed,
      seconds: drainSeconds,
      base,
    });
    timeline.stop();
    sampler.stop();
    const loadGenLoopDelay = loop.stop();
    http.close();

    // ── figures ──
    const chatOutcome = chat.outcome();
    const metrics: Record<string, number> = await scrapeMetrics(base).catch(() => ({}));
    const mailboxDepth = metrics['kindred_mailbox_depth'] ?? drained.mailboxDepth;
    const chatErrors: Record<string, number> = { ...chat.ackErrors };
    const note = (key: string, n: number) => n > 0 && (chatErrors[key] = n);
    note('acked but not received', chatOutcome.notReceived);
    note('never answered', chatOutcome.unacked);
    note('duplicates', chat.duplicates);
    note('misrouted', chat.misrouted);
    for (const [reason, n] of Object.entries(chat.closes)) note(`connection closed: ${reason}`, n);
    const swipeSummary = swiper.summary(duration);
    const part = (offered: number, done: number, latencyMs: LatencySummary, errors: Record<string, number>) => ({
      offeredRate: offered,
      achievedRate: round(done / duration, 1),
      done,
      latencyMs,
      errors,
      errorCount: errorCount(errors),
    });
    const parts = {
      chat: {
        ...part(rates.chat, chat.receivedMeasured, chat.delivery.summary(), chatErrors),
        latency: 'delivery: receive time − intended send time',
        pairs: chatUsers.length / 2,
        sent: chat.total,
        acked: chat.ackedCount,
        ackLatencyMs: chat.ack.summary(),
        sendLagMs: chat.sendLag.summary(),
        notReceived: chatOutcome.notReceived,
        lostVerdict: chatOutcome.notReceived === 0 ? 'none' : mailboxDepth === 0 ? 'lost' : 'undetermined: server backlog',
      },
      swipes: {
        ...part(rates.swipes, swiper.swipesMeasured, swipeSummary.swipeLatencyMs, swiper.errors),
        latency: 'answer − intended time (a deck fetch included when one was needed)',
        users: swipers.length,
        ...swipeSummary,
      },
      search: {
        ...part(rates.search, search.measured, search.latency.summary(), search.errors),
        latency: 'answer − intended time',
        books: bookIds.length,
        withResultsShare: round(searchHits / Math.max(1, search.completed), 3),
      },
      orders: {
        ...part(rates.orders, orders.measured, orders.latency.summary(), orders.errors),
        latency: 'settled answer − intended time',
        customers: customers.length,
        outcomes: orderOutcomes,
        providerCharges: await provider.chargeCount(),
      },
    };
    const contention = summarizeSamples(sampler.samples, warmup, warmup + duration);
    const opsDone = PARTS.reduce((a, p) => a + parts[p].done, 0);
    const serverCpu = cost.figures(duration);
    const serverLog = sys.problems();
    const results = {
      scale,
      measuredSeconds: duration,
      parts,
      ...serverCpu,
      operationsPerServerCpuSecond: Math.round(opsDone / Math.max(0.001, serverCpu.serverCpuSeconds)),
      serverRssMiBMax: round(contention.maxRssKiB / 1024, 1),
      loadGenLoopDelayMs: loadGenLoopDelay,
      drainSeconds: round(drained.seconds, 1),
      serverMailboxDepthAtEnd: mailboxDepth,
      contention,
      serverLog,
      serverMetrics: metrics,
    };

    const header = ['part', 'offered /s', 'achieved /s', 'p50', 'p99', 'errors'];
    const rows = PARTS.map((p) => {
      const r = parts[p];
      return [p, fmt(r.offeredRate), fmt(r.achievedRate), ms(r.latencyMs.p50), ms(r.latencyMs.p99), String(r.errorCount)];
    });
    const title = `mixed on ${sys.describe}: Tindr (${chatUsers.length / 2} chatting pairs, ${swipers.length} swipers) and the book store (${bookIds.length} books, ${customers.length} customers), ×${scale}, ${duration} s measured after ${warmup} s`;
    printSideBySide(title, header, rows);
    const details: Row[] = [
      ['server RSS max', `${results.serverRssMiBMax} MiB`],
      ['chat ack p50 / p99 (durable)', `${ms(parts.chat.ackLatencyMs.p50)} / ${ms(parts.chat.ackLatencyMs.p99)}`],
      ['deck.get p99 / matches / first messages delivered', `${ms(swipeSummary.deckLatencyMs.p99)} / ${swipeSummary.matches} / ${swipeSummary.firstDelivered} of ${swipeSummary.firstMessages}`],
      ['swipes skipped (deck empty or loading)', swipeSummary.skipped],
      ['searches with results', `${Math.round(parts.search.withResultsShare * 100)}%`],
      ['order outcomes / provider charges', `${JSON.stringify(orderOutcomes)} / ${parts.orders.providerCharges}`],
      ...serverCostRows({ ...serverCpu, loadGenLoopDelayMs: loadGenLoopDelay, contention, serverLog }, { label: 'operations (all parts) per server CPU-second', value: results.operationsPerServerCpuSecond }, machine),
    ];
    printTable('mixed: details', details);
    const errorsByPart = PARTS.filter((p) => parts[p].errorCount > 0).map((p) => `${p}: ${JSON.stringify(parts[p].errors)}`);
    if (errorsByPart.length) console.log(`errors: ${errorsByPart.join('; ')}\n`);

    const files = writeRun(
      'mixed',
      flags.outDir,
      scenarioEnvelope('mixed', {
        startedAt: t0,
        params: { target, scale, rates, pairs, users: userCount, books: bookCount, customers: customerCount, duration, warmup, drainSeconds, protocol, bodySize, matchRate, likeShare, providerLatency, providerJitter, poolSize, ebookShare, seed },
        machine,
        server: sys,
        setup,
        results,
        samples: sampler.samples,
        timeline: timeline.points,
        table: { header, rows },
      }),
      {
        title,
        command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
        machine: machineLine(machine),
        table: { header, rows },
        sections: [
          {
            title: sys.describe,
            rows: details.map(([k, v]) => [k, String(v)]),
            throughput: timeline.throughput(),
            throughputUnit: 'operations/s',
            latency: timeline.p99(),
            latencyTitle: 'p99 latency per second',
            distribution: [],
            distributions: [
              { name: 'chat delivery', points: chat.delivery.distribution() },
              { name: 'swipes', points: swiper.swipeLat.distribution() },
              { name: 'search', points: search.latency.distribution() },
              { name: 'orders', points: orders.latency.distribution() },
            ],
            ...processSeries(sampler.samples),
          },
        ],
      },
    );
    log(`wrote ${files.json} and ${files.html}`);
    if (parts.chat.lostVerdict === 'lost') process.exitCode = 3;
  } finally {
    for (const c of conns) c.close();
    await system?.stop();
    await provider.stop();
  }
}
