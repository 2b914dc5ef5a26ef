/**
 * Self-test of the Kindred-only bench scenarios (chat-native, swipes, tindr, idle, recs) with
 * tiny loads: the real CLI against a real Kindred child process (dist/cli.js, built by
 * pretest). Each run must do its work without errors, count what it did, measure the server
 * and write its JSON and table, so the shared pieces they are built from (bench/lib/scenario.ts,
 * open-loop.ts, native-chat.ts, deck-swiper.ts) cannot break one of them unnoticed.
 */
import t from 'tap';
import { bench, outDir, readJson } from './run-cli.js';

// five real server runs (about 70 s on a quiet machine); a loaded shared machine takes longer
t.setTimeout(240_000);

t.test('chat-native: every message acknowledged and delivered, cost per message', async (t) => {
  const out = outDir(t, 'bench-kindred-only-');
  const r = await bench(['chat-native', '--pairs', '3', '--rate', '20', '--duration', '2', '--warmup', '1', '--out-dir', out]);
  if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
  t.match(r.stdout, /msgs per server CPU-second/, 'the table is printed');
  const { results, server, params } = readJson(out, 'chat-native');
  t.equal(params.pairs, 3);
  t.equal(results.sent, 60, '20 msgs/s for 3 s');
  t.equal(results.acked, 60, 'every message acknowledged');
  t.equal(results.sentMeasured, 40);
  t.equal(results.deliveredMeasured, 40, 'every measured message delivered');
  t.equal(results.notReceived, 0);
  t.equal(results.lostVerdict, 'none');
  t.equal(results.deliveryLatencyMs.count, 40, 'a delivery latency per measured message');
  t.ok(results.serverCpuSeconds > 0 && results.msgsPerServerCpuSecond > 0, 'server CPU measured over the window');
  t.ok(results.serverRssKiBEnd > 0);
  t.ok(server.git.commit, 'the commit under test recorded');
});

t.test('swipes: closed-loop swipes answered without errors', async (t) => {
  const out = outDir(t, 'bench-kindred-only-');
  const r = await bench(['swipes', '--users', '6', '--concurrency', '4', '--duration', '2', '--warmup', '1', '--out-dir', out]);
  if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
  t.match(r.stdout, /swipes per server CPU-second/);
  const { results } = readJson(out, 'swipes');
  t.ok(results.swipesMeasured > 0, `swipes measured (${results.swipesMeasured})`);
  t.same(results.errors, {}, 'no errors');
  t.equal(results.latencyMs.count, results.swipesMeasured);
  t.ok(results.swipesPerServerCpuSecond > 0);
});

t.test('tindr: open-loop swipes through decks without errors', async (t) => {
  const out = outDir(t, 'bench-kindred-only-');
  const r = await bench(['tindr', '--users', '6', '--rate', '10', '--duration', '2', '--warmup', '1', '--out-dir', out]);
  if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
  t.match(r.stdout, /swipe p50 \/ p99 \/ max/);
  const { results } = readJson(out, 'tindr');
  t.ok(results.swipes > 0 && results.swipeLatencyMs.count > 0, `swipes done (${results.swipes})`);
  t.ok(results.deckLatencyMs.count >= 1, 'decks fetched');
  t.equal(results.swipes + results.skipped, 30, 'every due swipe made or counted as skipped');
  t.same(results.errors, {}, 'no errors');
});

t.test('idle: sessions opened and memory read after a forced GC', async (t) => {
  const out = outDir(t, 'bench-kindred-only-');
  const r = await bench(['idle', '--connections', '6', '--settle', '0', '--out-dir', out]);
  if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
  const { results } = readJson(out, 'idle');
  t.equal(results.connections, 6, 'six connections');
  t.same(results.failures, {});
  t.ok(results.memory && results.memory.after.heapUsed > 0, 'memory read through the inspector');
});

t.test('recs: decks from generated profiles', async (t) => {
  const out = outDir(t, 'bench-kindred-only-');
  const r = await bench(['recs', '--profiles', '3000', '--seekers', '20', '--swiped', '5', '--threads', '1', '--concurrency', '2', '--duration', '1', '--warmup', '0', '--out-dir', out]);
  if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
  const json = readJson(out, 'recs');
  t.ok(json.decksPerSecond > 0 && json.latencyMs.count > 0, `decks served (${json.latencyMs.count})`);
  t.same(json.errors, {});
});
