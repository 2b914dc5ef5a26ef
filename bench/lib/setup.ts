/**
 * Test-user setup over REST, the same calls as test/helpers/server.ts (copied, not
 * imported: bench/ must not depend on test/): register, set a profile that fits
 * everyone else's, and make matched pairs by two likes.
 */

export interface ApiResponse<T = any> {
  status: number;
  body: T;
}

export async function api<T = any>(base: string, method: string, path: string, opts: { token?: string; json?: unknown } = {}): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed as T };
}

export interface BenchUser {
  userId: string;
  token: string;
  username: string;
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight; results keep the input order. */
export async function pool<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}

class Refused extends Error {}

/** Retries network failures and 5xx answers; a 4xx (Refused) is a setup bug and fails at once. */
async function withRetry<T>(what: string, fn: () => Promise<T>, attempts = 3): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof Refused) throw new Error(`${what}: ${err.message}`);
      last = err;
      await new Promise((r) => setTimeout(r, 200 * (i + 1)));
    }
  }
  throw new Error(`${what} failed ${attempts} times: ${(last as Error)?.message ?? last}`);
}

export async function registerUser(base: string, username: string): Promise<BenchUser> {
  return withRetry(`register ${username}`, async () => {
    const res = await api(base, 'POST', '/v1/register', { json: { username, password: 'correct horse battery' } });
    if (res.status !== 201) throw new (res.status < 500 ? Refused : Error)(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { userId: res.body.userId, token: res.body.token, username };
  });
}

/** A profile that fits everyone else made with it: same place, wide preferences. */
export async function setProfile(base: string, user: BenchUser): Promise<void> {
  await withRetry(`profile ${user.username}`, async () => {
    const res = await api(base, 'PATCH', '/v1/profile', {
      token: user.token,
      json: {
        displayName: user.username,
        birthDate: '1995-06-15',
        gender: 'woman',
        preferences: { ageMin: 18, ageMax: 60, genders: ['woman', 'man', 'nonbinary'], maxDistanceKm: 50 },
        location: { lat: 52.52, lon: 13.405 },
      },
    });
    if (res.status !== 200) throw new (res.status < 500 ? Refused : Error)(`profile failed: ${res.status} ${JSON.stringify(res.body)}`);
  });
}

export async function swipe(base: string, user: BenchUser, targetId: string, kind: 'like' | 'pass'): Promise<{ matched: boolean; matchId?: string }> {
  return withRetry(`swipe ${user.username}`, async () => {
    const res = await api(base, 'POST', '/v1/swipes', { token: user.token, json: { targetId, kind } });
    if (res.status !== 200) throw new (res.status < 500 ? Refused : Error)(`swipe failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  });
}

export interface SetupTiming {
  users: number;
  seconds: number;
  perSecond: number;
}

/** Registers `count` users named `<prefix>-user-<i>`, `concurrency` at a time. */
export async function registerUsers(base: string, count: number, opts: { prefix?: string; concurrency?: number; profiles?: boolean; progress?: (done: number) => void } = {}): Promise<{ users: BenchUser[]; register: SetupTiming; profile?: SetupTiming }> {
  const prefix = opts.prefix ?? 'bench';
  const concurrency = opts.concurrency ?? 50;
  let done = 0;
  const t0 = performance.now();
  const users = await pool(Array.from({ length: count }, (_, i) => i), concurrency, async (i) => {
    const u = await registerUser(base, `${prefix}-user-${i}`);
    if (++done % 1000 === 0) opts.progress?.(done);
    return u;
  });
  const regSeconds = (performance.now() - t0) / 1000;
  const register = { users: count, seconds: round3(regSeconds), perSecond: Math.round(count / regSeconds) };
  if (!opts.profiles) return { users, register };
  const t1 = performance.now();
  await pool(users, concurrency, (u) => setProfile(base, u));
  const profSeconds = (performance.now() - t1) / 1000;
  return { users, register, profile: { users: count, seconds: round3(profSeconds), perSecond: Math.round(count / profSeconds) } };
}

/** `pairs` matched pairs: users a_i and b_i like each other. */
export async function matchedPairs(base: string, pairs: number, concurrency = 50): Promise<{ pairs: Array<[BenchUser, BenchUser]>; timing: Record<string, SetupTiming> }> {
  const { users, register, profile } = await registerUsers(base, pairs * 2, { prefix: 'pair', concurrency, profiles: true });
  const out: Array<[BenchUser, BenchUser]> = [];
  for (let i = 0; i < pairs; i++) out.push([users[2 * i]!, users[2 * i + 1]!]);
  const t0 = performance.now();
  await pool(out, concurrency, ([a, b]) => swipe(base, a, b.userId, 'like'));
  const results = await pool(out, concurrency, ([a, b]) => swipe(base, b, a.userId, 'like'));
  const notMatched = results.filter((r) => !r.matched).length;
  if (notMatched) throw new Error(`${notMatched} of ${pairs} pairs did not match after two likes`);
  const s = (performance.now() - t0) / 1000;
  return { pairs: out, timing: { register, profile: profile!, match: { users: pairs * 2, seconds: round3(s), perSecond: Math.round((pairs * 2) / s) } } };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
