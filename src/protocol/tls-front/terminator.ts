/**
 * Who terminates TLS on the TCP listeners (`tls.terminator`): `node` (node:tls in this
 * process), `front` (kindred-tls-front, a child process; an error if it is not built), or
 * `auto` (the front when its binary exists, else node:tls, said in the log).
 */
import type { Logger } from '../../log.js';
import { TlsFront, defaultTlsFrontBinary, tlsFrontBinaryExists } from './supervisor.js';

export type TlsTerminator = 'auto' | 'node' | 'front';

export async function startTlsTerminator(mode: TlsTerminator, log: Logger, binary = defaultTlsFrontBinary()): Promise<TlsFront | null> {
  if (mode === 'node') return null;
  if (!tlsFrontBinaryExists(binary)) {
    if (mode === 'front') throw new Error(`tls.terminator is "front" but ${binary} is missing (npm run build, with go on PATH, builds it)`);
    log.info({ binary }, 'TLS front not built: node:tls terminates TLS (tls.terminator "auto")');
    return null;
  }
  try {
    return await TlsFront.start({ binary, log });
  } catch (err) {
    if (mode === 'front') throw err;
    log.warn({ err }, 'TLS front did not start: node:tls terminates TLS (tls.terminator "auto")');
    return null;
  }
}
