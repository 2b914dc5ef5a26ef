/**
 * The settlement pool's worker (piscina runs the compiled dist/store/orders/worker.js):
 * prices orders and signs download links and tracking ids off the main event loop.
 * The link secret arrives once, as workerData.
 */
import { workerData } from 'node:worker_threads';
import { price, sign, type SettlementTask } from './settlement-tasks.js';

const secret = Buffer.from((workerData as { linkSecretHex: string }).linkSecretHex, 'hex');

export default function run(task: SettlementTask): unknown {
  switch (task.kind) {
    case 'price':
      return price(task);
    case 'sign':
      return sign(task, secret);
  }
}
