/** Shared by the TLS front tests: a throwaway certificate, the front's RSS, polling. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tlsFrontBinaryExists, defaultTlsFrontBinary } from '../../src/protocol/tls-front/supervisor.js';

/** The tests need the built front: a missing binary fails them (npm run build builds it). */
export function requireFrontBinary(): void {
  if (!tlsFrontBinaryExists()) throw new Error(`${defaultTlsFrontBinary()} is missing: run npm run build (needs go on PATH)`);
}

export function makeCert(): { certFile: string; keyFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kindred-front-cert-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  return { certFile, keyFile };
}

export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

export async function waitUntil(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
