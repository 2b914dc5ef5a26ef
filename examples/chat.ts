/**
 * A tiny chat client over the native protocol (docs/protocol.md), on TCP.
 *
 *   node --import tsx examples/chat.ts <username> <password> <peerUserId>
 *
 * Logs in, prints every event it receives, and sends each line typed on stdin to the
 * peer (who must be a match). The server is KINDRED_HOST:KINDRED_TCP_PORT
 * (default 127.0.0.1:7070), the same variables `kindred start` reads.
 */
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { NativeClient } from '../src/client/native.js';

const [username, password, peer] = process.argv.slice(2);
if (!username || !password || !peer) {
  console.error('usage: node --import tsx examples/chat.ts <username> <password> <peerUserId>');
  process.exit(2);
}

const client = await NativeClient.connectTcp(process.env.KINDRED_HOST ?? '127.0.0.1', Number(process.env.KINDRED_TCP_PORT ?? 7070));
const seen = new Set<string>(); // undelivered messages are replayed on every new session: de-duplicate
client.on('event', (event) => {
  if (event.type === 'message') {
    const m = event.message;
    if (seen.has(m.messageId)) return;
    seen.add(m.messageId);
    console.log(`${m.to === peer ? 'me' : m.from === peer ? 'peer' : m.from}: ${m.body}`);
    // Acknowledge what was addressed to us, or it is replayed on the next login.
    if (m.to !== peer) client.request('receipt', { to: m.from, messageId: m.messageId, kind: 'delivered' }).catch(() => undefined);
  } else console.log('event', JSON.stringify(event));
});
client.on('close', (reason) => (console.log(`closed: ${reason}`), process.exit(0)));

const me = await client.request('login', { username, password }).catch((err) => {
  console.error(`login failed: ${err.code}: ${err.message}`);
  process.exit(1);
});
console.log(`logged in as ${me.userId}; type a line to send it to ${peer}`);
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  // clientId makes a retry of this send idempotent.
  try {
    await client.request('message.send', { to: peer, body: line, clientId: randomUUID() });
  } catch (err) {
    console.log(`! ${(err as Error & { code?: string }).code}: ${(err as Error).message}`);
  }
}
client.close();
