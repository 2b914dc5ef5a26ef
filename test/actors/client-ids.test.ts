/**
 * The clientId digest in message ids (src/actors/client-ids.ts) must stay the same function
 * across versions and nodes: a fresh actor recognises a resent message by it, so a node running
 * another version must compute the same bits for the same (sender, clientId).
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { clientIdDigest, idDigestPart, messageIdFor } from '../../src/actors/client-ids.js';
import { idTime, isId } from '../../src/ids.js';

/** The digest as first written: SHA-256 over sender, NUL, clientId; variant bits, then 62 bits. */
function reference(senderId: string, clientId: string): string {
  const h = createHash('sha256').update(senderId).update('\0').update(clientId).digest();
  const variant = ((h[0]! & 0x3f) | 0x80).toString(16).padStart(2, '0') + h[1]!.toString(16).padStart(2, '0');
  return `${variant}-${h.subarray(2, 8).toString('hex')}`;
}

t.test('the digest is SHA-256 of sender NUL clientId, as before', async (t) => {
  const cases: Array<[string, string]> = [
    ['0190a0b0-c0d0-7000-8000-000000000001', 'purple1'],
    ['0190a0b0-c0d0-7000-8000-000000000001', 'purple2'],
    ['0190a0b0-c0d0-7000-8000-000000000002', 'purple1'],
    ['u', 'é ✓ 🙂 non-ASCII id'],
    ['u', ''],
  ];
  for (const [sender, clientId] of cases) t.equal(clientIdDigest(sender, clientId), reference(sender, clientId), `${sender} / ${clientId}`);
  t.equal(clientIdDigest('0190a0b0-c0d0-7000-8000-000000000001', 'purple1'), 'acd9-d5baaddbfa78', 'a fixed value (any change breaks retries across versions)');
  t.not(clientIdDigest('ab', 'c'), clientIdDigest('a', 'bc'), 'the separator keeps sender and clientId apart');
});

t.test('messageIdFor: a time-ordered id carrying the digest', async (t) => {
  const now = Date.UTC(2026, 10, 27, 1, 0, 0);
  const digest = clientIdDigest('sender', 'client-1');
  const id = messageIdFor(now, digest);
  t.ok(isId(id), 'a valid id');
  t.equal(idTime(id), now, 'with the time');
  t.equal(idDigestPart(id), digest, 'and the digest as its last part');
  const plain = messageIdFor(now, undefined);
  t.ok(isId(plain) && plain > id, 'without a digest: a plain newer id');
});
