/**
 * The output of a harness run: the side-by-side table on stdout, and
 * bench/results/<scenario>-<timestamp>.json plus .html next to it (or --out-dir).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeHtmlReport, type Report, type ReportSection } from './html.js';
import type { Sample } from './proc.js';
import { REPO_ROOT } from './server.js';

export function printSideBySide(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  const out = [title, '', line(header), '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|', ...rows.map(line)];
  console.log('\n' + out.join('\n') + '\n');
}

export function writeRun(scenario: string, outDir: string | undefined, json: unknown, report: Report): { json: string; html: string } {
  const dir = outDir ? resolve(outDir) : join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const base = join(dir, `${scenario}-${stamp}`);
  writeFileSync(`${base}.json`, JSON.stringify(json, null, 2) + '\n');
  writeHtmlReport(`${base}.html`, report);
  return { json: `${base}.json`, html: `${base}.html` };
}

/** RSS and CPU series for the report from the sampler's once-a-second samples. */
export function processSeries(samples: Sample[]): Pick<ReportSection, 'rssMiB' | 'cpuCores'> {
  return {
    rssMiB: [{ name: 'server RSS', points: samples.map((s) => [s.t, Math.round(s.rssKiB / 102.4) / 10]) }],
    cpuCores: [
      { name: 'server', points: samples.map((s) => [s.t, s.cpuCores]) },
      { name: 'load generator', points: samples.map((s) => [s.t, s.loadGenCores]) },
      { name: 'other tenants', points: samples.map((s) => [s.t, s.otherCores]) },
    ],
  };
}

export function machineLine(m: { nproc: number; cpuModel: string; node: string; kernel: string; memTotalMiB: number; loadavg: number[] }): string {
  return `${m.nproc} cores (${m.cpuModel}), ${Math.round(m.memTotalMiB / 1024)} GiB, Linux ${m.kernel}, Node ${m.node}; load average at start ${m.loadavg.join(' ')}`;
}
