/**
 * Runs the real bench CLI (`node --import tsx bench/cli.ts …`) for the harness self-tests and
 * reads what a run wrote. Not a test file itself (tap runs *.test.ts).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export function bench(args: string[], timeoutMs = 90_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, ['--import', 'tsx', 'bench/cli.ts', ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A fresh `--out-dir` for one test, removed when it ends. */
export function outDir(t: { teardown(fn: () => void): void }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The JSON a run of `scenario` wrote into `dir` (exactly one expected). */
export function readJson(dir: string, scenario: string): any {
  const files = readdirSync(dir).filter((f) => f.startsWith(`${scenario}-`) && f.endsWith('.json'));
  if (files.length !== 1) throw new Error(`expected one ${scenario} JSON in ${dir}: ${readdirSync(dir).join(', ')}`);
  return JSON.parse(readFileSync(join(dir, files[0]!), 'utf8'));
}

/** The JSON and the HTML report a run of `scenario` wrote into `dir`. */
export function readRun(dir: string, scenario: string): { json: any; html: string } {
  const files = readdirSync(dir).filter((f) => f.startsWith(`${scenario}-`));
  const json = files.find((f) => f.endsWith('.json'));
  const html = files.find((f) => f.endsWith('.html'));
  if (!json || !html) throw new Error(`no ${scenario} JSON/HTML in ${dir}: ${files.join(', ')}`);
  return { json: JSON.parse(readFileSync(join(dir, json), 'utf8')), html: readFileSync(join(dir, html), 'utf8') };
}
