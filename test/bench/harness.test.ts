/**
 * Self-test of the bench harness (bench/), with tiny loads so it runs in seconds:
 * the real CLI against a real Kindred child process (dist/cli.js, built by pretest),
 * with real load-generator worker processes, over the native WebSocket protocol and
 * over XMPP with STARTTLS. It checks that messages are delivered and latencies
 * recorded, that the JSON and the HTML report are written and the table printed,
 * and it tests the parts that decide figures (stanza splitting, step verdicts)
 * directly. Prosody and ejabberd are not started here (apt installs are too slow
 * for every run); `npm run bench -- chat --target kindred,prosody,ejabberd` does.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ElementSplitter, messageBody } from '../../bench/lib/xmpp-client.js';
import { judge } from '../../bench/lib/step-load.js';
import type { PhaseResult } from '../../bench/lib/fleet.js';
import { bench, readRun } from './run-cli.js';

t.test('the XMPP stanza splitter finds top-level elements across chunk boundaries', async (t) => {
  const got: string[] = [];
  const headers: string[] = [];
  let ended = 0;
  const s = new ElementSplitter((x) => got.push(x), (h) => headers.push(h), () => ended++);
  const stream =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='a>b'>" +
    "<stream:features><mechanisms><mechanism>PLAIN</mechanism></mechanisms></stream:features> " +
    "<message to='a@b' id='x>y'><body>1.2|3.5|xx &amp; &lt;</body></message><presence/></stream:stream>";
  for (let i = 0; i < stream.length; i += 7) s.push(stream.slice(i, i + 7));
  t.equal(headers.length, 1, 'one stream header');
  t.same(
    got.map((x) => x.slice(0, 12)),
    ['<stream:feat', "<message to=", '<presence/>'],
    'features, message and presence, with ">" inside quoted attributes',
  );
  t.equal(messageBody(got[1]!), '1.2|3.5|xx & <', 'body text unescaped');
  t.equal(ended, 1, 'end of stream seen');
});

t.test('a step is sustained only below the p99 limit and without loss', async (t) => {
  const base = { sentMeasured: 1000, receivedMeasured: 1000, notReceived: 0, errors: {}, medianSecondP99: 20, latencyMs: { p99: 30 } } as unknown as PhaseResult;
  t.equal(judge(base, 100).ok, true);
  t.equal(judge({ ...base, medianSecondP99: 150 }, 100).ok, false, 'slow');
  t.equal(judge({ ...base, notReceived: 1 }, 100).ok, false, 'a message missing');
  t.equal(judge({ ...base, receivedMeasured: 900 }, 100).ok, false, 'falling behind');
  t.equal(judge({ ...base, errors: { 'service-unavailable': 2 } }, 100).ok, false, 'stanza errors');
});

for (const protocol of ['native-ws', 'xmpp-tcp'] as const) {
  t.test(`chat over ${protocol} against Kindred: delivered, measured, reported`, async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'bench-selftest-'));
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    const r = await bench(['chat', '--target', 'kindred', '--protocol', protocol, '--pairs', '4', '--rate', '40', '--duration', '2', '--warmup', '1', '--workers', '2', '--out-dir', out]);
    if (!t.equal(r.code, 0, 'exit code 0')) t.comment(r.stderr.slice(-3000));
    t.match(r.stdout, new RegExp(`\\| Kindred [^|]+\\| +${protocol} \\| +8 \\|`), 'the table has a Kindred row with 8 sessions');
    const { json, html } = readRun(out, 'chat');
    const run = json.runs[0];
    t.equal(run.connect.ok, 8, 'every session logged in');
    t.equal(run.phase.sent, 120, '40 msgs/s for 3 s');
    t.equal(run.phase.received, run.phase.sent, 'every message delivered');
    t.equal(run.phase.notReceived, 0);
    t.equal(run.phase.duplicates, 0);
    t.ok(run.phase.latencyMs.count >= 70, `latencies recorded for the measured window (${run.phase.latencyMs.count})`);
    t.ok(run.phase.latencyMs.p50 > 0 && run.phase.latencyMs.p50 <= run.phase.latencyMs.p99, 'p50 > 0 and ≤ p99');
    t.ok(run.phase.timeline.length >= 3, 'a timeline point per second');
    t.ok(run.samples.length >= 2 && run.samples[0].rssKiB > 0, 'server RSS sampled');
    t.match(html, /<svg[^>]*>.*Throughput/s, 'HTML report with charts');
    t.notMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'self-contained: no scripts or external files');
  });
}

t.test('step-load and connections with tiny loads', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'bench-selftest-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const s = await bench(['chat', '--target', 'kindred', '--protocol', 'xmpp-tcp', '--pairs', '2', '--step-load', '--start-rate', '20', '--max-rate', '20', '--step-duration', '2', '--step-warmup', '1', '--refine', '0', '--out-dir', out]);
  if (!t.equal(s.code, 0, 'step-load exit code 0')) t.comment(s.stderr.slice(-3000));
  const step = readRun(out, 'chat').json.runs[0].stepLoad;
  t.ok(step.steps.length >= 1 && step.steps[0].rate === 20, 'steps start at --start-rate');
  t.equal(step.maxSustainable, step.steps.filter((x: { ok: boolean }) => x.ok).at(-1)?.rate ?? 0, 'max sustainable = the last sustained step');
  t.match(s.stdout, /max msgs\/s at p99<100ms/, 'the step-load table is printed');
  const c = await bench(['connections', '--target', 'kindred', '--protocol', 'xmpp-tcp', '--connections', '6', '--settle', '0', '--out-dir', out]);
  if (!t.equal(c.code, 0, 'connections exit code 0')) t.comment(c.stderr.slice(-3000));
  const conn = readRun(out, 'connections').json.runs[0];
  t.equal(conn.connect.ok, 6, 'six sessions logged in');
  t.ok(conn.rssKiB.before > 0 && conn.rssKiB.after > 0, 'server RSS read before and after');
});
