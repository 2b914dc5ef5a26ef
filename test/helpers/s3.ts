/**
 * A real S3-compatible server for tests: versitygw (posix backend) on a free loopback port,
 * in its own temp directory, through deploy/s3/{install,start,stop}.sh.
 *
 * The first run builds versitygw with `go install` (deploy/s3/install.sh, cached under
 * ${KINDRED_CACHE:-~/.cache/kindred}); meanwhile this test file's tap timeout is extended.
 * A missing Go toolchain or a failed build fails the test loudly: it is never skipped.
 *
 *   const s3 = await startS3();
 *   t.teardown(() => s3.close());
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import tap from 'tap';
import type { S3BlobStoreOptions } from '../../src/storage/s3.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPTS = path.join(ROOT, 'deploy/s3');
/** Generous budget for a cold `go install` (module downloads + build on 2 cores took ~100 s). */
const INSTALL_BUDGET_MS = 20 * 60_000;

export interface S3Server {
  dir: string;
  port: number;
  endPoint: '127.0.0.1';
  accessKey: string;
  secretKey: string;
  region: string;
  /** BlobStore options for this server, given a bucket. */
  options(bucket: string, over?: Partial<S3BlobStoreOptions>): S3BlobStoreOptions;
  /** Stops the server (data stays), e.g. to test an outage. */
  stop(): Promise<void>;
  /** Starts it again on the same port and directory. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
  /** How long the last start took, in ms. */
  lastStartMs: number;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(script: string, args: string[], env: NodeJS.ProcessEnv, stderrToParent = false): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', [path.join(SCRIPTS, script), ...args], {
      env,
      stdio: ['ignore', 'pipe', stderrToParent ? 'inherit' : 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let installed: Promise<{ bin: string; installMs: number }> | undefined;

/**
 * Makes sure the versitygw binary is there, installing it on first use (npm test needs no
 * separate setup step). Resolves with its path and how long an install took (0 if cached).
 */
export function ensureVersitygw(): Promise<{ bin: string; installMs: number }> {
  installed ??= (async () => {
    const check = await run('install.sh', ['--check'], process.env);
    if (check.code === 0) return { bin: check.stdout.trim(), installMs: 0 };
    const base = Number(process.env.TAP_TIMEOUT || 30) * 1000;
    tap.setTimeout(INSTALL_BUDGET_MS + base);
    const started = Date.now();
    const res = await run('install.sh', [], process.env, true);
    const installMs = Date.now() - started;
    if (res.code !== 0) {
      throw new Error(
        `could not install versitygw for the S3 tests (deploy/s3/install.sh exited ${res.code}); ` +
          'these tests need Go >= 1.25 and the Go module proxy. See the messages above.',
      );
    }
    tap.setTimeout(base); // back to the usual budget, counted from now
    return { bin: res.stdout.trim(), installMs };
  })();
  return installed;
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set<string>();
// If the test process dies without its teardown, do not leave servers behind.
process.on('exit', () => {
  for (const dir of running) {
    try {
      const pid = Number(readFileSync(path.join(dir, 'versitygw.pid'), 'utf8'));
      if (pid > 0) process.kill(pid);
    } catch {
      // already gone
    }
  }
});

export async function startS3(): Promise<S3Server> {
  await ensureVersitygw();
  const dir = mkdtempSync(path.join(tmpdir(), 'kindred-s3-'));
  const port = await freePort();
  const accessKey = 'kindred-test';
  const secretKey = `test-secret-${process.pid}-${port}`;
  const region = 'us-east-1';
  const env = { ...process.env, KINDRED_S3_ACCESS_KEY: accessKey, KINDRED_S3_SECRET_KEY: secretKey, KINDRED_S3_REGION: region };

  const server: S3Server = {
    dir,
    port,
    endPoint: '127.0.0.1',
    accessKey,
    secretKey,
    region,
    lastStartMs: 0,
    options: (bucket, over = {}) => ({
      endPoint: '127.0.0.1',
      port,
      useSSL: false,
      accessKey,
      secretKey,
      region,
      bucket,
      ...over,
    }),
    async start() {
      const started = Date.now();
      const res = await run('start.sh', [dir, String(port)], env);
      if (res.code !== 0) throw new Error(`deploy/s3/start.sh ${dir} ${port} failed (exit ${res.code}):\n${res.stderr}`);
      running.add(dir);
      server.lastStartMs = Date.now() - started;
    },
    async stop() {
      const res = await run('stop.sh', [dir], env);
      if (res.code !== 0) throw new Error(`deploy/s3/stop.sh ${dir} failed (exit ${res.code}):\n${res.stderr}`);
      running.delete(dir);
    },
    async close() {
      try {
        await server.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    await server.start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return server;
}
