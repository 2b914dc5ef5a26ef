/**
 * Starts a real Kindred node for a test: real listeners on loopback (ports chosen
 * by the OS), a fresh data dir, silent logs. Password hashing is cheaper than in
 * production so that tests registering thousands of users stay fast.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfig, type KindredConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { startNode, type KindredNode } from '../../src/node.js';
import { NativeClient } from '../../src/client/native.js';

export interface TestServer {
  node: KindredNode;
  config: KindredConfig;
  base: string;
  wsUrl: string;
  tcpPort: number;
  stop(): Promise<void>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export function testConfig(dataDir: string, overrides: DeepPartial<KindredConfig> = {}): KindredConfig {
  return makeConfig({
    dataDir,
    httpPort: 0,
    tcpPort: 0,
    logLevel: 'silent',
    ...overrides,
    xmpp: { port: 0, tlsPort: 0, ...(overrides.xmpp ?? {}) },
    auth: { scryptN: 1024, scramIterations: 4096, registration: true, ...(overrides.auth ?? {}) },
    limits: { likesPerMinute: 6000, likesBurst: 1000, messagesPerSecond: 1000, messagesBurst: 1000, ...(overrides.limits ?? {}) },
  });
}

export async function startTestServer(t: { teardown(fn: () => unknown): void }, overrides: DeepPartial<KindredConfig> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kindred-test-'));
  const config = testConfig(dataDir, overrides);
  const node = await startNode(config, createLogger('silent'));
  const server: TestServer = {
    node,
    config,
    base: `http://127.0.0.1:${node.httpPort}`,
    wsUrl: `ws://127.0.0.1:${node.httpPort}/ws`,
    tcpPort: node.tcpPort,
    stop: async () => {
      await node.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  t.teardown(() => server.stop());
  return server;
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** A JSON REST call; never throws on HTTP errors (tests assert on status and body). */
export async function api<T = any>(base: string, method: string, path: string, opts: { token?: string; json?: unknown; body?: Uint8Array | string; contentType?: string } = {}): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: BodyInit | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.body !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/octet-stream';
    body = opts.body as BodyInit;
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

export interface TestUser {
  userId: string;
  token: string;
  username: string;
}

let userSeq = 0;

export async function registerUser(base: string, prefix = 'user'): Promise<TestUser> {
  const username = `${prefix}${process.pid}x${++userSeq}`.toLowerCase();
  const res = await api(base, 'POST', '/v1/register', { json: { username, password: 'correct horse battery' } });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { userId: res.body.userId, token: res.body.token, username };
}

/** A profile that fits everyone else made with it: same place, wide preferences. */
export async function setProfile(base: string, user: TestUser, patch: Record<string, unknown> = {}): Promise<void> {
  const res = await api(base, 'PATCH', '/v1/profile', {
    token: user.token,
    json: {
      displayName: user.username,
      birthDate: '1995-06-15',
      gender: 'woman',
      preferences: { ageMin: 18, ageMax: 60, genders: ['woman', 'man', 'nonbinary'], maxDistanceKm: 50 },
      location: { lat: 52.52, lon: 13.405 },
      ...patch,
    },
  });
  if (res.status !== 200) throw new Error(`profile failed: ${res.status} ${JSON.stringify(res.body)}`);
}

export async function connectWs(server: TestServer, user: TestUser): Promise<NativeClient> {
  const c = await NativeClient.connectWs(server.wsUrl);
  await c.request('auth', { token: user.token });
  return c;
}

export async function connectTcp(server: TestServer, user: TestUser): Promise<NativeClient> {
  const c = await NativeClient.connectTcp('127.0.0.1', server.tcpPort);
  await c.request('auth', { token: user.token });
  return c;
}

/** Two users who have liked each other. */
export async function matchedPair(server: TestServer, prefix = 'pair'): Promise<[TestUser, TestUser, string]> {
  const a = await registerUser(server.base, prefix + 'a');
  const b = await registerUser(server.base, prefix + 'b');
  await setProfile(server.base, a);
  await setProfile(server.base, b);
  return [a, b, await likeEachOther(server, a, b)];
}

/** Both users like each other over REST; resolves with the match id. */
export async function likeEachOther(server: Pick<TestServer, 'base'>, a: TestUser, b: TestUser): Promise<string> {
  await api(server.base, 'POST', '/v1/swipes', { token: a.token, json: { targetId: b.userId, kind: 'like' } });
  const res = await api(server.base, 'POST', '/v1/swipes', { token: b.token, json: { targetId: a.userId, kind: 'like' } });
  if (!res.body?.matched) throw new Error(`expected a match: ${JSON.stringify(res.body)}`);
  return res.body.matchId;
}

/** Registers one user per prefix, each with the default test profile. */
export async function usersWithProfiles(server: Pick<TestServer, 'base'>, ...prefixes: string[]): Promise<TestUser[]> {
  const out: TestUser[] = [];
  for (const p of prefixes) {
    const u = await registerUser(server.base, p);
    await setProfile(server.base, u);
    out.push(u);
  }
  return out;
}
