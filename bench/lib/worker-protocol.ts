/** IPC messages between the bench CLI and its load-generator workers (bench/lib/worker.ts). */
import type { Endpoints, Protocol } from './sessions.js';
import type { Account } from './targets/types.js';

export interface PhaseSpec {
  phase: number;
  /** this worker's share of the rate, msgs/s */
  rate: number;
  /** epoch ms when message 0 is due (the same for every worker) */
  t0: number;
  warmup: number;
  duration: number;
  body: number;
  drainMs: number;
}

export type ToWorker =
  | { type: 'init'; protocol: Protocol; endpoints: Endpoints; accounts: Account[]; addressOffset: number }
  | { type: 'connect'; concurrency: number }
  | { type: 'phase'; spec: PhaseSpec }
  | { type: 'close' };

export interface PhaseDone {
  type: 'phaseDone';
  phase: number;
  pairs: number;
  sent: number;
  sentMeasured: number;
  received: number;
  receivedMeasured: number;
  notReceived: number;
  duplicates: number;
  /** messages of an earlier phase that arrived during this one */
  late: number;
  errors: Record<string, number>;
  closes: Record<string, number>;
  maxSendLagMs: number;
  /** HDR histogram (compressed base64) of the measured delivery latencies, µs */
  hist: string;
  cpuSeconds: number;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'connected'; ok: number; failures: Record<string, number>; seconds: number; hist: string }
  | { type: 'tick'; phase: number; sec: number; sent: number; received: number; hist: string }
  | PhaseDone
  | { type: 'closed' }
  | { type: 'failed'; message: string };
