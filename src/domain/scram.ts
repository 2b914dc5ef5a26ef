/**
 * The server side of SASL SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677),
 * checked against the verifiers stored at registration: the server never sees or
 * keeps the password. Channel binding (-PLUS) is not offered, so the GS2 header
 * must be "n,," or "y,,".
 *
 * Unknown usernames get a fake but stable salt and fail only at the proof, so the
 * exchange does not reveal which accounts exist.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { KindredError } from '../errors.js';
import type { AccountStore, ScramVerifier } from '../storage/types.js';
import { normalizeUsername } from './auth.js';

export type ScramMechanism = 'SCRAM-SHA-1' | 'SCRAM-SHA-256';

export interface ScramExchange {
  serverFirst: string;
  /** Verifies the client's proof; resolves with the server-final message and the user id. */
  finish(clientFinal: string): Promise<{ serverFinal: string; userId: string }>;
}

const malformed = (why: string) => new KindredError('BAD_REQUEST', `malformed SCRAM message: ${why}`);

/** Parses "k=v,k=v" attributes, keeping their order. */
function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    if (part.length < 2 || part[1] !== '=') throw malformed(`bad attribute "${part.slice(0, 20)}"`);
    out.set(part[0]!, part.slice(2));
  }
  return out;
}

function decodeSaslName(name: string): string {
  if (/=(?!2C|3D)/.test(name)) throw malformed('bad escape in username');
  return name.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

export async function startScram(
  mechanism: ScramMechanism,
  clientFirst: string,
  accounts: AccountStore,
  fakeSaltKey: Buffer,
  fakeIterations: number,
): Promise<ScramExchange> {
  const hash = mechanism === 'SCRAM-SHA-1' ? 'sha1' : 'sha256';
  if (typeof clientFirst !== 'string' || clientFirst.length > 2048) throw malformed('client-first-message');
  const m = /^([ny]),(a=[^,]*)?,(.*)$/.exec(clientFirst);
  if (!m) throw malformed(clientFirst.startsWith('p=') ? 'channel binding is not supported' : 'GS2 header');
  const gs2Header = clientFirst.slice(0, clientFirst.length - m[3]!.length);
  const bare = m[3]!;
  const attrs = attributes(bare);
  const username = normalizeUsername(decodeSaslName(attrs.get('n') ?? ''));
  const clientNonce = attrs.get('r');
  if (!username || !clientNonce || attrs.has('m')) throw malformed('client-first-message-bare');

  const account = await accounts.byUsername(username);
  const verifier: ScramVerifier | undefined = account ? (hash === 'sha1' ? account.scramSha1 : account.scramSha256) : undefined;
  const salt = verifier?.salt ?? createHmac('sha256', fakeSaltKey).update(`${mechanism}:${username}`).digest().subarray(0, 16).toString('base64');
  const iterations = verifier?.iterations ?? fakeIterations;
  const nonce = clientNonce + randomBytes(18).toString('base64');
  const serverFirst = `r=${nonce},s=${salt},i=${iterations}`;

  return {
    serverFirst,
    async finish(clientFinal: string) {
      if (typeof clientFinal !== 'string' || clientFinal.length > 4096) throw malformed('client-final-message');
      const proofAt = clientFinal.lastIndexOf(',p=');
      if (proofAt < 0) throw malformed('no proof');
      const withoutProof = clientFinal.slice(0, proofAt);
      const f = attributes(withoutProof);
      if (f.get('c') !== Buffer.from(gs2Header).toString('base64')) throw malformed('channel binding data does not match');
      if (f.get('r') !== nonce) throw malformed('nonce mismatch');
      const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
      if (!verifier || !account) throw new KindredError('BAD_CREDENTIALS');
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const storedKey = Buffer.from(verifier.storedKey, 'base64');
      const signature = createHmac(hash, storedKey).update(authMessage).digest();
      if (proof.length !== signature.length) throw new KindredError('BAD_CREDENTIALS');
      const clientKey = Buffer.alloc(signature.length);
      for (let i = 0; i < signature.length; i++) clientKey[i] = proof[i]! ^ signature[i]!;
      if (!timingSafeEqual(createHash(hash).update(clientKey).digest(), storedKey)) throw new KindredError('BAD_CREDENTIALS');
      const serverSignature = createHmac(hash, Buffer.from(verifier.serverKey, 'base64')).update(authMessage).digest('base64');
      return { serverFinal: `v=${serverSignature}`, userId: account.userId };
    },
  };
}
