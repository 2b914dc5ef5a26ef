/**
 * Forcing a full GC in the server under test, through the V8 inspector (the server
 * is started with `--inspect=127.0.0.1:0` for this; nothing else uses it). Node
 * offers no other way to trigger a collection from outside, and without one an
 * RSS or heap delta mostly measures when V8 last collected.
 */
import WebSocket from 'ws';

export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export async function withInspector<T>(url: string, fn: (call: (method: string, params?: object) => Promise<any>) => Promise<T>): Promise<T> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  ws.on('message', (data: Buffer) => {
    const msg = JSON.parse(data.toString('utf8')) as { id?: number; result?: unknown; error?: { message: string } };
    if (msg.id === undefined) return;
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(msg.error.message));
    else p.resolve(msg.result);
  });
  const call = (method: string, params: object = {}) =>
    new Promise<any>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    return await fn(call);
  } finally {
    ws.close();
  }
}

/** Runs two full collections in the server, then reads its process.memoryUsage(). */
export async function gcAndMeasure(url: string): Promise<MemoryUsage> {
  return withInspector(url, async (call) => {
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    const r = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
    return JSON.parse(r.result.value as string) as MemoryUsage;
  });
}
