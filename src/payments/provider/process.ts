/**
 * Starts the provider stand-in as a child process (tests and the bench use it, so the
 * adapter always crosses a real network hop) and talks to its control endpoints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Behaviour } from './behaviour.js';

/** dist/payments/provider/main.js, next to this file once compiled */
export const PROVIDER_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js').replace(`${path.sep}src${path.sep}`, `${path.sep}dist${path.sep}`).replace(/\.ts$/, '.js');

export interface ProviderProcessOptions {
  dbFile: string;
  webhookSecret: string;
  /** 0 = any free port (a restart reuses the port it got) */
  port?: number;
  apiKey?: string;
  webhookUrl?: string;
  behaviour?: Partial<Behaviour>;
  outages?: string[];
  seed?: number;
}

export interface ChargeRecord {
  intentId: string;
  orderId: string;
  amount: number;
  currency: string;
  at: number;
}

export class ProviderProcess {
  private child: ChildProcess | undefined;
  port = 0;

  private constructor(private readonly opts: ProviderProcessOptions) {}

  static async start(opts: ProviderProcessOptions): Promise<ProviderProcess> {
    const p = new ProviderProcess(opts);
    await p.spawn(opts.port ?? 0);
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** the provider process's pid (the bench samples its CPU) */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private async spawn(port: number): Promise<void> {
    const o = this.opts;
    const args = [PROVIDER_MAIN, '--port', String(port), '--db', o.dbFile, '--webhook-secret', o.webhookSecret];
    if (o.apiKey) args.push('--api-key', o.apiKey);
    if (o.webhookUrl) args.push('--webhook-url', o.webhookUrl);
    if (o.seed !== undefined) args.push('--seed', String(o.seed));
    const flag: Record<keyof Behaviour, string> = {
      latencyMs: '--latency-ms',
      jitterMs: '--jitter-ms',
      declineRate: '--decline-rate',
      timeoutRate: '--timeout-rate',
      timeoutHangMs: '--timeout-hang-ms',
      asyncRate: '--async-rate',
      asyncDelayMs: '--async-delay-ms',
    };
    for (const [k, v] of Object.entries(o.behaviour ?? {})) args.push(flag[k as keyof Behaviour], String(v));
    for (const w of o.outages ?? []) args.push('--outage', w);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    this.port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      const onExit = (code: number | null) => reject(new Error(`payment provider exited (${code}) before listening: ${stderr}`));
      child.once('exit', onExit);
      lines.once('line', (line) => {
        child.off('exit', onExit);
        try {
          resolve((JSON.parse(line) as { listening: number }).listening);
        } catch {
          reject(new Error(`payment provider said: ${line}`));
        }
      });
    });
  }

  /** Changes behaviour at run time; `outage` starts an outage window now (or after `afterMs`). */
  async control(patch: Partial<Behaviour> & { outage?: { mode: '503' | 'refuse'; forMs: number; afterMs?: number } }): Promise<void> {
    const res = await fetch(`${this.url}/_control`, { method: 'POST', body: JSON.stringify(patch), headers: { 'content-type': 'application/json' } });
    if (!res.ok) throw new Error(`provider control failed: ${res.status} ${await res.text()}`);
  }

  /** What the provider charged and refunded, for one order or all. */
  async charges(orderId?: string): Promise<{ charges: ChargeRecord[]; refunds: ChargeRecord[] }> {
    const res = await fetch(`${this.url}/_charges${orderId ? `?order_id=${encodeURIComponent(orderId)}` : ''}`);
    return (await res.json()) as { charges: ChargeRecord[]; refunds: ChargeRecord[] };
  }

  /** Kills the process (SIGKILL unless told otherwise) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  /** Starts it again on the same port with the same database. */
  async restart(): Promise<void> {
    await this.kill();
    await this.spawn(this.port);
  }

  stop(): Promise<void> {
    return this.kill('SIGTERM');
  }
}
