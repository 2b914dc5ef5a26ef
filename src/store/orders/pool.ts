/**
 * The settlement worker pool (piscina 5). The worker is the compiled
 * dist/store/orders/worker.js (a TypeScript worker would need a loader in every thread),
 * so `npm run build` must have run; tests and the bench build first.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Priced, PriceRejection, PriceTask, Signed, SignTask } from './settlement-tasks.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/store/orders/worker.js, also when this module itself runs from src/ under tsx */
export const WORKER_FILE = path.join(here.replace(`${path.sep}src${path.sep}store`, `${path.sep}dist${path.sep}store`), 'worker.js');

export class SettlementPool {
  private readonly pool: Piscina;

  constructor(opts: { threads: number; linkSecret: Buffer; onError: (err: unknown) => void }) {
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
    return this.pool.run({ kind: 'price', ...task }) as Promise<Priced | PriceRejection>;
  }

  sign(task: Omit<SignTask, 'kind'>): Promise<Signed> {
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
