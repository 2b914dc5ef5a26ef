/**
 * Idempotent `message.send` across actor moves. A client may resend a message under the
 * same `clientId` when it never saw the answer (its node died, the ask timed out). The
 * actor remembers recent clientIds in memory, but after a failover the user's actor is
 * a fresh activation on another node: it must recognise a retry from storage alone.
 *
 * So a message sent with a clientId gets an id whose time and counter come from newId()
 * as usual (history order is unchanged) and whose last 62 bits (the UUIDv7 `rand_b`) are
 * a digest of (sender, clientId) instead of random bits. A fresh actor reads the newest
 * messages of the conversation once and indexes the sender's by that digest; a resend
 * whose digest is among them is answered with the stored message instead of a new one.
 * The digest needs no schema change in either backend, and 62 bits make a false match
 * between two different clientIds of one sender negligible.
 */
import { hash } from 'node:crypto';
import { newId } from '../ids.js';

/** The `rand_b` part of a time-ordered id: `vvvv-tttttttttttt` (variant bits included). */
export function idDigestPart(messageId: string): string {
  return messageId.slice(19);
}

/** The digest part the id of a message sent with `clientId` by `senderId` carries. */
export function clientIdDigest(senderId: string, clientId: string): string {
  // One-shot hash of sender NUL clientId (the same bytes as before; a Hash object per call
  // cost ~4 % of the server's busy time on the XMPP chat path, where every stanza has an id).
  const h = hash('sha256', `${senderId}\0${clientId}`, 'buffer');
  const variant = ((h[0]! & 0x3f) | 0x80).toString(16).padStart(2, '0') + h[1]!.toString(16).padStart(2, '0');
  return `${variant}-${h.subarray(2, 8).toString('hex')}`;
}

/** A new message id (time-ordered like newId) carrying `digest`, a clientIdDigest(), if there is one. */
export function messageIdFor(now: number, digest: string | undefined): string {
  const id = newId(now);
  return digest === undefined ? id : id.slice(0, 19) + digest;
}
