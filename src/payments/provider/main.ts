/**
 * The payment provider stand-in as its own process:
 *
 *   node dist/payments/provider/main.js --port 0 --db /tmp/psp.db --webhook-secret S \
 *     [--host 127.0.0.1] [--api-key K] [--webhook-url URL] [--latency-ms 50] [--jitter-ms 10]
 *     [--decline-rate 0.1] [--timeout-rate 0.01] [--timeout-hang-ms 30000]
 *     [--async-rate 0.2] [--async-delay-ms 200] [--outage START:DURATION:503|refuse]... [--seed N]
 *
 * Prints one JSON line `{"listening":PORT}` on stdout once it accepts requests (a parent
 * process reads the port from it), logs to stderr, and exits on SIGTERM/SIGINT.
 */
import { parseOutage, type Behaviour, type OutageWindow } from './behaviour.js';
import { startProvider } from './server.js';

const NUMERIC: Record<string, keyof Behaviour> = {
  '--latency-ms': 'latencyMs',
  '--jitter-ms': 'jitterMs',
  '--decline-rate': 'declineRate',
  '--timeout-rate': 'timeoutRate',
  '--timeout-hang-ms': 'timeoutHangMs',
  '--async-rate': 'asyncRate',
  '--async-delay-ms': 'asyncDelayMs',
};

function fail(msg: string): never {
  process.stderr.write(`payment provider: ${msg}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let host = '127.0.0.1';
let port = 0;
let dbFile = '';
let webhookSecret = process.env.PROVIDER_WEBHOOK_SECRET ?? '';
let apiKey: string | undefined;
let webhookUrl: string | undefined;
let seed: number | undefined;
const behaviour: Partial<Behaviour> = {};
const outages: OutageWindow[] = [];
for (let i = 0; i < args.length; i++) {
  const name = args[i]!;
  const value = args[++i];
  if (value === undefined) fail(`${name} needs a value`);
  const num = Number(value);
  if (name in NUMERIC) {
    if (!Number.isFinite(num) || num < 0) fail(`${name} must be a non-negative number`);
    behaviour[NUMERIC[name]!] = num;
  } else if (name === '--host') host = value;
  else if (name === '--port') port = Number.isInteger(num) && num >= 0 && num < 65536 ? num : fail('--port must be a port number');
  else if (name === '--db') dbFile = value;
  else if (name === '--webhook-secret') webhookSecret = value;
  else if (name === '--api-key') apiKey = value;
  else if (name === '--webhook-url') webhookUrl = value;
  else if (name === '--seed') seed = num;
  else if (name === '--outage') {
    try {
      outages.push(parseOutage(value));
    } catch (err) {
      fail((err as Error).message);
    }
  } else fail(`unknown option ${name}`);
}
if (!dbFile) fail('--db FILE is required (intents persist there)');
if (!webhookSecret) fail('--webhook-secret (or PROVIDER_WEBHOOK_SECRET) is required');

const server = await startProvider({
  host,
  port,
  dbFile,
  webhookSecret,
  apiKey,
  webhookUrl,
  behaviour,
  outages,
  seed,
  log: (msg) => process.stderr.write(`${msg}\n`),
});
process.stdout.write(`${JSON.stringify({ listening: server.port })}\n`);
const stop = () => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
