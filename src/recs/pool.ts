/**
 * The deck worker pool (piscina): deck pages are computed off the event loop, in worker
 * threads that read the index's shared memory. The worker is the compiled
 * dist/recs/deck-worker.js (`npm run build`), also when the caller runs from src under tsx.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { KindredError } from '../errors.js';
import type { DeckPage } from './deck-core.js';
import type { DeckTask } from './deck-worker.js';

export interface DeckPoolOptions {
  /** worker threads; 0 = one per core (at least 1) */
  threads: number;
  /** pages waiting for a worker beyond which a deck is refused with OVERLOADED */
  maxQueue: number;
  onError?: (err: Error) => void;
}

function workerFile(): string {
  const here = new URL('./deck-worker.js', import.meta.url);
  const candidates = [here, new URL('../../dist/recs/deck-worker.js', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((f) => existsSync(f));
  if (!found) throw new Error(`deck worker not built: none of ${candidates.join(', ')} exists (run npm run build)`);
  return found;
}

export class DeckPool {
  private readonly pool: Piscina<DeckTask, DeckPage>;

  constructor(opts: DeckPoolOptions) {
    const threads = opts.threads > 0 ? opts.threads : Math.max(1, availableParallelism());
    this.pool = new Piscina<DeckTask, DeckPage>({
      filename: workerFile(),
      name: 'default',
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000,
      maxQueue: opts.maxQueue,
    });
    // A worker that dies takes only its task down (that deck fails with INTERNAL); piscina starts another.
    this.pool.on('error', (err: Error) => opts.onError?.(err));
  }

  get threads(): number {
    return this.pool.threads.length;
  }

  get queueSize(): number {
    return this.pool.queueSize;
  }

  async run(task: DeckTask): Promise<DeckPage> {
    try {
      return await this.pool.run(task);
    } catch (err) {
      if (err instanceof Error && /queue is at limit/i.test(err.message)) throw new KindredError('OVERLOADED', 'too many decks being computed; retry shortly');
      throw err;
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
