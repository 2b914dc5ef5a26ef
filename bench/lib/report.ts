/**
 * Output of a run: a human table on stdout and a JSON document in
 * bench/results/<scenario>-<timestamp>.json (bench/results/ is gitignored).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './server.js';

export type Row = [label: string, value: string | number];

export function printTable(title: string, rows: Row[]): void {
  const width = Math.max(...rows.map(([l]) => l.length));
  const lines = [title, '-'.repeat(Math.max(title.length, 40))];
  for (const [label, value] of rows) lines.push(`${label.padEnd(width)}  ${value}`);
  console.log(`\n${lines.join('\n')}\n`);
}

export function writeResult(scenario: string, result: unknown, outDir = join(REPO_ROOT, 'bench', 'results')): string {
  mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(outDir, `${scenario}-${stamp}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  return file;
}

export function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function ms(n: number): string {
  return `${fmt(n, n < 10 ? 2 : 1)} ms`;
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
