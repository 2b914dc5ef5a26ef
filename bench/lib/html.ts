/**
 * A self-contained HTML report (inline SVG, no scripts, no external files): for each
 * target, throughput and latency over time, the latency percentile distribution,
 * and the server process's RSS and CPU over time (sampled from /proc once a second).
 */
import { writeFileSync } from 'node:fs';

export interface Series {
  name: string;
  points: Array<[number, number]>;
}

export interface ReportSection {
  title: string;
  /** label/value rows */
  rows: Array<[string, string]>;
  throughput: Series[];
  latency: Series[];
  rssMiB: Series[];
  cpuCores: Series[];
  /** [percentile, ms] */
  distribution: Array<[number, number]>;
  /** several latency distributions in one chart (one per part of a mixed load), [percentile, ms] each; replaces `distribution` */
  distributions?: Series[];
  /** chart titles and units where they are not chat messages (e.g. "operations/s") */
  throughputUnit?: string;
  latencyTitle?: string;
}

export interface Report {
  title: string;
  command: string;
  machine: string;
  /** the side-by-side table: header + rows */
  table: { header: string[]; rows: string[][] };
  sections: ReportSection[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/** A line chart; `logY` plots log10 of values (for latencies spanning decades). */
export function lineChart(title: string, yLabel: string, series: Series[], opts: { logY?: boolean; xLabel?: string; xTicks?: Array<[number, string]> } = {}): string {
  const W = 640;
  const H = 240;
  const L = 60;
  const R = 120;
  const T = 24;
  const B = 36;
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) return `<p><em>${esc(title)}: no data</em></p>`;
  const xs = pts.map((p) => p[0]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  const tf = (v: number) => (opts.logY ? Math.log10(Math.max(v, 0.01)) : v);
  const ys = pts.map((p) => tf(p[1]));
  const y0 = opts.logY ? Math.floor(Math.min(...ys)) : 0;
  const y1 = opts.logY ? Math.max(Math.ceil(Math.max(...ys)), y0 + 1) : niceMax(Math.max(...ys));
  const X = (v: number) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v: number) => T + (1 - (tf(v) - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`];
  parts.push(`<text x="${L}" y="14" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#888"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#888"/>`);
  const yTicks = opts.logY ? Array.from({ length: y1 - y0 + 1 }, (_, i) => 10 ** (y0 + i)) : Array.from({ length: 5 }, (_, i) => (y1 * i) / 4);
  for (const v of yTicks) {
    const y = Y(v);
    parts.push(`<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#eee"/><text x="${L - 4}" y="${y + 4}" text-anchor="end">${+v.toPrecision(3)}</text>`);
  }
  const xTicks = opts.xTicks ?? Array.from({ length: 6 }, (_, i) => [x0 + ((x1 - x0) * i) / 5, String(Math.round(x0 + ((x1 - x0) * i) / 5))] as [number, string]);
  for (const [v, label] of xTicks) parts.push(`<text x="${X(v)}" y="${H - B + 14}" text-anchor="middle">${esc(label)}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle">${esc(opts.xLabel ?? 'seconds')}</text>`);
  parts.push(`<text x="12" y="${(T + H - B) / 2}" transform="rotate(-90 12 ${(T + H - B) / 2})" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    if (s.points.length) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
    parts.push(`<rect x="${W - R + 10}" y="${T + i * 16}" width="10" height="10" fill="${color}"/><text x="${W - R + 24}" y="${T + i * 16 + 9}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

function table(header: string[], rows: string[][]): string {
  return `<table><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</table>`;
}

export function renderReport(r: Report): string {
  const body: string[] = [`<h1>${esc(r.title)}</h1>`, `<p><code>${esc(r.command)}</code></p>`, `<p>${esc(r.machine)}</p>`, table(r.table.header, r.table.rows)];
  for (const s of r.sections) {
    body.push(`<h2>${esc(s.title)}</h2>`, table(['', ''], s.rows));
    body.push(lineChart('Throughput', s.throughputUnit ?? 'msgs/s', s.throughput));
    body.push(lineChart(s.latencyTitle ?? 'Delivery latency per second', 'ms (log)', s.latency, { logY: true }));
    const dists = (s.distributions ?? [{ name: 'latency', points: s.distribution }]).map((d) => ({ name: d.name, points: d.points.filter(([p]) => p > 0) }));
    const nines = (p: number) => (p >= 100 ? 5 : -Math.log10(1 - p / 100));
    const ticks = dists.find((d) => d.points.length)?.points ?? [];
    body.push(
      lineChart('Latency percentiles (whole measured window)', 'ms (log)', dists.map((d) => ({ name: d.name, points: d.points.map(([p, v]) => [nines(p), v] as [number, number]) })), {
        logY: true,
        xLabel: 'percentile',
        xTicks: ticks.map(([p]) => [nines(p), p >= 100 ? 'max' : `p${p}`]),
      }),
    );
    body.push(lineChart('Server RSS', 'MiB', s.rssMiB));
    body.push(lineChart('Server CPU', 'cores', s.cpuCores));
  }
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.title)}</title><style>
body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}svg{display:block;margin:1em 0}
</style></head><body>${body.join('\n')}</body></html>\n`;
}

export function writeHtmlReport(file: string, r: Report): void {
  writeFileSync(file, renderReport(r));
}
