/** Small async utilities shared by the tests. */
import { KindredError } from '../../src/errors.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One turn of the event loop (after pending I/O callbacks). */
export const tick = () => new Promise((r) => setImmediate(r));

/** A promise to hold a handler until the test opens it. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** The KindredError code a promise rejects with (undefined if it resolves). */
export async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err instanceof KindredError ? err.code : `not a KindredError: ${String(err)}`;
  }
}

/** Polls `cond` every 2 ms until it holds, or fails after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A seeded pseudo-random generator (mulberry32, the bench's), so randomised tests are repeatable. */
export { prng as seededRandom } from '../../bench/lib/random.js';
