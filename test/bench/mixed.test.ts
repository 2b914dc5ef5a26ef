/**
 * Self-test of the `mixed` bench scenario with a tiny load: the real CLI against a real
 * Kindred child process (dist/cli.js, built by pretest) and the payment provider stand-in
 * process. Every part — chat between matched pairs, swipes through decks, searches and
 * orders — must have done work in the measured window without a single error, and the
 * JSON, the HTML report and the table must be written.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bench, readRun } from './run-cli.js';

// a real server and provider run (about 30 s on a quiet machine); a loaded shared machine takes longer
t.setTimeout(180_000);

const PARTS = ['chat', 'swipes', 'search', 'orders'];

t.test('mixed: chat, swipes, searches and orders on one server, all done, no errors', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'bench-mixed-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const r = await bench(
    ['mixed', '--pairs', '3', '--users', '6', '--books', '40', '--customers', '4', '--chat-rate', '10', '--swipe-rate', '5', '--search-rate', '2', '--order-rate', '2', '--scale', '2', '--duration', '3', '--warmup', '1', '--out-dir', out],
    100_000,
  );
  if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
  for (const p of PARTS) t.match(r.stdout, new RegExp(`\\| ${p} +\\|`), `the table has a ${p} row`);
  const { json, html } = readRun(out, 'mixed');
  const parts = json.results.parts;
  t.same(Object.keys(parts).sort(), [...PARTS].sort(), 'one result per part');
  t.same(json.params.rates, { chat: 20, swipes: 10, search: 4, orders: 4 }, '--scale multiplies every rate');
  for (const p of PARTS) {
    t.ok(parts[p].done > 0, `${p}: operations done in the measured window (${parts[p].done})`);
    t.equal(parts[p].errorCount, 0, `${p}: no errors ${JSON.stringify(parts[p].errors)}`);
    t.ok(parts[p].latencyMs.count === parts[p].done && parts[p].latencyMs.p50 > 0, `${p}: a latency per operation`);
  }
  t.equal(parts.chat.sent, 80, '20 msgs/s for 4 s');
  t.equal(parts.chat.acked, parts.chat.sent, 'every message acknowledged');
  t.equal(parts.chat.notReceived, 0, 'every acknowledged message delivered');
  t.ok(parts.chat.ackLatencyMs.count > 0, 'ack latency recorded');
  t.ok(parts.swipes.deckLatencyMs.count > 0, 'decks fetched');
  t.ok(parts.swipes.matches >= 1 && parts.swipes.firstMessages === parts.swipes.matches, `swipes made a match and sent its first message (${parts.swipes.matches})`);
  t.equal(parts.orders.outcomes.fulfilled, 16, 'all 16 orders fulfilled');
  t.equal(parts.orders.providerCharges, 16, 'the provider charged each order once');
  t.ok(parts.search.withResultsShare > 0, 'searches found books');
  t.ok(json.results.serverCpuCores > 0 && json.results.serverRssMiBMax > 0, 'server CPU and RSS measured');
  t.ok(json.timeline.length >= 3, 'a timeline point per second');
  t.match(html, /<svg[^>]*>.*operations\/s/s, 'HTML report with charts');
});

t.test('mixed refuses bad options with a clear message', async (t) => {
  const r = await bench(['mixed', '--chat-rate', 'fast']);
  t.equal(r.code, 1);
  t.match(r.stderr, /--chat-rate must be a number/);
  const u = await bench(['mixed', '--target', 'prosody']);
  t.equal(u.code, 1);
  t.match(u.stderr, /--target must be one of kindred, kindred-cluster/);
});
