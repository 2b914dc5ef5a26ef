/**
 * How the provider stand-in misbehaves: latency, declines, timeouts, asynchronous
 * confirmations and outage windows. Set at start by flags (main.ts) and changed at run
 * time through `POST /_control` (tests and the bench use it).
 */
export type OutageMode = '503' | 'refuse';

export interface Behaviour {
  /** mean added latency of every /v1 request */
  latencyMs: number;
  /** the latency is uniform in [latencyMs - jitterMs, latencyMs + jitterMs] */
  jitterMs: number;
  /** share of confirmations that are declined (card_declined) */
  declineRate: number;
  /** share of requests processed but answered only after `timeoutHangMs` (the client times out) */
  timeoutRate: number;
  timeoutHangMs: number;
  /** share of confirmations answered `processing`, finished `asyncDelayMs` later and told by webhook */
  asyncRate: number;
  asyncDelayMs: number;
}

export const DEFAULT_BEHAVIOUR: Behaviour = {
  latencyMs: 0,
  jitterMs: 0,
  declineRate: 0,
  timeoutRate: 0,
  timeoutHangMs: 30_000,
  asyncRate: 0,
  asyncDelayMs: 200,
};

export interface OutageWindow {
  /** ms after start (flags) or after the control request */
  startMs: number;
  durationMs: number;
  mode: OutageMode;
}

/** `START:DURATION:MODE`, e.g. `5000:3000:503` or `0:2000:refuse`. */
export function parseOutage(spec: string): OutageWindow {
  const m = /^(\d+):(\d+):(503|refuse)$/.exec(spec.trim());
  if (!m) throw new Error(`--outage must be START_MS:DURATION_MS:503|refuse, got "${spec}"`);
  return { startMs: Number(m[1]), durationMs: Number(m[2]), mode: m[3] as OutageMode };
}

/** A small seeded generator (mulberry32), so a run with `--seed` declines the same requests. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RATE_KEYS = ['declineRate', 'timeoutRate', 'asyncRate'] as const;
const MS_KEYS = ['latencyMs', 'jitterMs', 'timeoutHangMs', 'asyncDelayMs'] as const;

/** Applies a JSON patch of behaviour fields, refusing unknown keys and out-of-range values. */
export function patchBehaviour(current: Behaviour, patch: Record<string, unknown>): Behaviour {
  const next = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if ((RATE_KEYS as readonly string[]).includes(key)) {
      if (typeof value !== 'number' || !(value >= 0 && value <= 1)) throw new Error(`${key} must be a number in [0, 1]`);
      next[key as (typeof RATE_KEYS)[number]] = value;
    } else if ((MS_KEYS as readonly string[]).includes(key)) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 600_000) throw new Error(`${key} must be milliseconds in [0, 600000]`);
      next[key as (typeof MS_KEYS)[number]] = value;
    } else {
      throw new Error(`unknown behaviour key "${key}"`);
    }
  }
  return next;
}
