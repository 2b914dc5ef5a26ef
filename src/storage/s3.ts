/**
 * BlobStore on any S3-compatible server (AWS S3, versitygw, SeaweedFS, MinIO, Ceph RGW …),
 * through the `minio` client: SigV4 signing, path-style addressing, the region given
 * up front (so no request ever goes to look a bucket's region up).
 *
 * - A blob key is the object name as is (`images/<id>`), validated like FileBlobStore's keys,
 *   so both backends accept and refuse exactly the same keys.
 * - The content type is stored as the object's Content-Type metadata and read back from the
 *   same GET response as the bytes. Writes to one key (put, remove) from this process run one
 *   at a time: some S3-compatible servers store metadata apart from the bytes and do not make
 *   the pair atomic (versitygw's posix backend with a sidecar directory leaves one put's bytes
 *   with another's content type when puts race), so concurrent puts of a key must not reach the
 *   server together. Across nodes that relies on the server (AWS S3, MinIO, Ceph are atomic);
 *   Kindred's keys are unique per upload (`images/<new id>`), so it never races there.
 * - Never hangs: every request has a connect/inactivity timeout (`timeoutMs`) and every
 *   operation a deadline (`operationTimeoutMs`) that aborts its requests. A server that is
 *   down, refuses us or answers 5xx surfaces as KindredError('UNAVAILABLE'); the caller
 *   decides about retries (the client's own retry loop is off).
 * - `presignedGetUrl` signs a time-limited GET locally (no network): clients can fetch an
 *   ebook or an image straight from the store.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import https from 'node:https';
import { Client } from 'minio';
import { KindredError } from '../errors.js';
import { isValidBlobKey } from './files.js';
import type { BlobStore } from './types.js';

export interface S3BlobStoreOptions {
  /** host name or IP of the S3 endpoint, without scheme or port */
  endPoint: string;
  port: number;
  useSSL: boolean;
  accessKey: string;
  secretKey: string;
  bucket: string;
  /** e.g. 'us-east-1'; required so that presigning and requests never ask the server for it */
  region: string;
  /** Connect and inactivity timeout of each request, in ms (default 2000). */
  timeoutMs?: number;
  /** Deadline of a whole operation (a put, get, remove, ensureBucket), in ms (default 15000). */
  operationTimeoutMs?: number;
  /** Most sockets kept open to the server (default 32). */
  maxSockets?: number;
}

/** Longest expiry S3 SigV4 allows for a presigned URL: 7 days. */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

const CONTENT_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;
/** HTTP statuses the minio client treats as retryable: it throws without reading the body. */
const RETRYABLE_STATUS = new Set([408, 429, 499, 500, 502, 503, 504, 520]);
/** S3 error codes meaning the key collides with an existing key's "directory" (file-system backends). */
const KEY_CONFLICT_CODES = new Set(['ObjectParentIsFile', 'ExistingObjectIsDirectory', 'DirectoryObjectContainsData']);

/** The deadline of the operation a request belongs to, found by the transport. */
const operation = new AsyncLocalStorage<AbortSignal>();

function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  readonly region: string;
  private readonly client: Client;
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;
  private readonly operationTimeoutMs: number;
  private readonly where: string;
  /** Tail of the queue of writes per key (see the header). */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(options: S3BlobStoreOptions) {
    const { endPoint, port, useSSL, accessKey, secretKey, bucket, region } = options;
    if (!region) throw new KindredError('INVALID_ARGUMENT', 's3: region is required');
    this.bucket = bucket;
    this.region = region;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.operationTimeoutMs = options.operationTimeoutMs ?? 15_000;
    this.where = `${useSSL ? 'https' : 'http'}://${endPoint}:${port}/${bucket}`;
    const maxSockets = options.maxSockets ?? 32;
    this.agent = useSSL
      ? new https.Agent({ keepAlive: true, maxSockets, maxFreeSockets: 8 })
      : new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: 8 });
    const base = useSSL ? https : http;
    const timeoutMs = this.timeoutMs;
    // Every request gets the socket timeout (connecting included) and its operation's abort signal.
    const request = (opts: https.RequestOptions, onResponse?: (res: http.IncomingMessage) => void): http.ClientRequest => {
      const signal = operation.getStore();
      const req = base.request({ ...opts, timeout: timeoutMs, ...(signal ? { signal } : {}) }, (res) => {
        // With retries off, minio throws on these statuses without reading the body: drain it
        // here so the socket goes back to the pool instead of waiting for the timeout.
        if (res.statusCode !== undefined && RETRYABLE_STATUS.has(res.statusCode)) res.resume();
        onResponse?.(res);
      });
      req.on('timeout', () => {
        const err = Object.assign(new Error(`no answer from ${endPoint}:${port} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
        req.destroy(err);
      });
      return req;
    };
    try {
      this.client = new Client({
        endPoint,
        port,
        useSSL,
        accessKey,
        secretKey,
        region,
        pathStyle: true,
        transport: { request } as unknown as Pick<typeof http, 'request'>,
        transportAgent: this.agent,
        retryOptions: { disableRetry: true },
      });
    } catch (err) {
      throw new KindredError('INVALID_ARGUMENT', `s3: ${(err as Error).message}`);
    }
  }

  /** Connects and makes sure the bucket exists (creating it if missing). */
  static async open(options: S3BlobStoreOptions): Promise<S3BlobStore> {
    const store = new S3BlobStore(options);
    try {
      await store.ensureBucket();
    } catch (err) {
      store.close();
      throw err;
    }
    return store;
  }

  /**
   * Creates the bucket unless it exists; safe to race with other nodes doing the same. A
   * bucket being created by a racer can answer the existence check with a 5xx for a moment
   * (versitygw's posix backend does, between the directory and its metadata), so a failed
   * round is tried again a few times before the error is reported.
   */
  async ensureBucket(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.checkOrCreateBucket();
      } catch (err) {
        if (attempt >= 4 || !(err instanceof KindredError) || err.code !== 'UNAVAILABLE') throw err;
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }

  private async checkOrCreateBucket(): Promise<void> {
    await this.run('check bucket', '', async () => {
      if (await this.client.bucketExists(this.bucket)) return;
      try {
        // The region is sent as the LocationConstraint unless it is us-east-1 (S3's rule).
        await this.client.makeBucket(this.bucket, this.region);
      } catch (err) {
        const code = errCode(err);
        // Another node created it meanwhile; BucketAlreadyExists is only fine if we can use it.
        if (code === 'BucketAlreadyOwnedByYou') return;
        if (code === 'BucketAlreadyExists' && (await this.client.bucketExists(this.bucket))) return;
        throw err;
      }
    });
  }

  async put(key: string, data: Buffer, contentType: string): Promise<void> {
    checkKey(key);
    if (typeof contentType !== 'string' || !CONTENT_TYPE.test(contentType)) {
      throw new KindredError('INVALID_ARGUMENT', 'invalid content type');
    }
    await this.serialized(key, () =>
      this.run('put', key, async () => {
        await this.client.putObject(this.bucket, key, data, data.length, { 'Content-Type': contentType });
      }),
    );
  }

  async get(key: string): Promise<{ data: Buffer; contentType: string } | undefined> {
    checkKey(key);
    return this.run('get', key, async () => {
      let res: http.IncomingMessage;
      try {
        res = (await this.client.getObject(this.bucket, key)) as http.IncomingMessage;
      } catch (err) {
        if (errCode(err) === 'NoSuchKey') return undefined;
        throw err;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      const data = Buffer.concat(chunks);
      const expected = Number(res.headers['content-length']);
      if (res.headers['content-length'] !== undefined && expected !== data.length) {
        throw Object.assign(new Error(`short read: ${data.length} of ${expected} bytes`), { code: 'ECONNRESET' });
      }
      return { data, contentType: res.headers['content-type'] ?? 'application/octet-stream' };
    });
  }

  async remove(key: string): Promise<void> {
    checkKey(key);
    await this.serialized(key, () =>
      this.run('remove', key, async () => {
        try {
          await this.client.removeObject(this.bucket, key);
        } catch (err) {
          if (errCode(err) === 'NoSuchKey') return; // S3 itself answers 204; some servers do not
          throw err;
        }
      }),
    );
  }

  /**
   * A URL anyone can GET the blob's bytes from (with its stored Content-Type) until it
   * expires after `seconds` (1 s to 7 days). Signed locally with SigV4: no request is made
   * and the key need not exist yet. The URL names the endpoint this store talks to.
   */
  async presignedGetUrl(key: string, seconds: number): Promise<string> {
    checkKey(key);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_PRESIGN_SECONDS) {
      throw new KindredError('INVALID_ARGUMENT', `presigned URL expiry must be a whole number of seconds in 1..${MAX_PRESIGN_SECONDS}`);
    }
    return this.run('presign', key, () => this.client.presignedGetObject(this.bucket, key, seconds));
  }

  /** Closes idle connections; requests still running finish or time out. */
  close(): void {
    this.agent.destroy();
  }

  /** Runs `fn` after the writes to `key` queued before it have settled (each under its own deadline). */
  private serialized(key: string, fn: () => Promise<void>): Promise<void> {
    const before = this.writes.get(key);
    const mine = before ? before.then(fn) : fn();
    const tail = mine.catch(() => {});
    this.writes.set(key, tail);
    void tail.then(() => {
      if (this.writes.get(key) === tail) this.writes.delete(key);
    });
    return mine;
  }

  /** Runs one operation under its deadline, turning every failure into a KindredError. */
  private async run<R>(what: string, key: string, fn: () => Promise<R>): Promise<R> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = Object.assign(new Error(`${what} took longer than ${this.operationTimeoutMs} ms`), { code: 'ETIMEDOUT' });
        controller.abort(err);
        reject(err);
      }, this.operationTimeoutMs);
    });
    try {
      // The race guarantees the deadline even if a request somehow escaped the abort signal.
      return await Promise.race([operation.run(controller.signal, fn), deadline]);
    } catch (err) {
      throw this.toKindredError(what, key, err);
    } finally {
      clearTimeout(timer);
    }
  }

  private toKindredError(what: string, key: string, err: unknown): KindredError {
    if (err instanceof KindredError) return err;
    const code = errCode(err);
    const detail = `${code ?? (err as Error | undefined)?.name ?? 'error'}: ${(err as Error | undefined)?.message ?? String(err)}`;
    if (code && KEY_CONFLICT_CODES.has(code)) return new KindredError('CONFLICT', 'blob key conflicts with an existing key');
    return new KindredError('UNAVAILABLE', `s3 ${what}${key ? ` ${key}` : ''} at ${this.where} failed (${detail})`);
  }
}

function checkKey(key: string): void {
  if (!isValidBlobKey(key)) throw new KindredError('INVALID_ARGUMENT', 'invalid blob key');
}
