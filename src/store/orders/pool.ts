/**
 * The settlement worker pool (piscina 5), for orders big enough to be worth a thread hop.
 * A small order (up to `inlineUpTo` lines or ebooks, default 8) is priced and signed on the
 * calling thread: that is a few microseconds of arithmetic and 1-2 HMACs, while a worker
 * round trip (structured clone, MessagePort, promise) cost the main thread far more — about
 * 7 % of the server's samples under the orders bench at 200/s. A large cart still goes to
 * the pool so it never holds up the event loop. The worker is the compiled
 * dist/store/orders/worker.js (a TypeScript worker would need a loader in every thread),
 * so `npm run build` must have run; tests and the bench build first.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { price, sign, type Priced, type PriceRejection, type PriceTask, type Signed, type SignTask } from './settlement-tasks.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/store/orders/worker.js, also when this module itself runs from src/ under tsx */
export const WORKER_FILE = path.join(here.replace(`${path.sep}src${path.sep}store`, `${path.sep}dist${path.sep}store`), 'worker.js');

export const DEFAULT_INLINE_UP_TO = 8;

export class SettlementPool {
  private readonly pool: Piscina;
  private readonly linkSecret: Buffer;
  private readonly inlineUpTo: number;
  /** tasks run on the calling thread (metrics, tests) */
  inlineCompleted = 0;

  /** `inlineUpTo`: the largest order (lines to price, ebooks to sign) handled without the pool; 0 sends everything to it. */
  constructor(opts: { threads: number; linkSecret: Buffer; onError: (err: unknown) => void; inlineUpTo?: number }) {
    this.linkSecret = opts.linkSecret;
    this.inlineUpTo = Math.max(0, opts.inlineUpTo ?? DEFAULT_INLINE_UP_TO);
    this.pool = new Piscina({
      filename: WORKER_FILE,
      minThreads: 0,
      maxThreads: Math.max(1, opts.threads),
      idleTimeout: 60_000,
      workerData: { linkSecretHex: opts.linkSecret.toString('hex') },
    });
    // A worker that dies outside a task (it should not) must not take the process down.
    this.pool.on('error', opts.onError);
  }

  price(task: Omit<PriceTask, 'kind'>): Promise<Priced | PriceRejection> {
    if (task.lines.length <= this.inlineUpTo) {
      this.inlineCompleted++;
      return Promise.resolve(price({ kind: 'price', ...task }));
    }
    return this.pool.run({ kind: 'price', ...task }) as Promise<Priced | PriceRejection>;
  }

  sign(task: Omit<SignTask, 'kind'>): Promise<Signed> {
    if (task.ebooks.length <= this.inlineUpTo) {
      this.inlineCompleted++;
      return Promise.resolve(sign({ kind: 'sign', ...task }, this.linkSecret));
    }
    return this.pool.run({ kind: 'sign', ...task }) as Promise<Signed>;
  }

  get threads(): number {
    return this.pool.threads.length;
  }

  get completed(): number {
    return this.pool.completed;
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
