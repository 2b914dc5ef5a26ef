/** Input checks shared by every storage backend, so all of them refuse the same things. */
import type { ChatMessage } from './types.js';

/** The first field of a message to append that is missing or of the wrong type, if any. */
export function invalidMessageField(m: ChatMessage): string | undefined {
  if (m === null || typeof m !== 'object') return 'message';
  for (const k of ['messageId', 'matchId', 'senderId', 'recipientId', 'body'] as const) {
    if (typeof m[k] !== 'string') return k;
  }
  if (!Number.isSafeInteger(m.sentAt)) return 'sentAt';
  if (!Number.isSafeInteger(m.bucket)) return 'bucket';
  return undefined;
}
