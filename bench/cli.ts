/**
 * Kindred load scripts: `npm run bench -- <scenario> [options]`.
 * Each run starts its own server as a child process, prints a table and writes
 * bench/results/<scenario>-<timestamp>.json. See bench/README.md.
 */
import { Options, parseFlags } from './lib/args.js';
import { chat } from './scenarios/chat.js';
import { chatNative } from './scenarios/chat-native.js';
import { swipes } from './scenarios/swipes.js';
import { idle } from './scenarios/idle.js';
import { recs } from './scenarios/recs.js';
import { connections } from './scenarios/connections.js';
import { search } from './scenarios/search.js';
import { tindr } from './scenarios/tindr.js';
import { orders } from './scenarios/orders.js';
import { mixed } from './scenarios/mixed.js';

const USAGE = `usage: npm run bench -- <scenario> [options]

scenarios (multi-target, load from --workers child processes)
  chat         N pairs exchange messages at a fixed open-loop rate, or --step-load to find the
               highest rate with p99 < 100 ms
               --target kindred[,kindred-cluster,prosody,ejabberd] --protocol native-ws|native-tcp|xmpp-tcp|xmpp-ws
               --pairs 200 --rate 500 --duration 20 --warmup 3 --body 64 --drain 30 --workers 2
               --step-load [--start-rate 500 --step-factor 1.5 --refine 3 --max-rate 50000
                            --step-duration 10 --step-warmup 2 --p99-limit 100]
  connections  N idle authenticated sessions: connect+login rate, server RSS per session
               --target ... --protocol ... --connections 1000 --concurrency 50 --settle 5 --workers 2

Kindred-only scenarios (one load-generator process, native protocol)
  chat-native  chat with ack latency and a lost/undetermined verdict from the server's mailboxes
               --pairs 1000 --rate 5000 --duration 20 --warmup 3 --protocol ws|tcp --body 64 --drain 30
  tindr        a day in the app: open-loop swipes through decks, ~0.1% match, first messages
               --users 1000 --rate 1000 --duration 20 --warmup 3 --match-rate 0.001 --like 0.3 --protocol ws|tcp
  swipes       M users with profiles swipe random targets (50% like), bounded concurrency, max throughput
               --users 1000 --concurrency 128 --duration 20 --warmup 3 --protocol ws|tcp --like 0.5
  idle         N authenticated idle connections: server RSS per connection (forced GC), connect+auth rate
               --connections 10000 --users <connections> --concurrency 100 --settle 5 --protocol ws|tcp --no-gc
  recs         ranked decks from N generated profiles on the deck worker pool (in process, no server; storage stubbed)
               --profiles 1000000 --concurrency 8 --threads 2 --duration 20 --warmup 3 --limit 50 --swiped 200 --paging --scan N
  search       N generated books imported over REST, then closed-loop searches (typos, authors, facets, type-ahead)
               --books 1000000 --concurrency 16 --duration 20 --warmup 3 --seed 42 --import-chunk 5000 --import-concurrency 4
  orders       sustained order settlements against the payment provider stand-in (its own process)
               --customers 6000000 --books 2000 --rate 500 --duration 20 --warmup 5
               --provider-latency 50 --provider-jitter 10 --decline-rate 0 --pool-size 2 --ebook-share 0.5
  mixed        both products on one server at once, open loop: Tindr chat + swipes over the native protocol,
               book-store searches + orders over REST (payment provider stand-in); per-part rates and latencies
               --target kindred|kindred-cluster --scale 1 --chat-rate 200 --swipe-rate 100 --search-rate 10 --order-rate 10
               --pairs 200 --users 500 --books 10000 --customers 500 --duration 20 --warmup 5 --drain 30
               --match-rate 0.001 --like 0.3 --protocol ws|tcp --body 64 --provider-latency 50 --provider-jitter 10
               --pool-size 2 --ebook-share 0.5 --seed 42

common
  --server-entry FILE   Kindred server to run (default dist/cli.js; build with \`npm run build\`; src/cli.ts runs under tsx)
  --server-config JSON  merged over Kindred's bench config
  --keep-data           keep the servers' temp data dirs and logs
  --prosody-archive sql|memory  Prosody's mod_mam store (default sql: SQLite)
  --out-dir DIR         where a run writes its JSON (and HTML) (default bench/results; not orders/search)
  --setup-concurrency N account creations in flight during setup (default 50)`;

const SCENARIOS: Record<string, (o: Options) => Promise<void>> = { chat, 'chat-native': chatNative, connections, tindr, swipes, idle, recs, orders, search, mixed };

async function main(argv: string[]): Promise<void> {
  const { positional, flags } = parseFlags(argv, new Set(['keep-data', 'help']));
  const name = positional[0];
  if (!name || flags.help || !SCENARIOS[name]) {
    console.log(USAGE);
    process.exit(name && !flags.help ? 2 : 0);
  }
  await SCENARIOS[name]!(new Options(flags));
}

main(process.argv.slice(2)).then(
  () => process.exit(process.exitCode ?? 0),
  (err) => {
    // a stack trace only when asked for (BENCH_DEBUG=1): most failures are bad options or a server that did not start
    const detail = err instanceof Error ? (process.env.BENCH_DEBUG ? (err.stack ?? err.message) : err.message) : String(err);
    console.error(`bench: ${detail}`);
    process.exit(1);
  },
);
