/** REST calls to /v1 (docs/rest.md): JSON in, JSON out, refusals thrown as ApiError with the server's code. */
import { session } from './session.js';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface CallOptions {
  json?: unknown;
  body?: Blob | ArrayBuffer | Uint8Array;
  contentType?: string;
  /** send no Authorization header even when logged in */
  anonymous?: boolean;
  signal?: AbortSignal;
  /** extra request headers (e.g. Idempotency-Key) */
  headers?: Record<string, string>;
}

export async function api<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  const s = session.get();
  if (s && !opts.anonymous) headers.authorization = `Bearer ${s.token}`;
  let body: BodyInit | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.body !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/octet-stream';
    body = opts.body as BodyInit;
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, signal: opts.signal ?? null });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError('NETWORK', 'Could not reach the server. Check your connection and try again.', 0);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    const code = error?.code ?? `HTTP_${res.status}`;
    // A token that no longer works logs the person out rather than failing every page.
    if (res.status === 401 && (code === 'TOKEN_INVALID' || code === 'TOKEN_EXPIRED')) session.set(null);
    throw new ApiError(code, error?.message ?? `${res.status} ${res.statusText}`, res.status);
  }
  return parsed as T;
}

/** A message fit to show a person for any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) return err.message ? capitalise(err.message) : err.code;
  if (err instanceof Error) return capitalise(err.message);
  return String(err);
}

function capitalise(s: string): string {
  // "shippingAddress.country: must be…" names a field: leave its spelling alone
  if (/^[\w.[\]]+:/.test(s)) return s;
  return s.charAt(0).toUpperCase() + s.slice(1);
}
