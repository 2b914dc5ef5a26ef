/**
 * A safety net for test files that start servers, clients and child processes: once the file's
 * tests and teardowns are all done (tap's root test completed), the process must exit. If it is
 * still alive `graceMs` later, something was leaked (a socket, a timer, a child process, a
 * worker): this prints what keeps the event loop alive to stderr (which appears in the CI log)
 * and exits with status 1, so tap reports the file as failed at once, naming the culprit,
 * instead of killing it at its file timeout minutes later with nothing to go on. A leaked
 * handle after every check passed is a bug, never a pass.
 *
 * The same report is printed if the teardowns themselves have not finished `teardownMs` after
 * they began (a teardown waiting on a promise that never settles).
 *
 *   import t from 'tap';
 *   import { failOnLingeringHandles, nameService } from '../helpers/exit-watch.js';
 *   failOnLingeringHandles(t);            // before anything else registers a teardown
 *   nameService(port, 'nats-server');     // optional: sockets to that port are reported by name
 *
 * Timers are found after the fact through the inspector (Runtime.queryObjects), so nothing is
 * recorded while the tests run and they run at full speed.
 */
import { Session } from 'node:inspector';
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';

interface RootTest {
  teardown(fn: () => unknown): void;
  on(event: 'complete', fn: () => void): unknown;
}

/** Ports the helpers started something on, by name ("cassandra CQL", "kindred o1 http"…). */
const services = new Map<number, string>();

/** Names what listens on `port`, so the report says "a socket to nats-server" rather than a port. */
export function nameService(port: number, name: string): void {
  services.set(port, name);
}

let armed = false;
/** the teardown tap is running (or ran last): named in the report if the teardowns hang */
let runningTeardown: (() => unknown) | undefined;

/**
 * Arms the watch on the root test `t` (idempotent). Call it before anything else registers a
 * teardown: tap runs teardowns last-in first-out, so this one runs after all the others.
 */
export function failOnLingeringHandles(t: RootTest, opts: { graceMs?: number; teardownMs?: number } = {}): void {
  if (armed) return;
  armed = true;
  const graceMs = opts.graceMs ?? Number(process.env.KINDRED_TEST_EXIT_GRACE_MS ?? 20_000);
  const teardownMs = opts.teardownMs ?? 120_000;
  // Registered first, so it runs last: by then every other teardown has resolved.
  t.teardown(() => {
    clearTimeout(teardownWatch);
  });
  // tap calls teardowns when the tests are done; until then this timer is not armed (a
  // teardown registered later runs first, so the start of the teardown phase is seen by the
  // process-level hook below instead).
  let teardownWatch: NodeJS.Timeout | undefined;
  t.teardown = wrapFirstTeardown(t.teardown.bind(t), () => {
    teardownWatch = setTimeout(() => {
      report(`the teardowns of this test file have not finished ${teardownMs / 1000} s after they began`, runningTeardown);
      process.exit(1);
    }, teardownMs);
    teardownWatch.unref();
  });
  t.on('complete', () => {
    clearTimeout(teardownWatch);
    const timer = setTimeout(() => {
      report(`this test file finished its tests and teardowns ${graceMs / 1000} s ago but its process has not exited`);
      process.exit(1);
    }, graceMs);
    // unref'd: it must not be what keeps the process alive
    timer.unref();
  });
}

/**
 * Wraps `teardown` so that the first teardown tap runs (the last registered) calls `onStart`.
 * Each registered function is wrapped; whichever runs first starts the watch.
 */
function wrapFirstTeardown(teardown: (fn: () => unknown) => void, onStart: () => void): (fn: () => unknown) => void {
  let started = false;
  return (fn) =>
    teardown(function (this: unknown) {
      if (!started) {
        started = true;
        onStart();
      }
      runningTeardown = fn;
      return fn.call(this);
    });
}

/** Prints what keeps the event loop alive to stderr. */
export function report(why: string, teardown?: () => unknown): void {
  const lines: string[] = [`\n[exit-watch] ${why}. What keeps it alive:`];
  try {
    if (teardown) lines.push(`  the teardown still running (or stuck): ${describeFunction(teardown)}`);
    lines.push(`  active resources: ${JSON.stringify(countBy(process.getActiveResourcesInfo()))}`);
    const found = [...activeHandles().map(describeHandle), ...liveTimers()];
    for (const f of found) lines.push(`  - ${f}`);
    // uWebSockets.js (the HTTP/WS server) keeps its sockets in native code, out of Node's lists
    if (found.length === 0) lines.push("  - nothing Node can list: a native addon's sockets (a uWebSockets.js app not closed?)");
  } catch (err) {
    lines.push(`  (could not inspect further: ${String(err)})`);
  }
  process.stderr.write(lines.join('\n') + '\n');
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/** Handles that keep the loop alive (the process's own stdio does not count). */
function activeHandles(): unknown[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h) => h !== process.stdout && h !== process.stderr && h !== process.stdin);
}

function serviceOf(port: number | undefined): string {
  const name = port === undefined ? undefined : services.get(port);
  return name ? ` (${name})` : '';
}

function describeHandle(h: unknown): string {
  if (h instanceof net.Socket) {
    const s = h as net.Socket & { _handle?: { constructor?: { name?: string } } };
    const state = s.destroyed ? 'destroyed' : s.connecting ? 'connecting' : s.readyState;
    if (s.remotePort !== undefined || s.remoteAddress !== undefined) {
      // to a service of ours, or accepted by one (then the local port names it)
      const named = serviceOf(s.remotePort) || (serviceOf(s.localPort) && `${serviceOf(s.localPort)} accepted`);
      return `socket ${s.localAddress}:${s.localPort} → ${s.remoteAddress}:${s.remotePort}${named} [${state}]`;
    }
    if (s.localPort !== undefined) return `socket ${s.localAddress}:${s.localPort}${serviceOf(s.localPort)} (accepted) [${state}]`;
    return `${s._handle?.constructor?.name ?? 'socket'} (a pipe: a child's stdio?) [${state}]`;
  }
  if (h instanceof net.Server) {
    const a = h.address();
    return typeof a === 'object' && a ? `server listening on ${a.address}:${a.port}${serviceOf(a.port)}` : `server ${String(a)}`;
  }
  const name = (h as { constructor?: { name?: string } })?.constructor?.name ?? typeof h;
  if (name === 'ChildProcess') {
    const c = h as ChildProcess;
    return `child process ${c.pid}: ${c.spawnargs.join(' ')}`;
  }
  return name;
}

type Post = <T>(method: string, params?: object) => T;
/** scratch space the inspector reads objects from (Runtime.evaluate finds them here) */
const SCRATCH = '__kindredExitWatch';
type Scratch = { proto?: object; timers?: unknown[]; fn?: unknown };

/** Runs `fn` with an in-process inspector session (whose commands answer synchronously) and the URLs of the loaded scripts. */
function withInspector<T>(fn: (post: Post, scripts: Map<string, string>, scratch: Scratch) => T): T {
  const session = new Session();
  session.connect();
  const g = globalThis as unknown as Record<string, Scratch | undefined>;
  const scratch: Scratch = {};
  g[SCRATCH] = scratch;
  const post: Post = <T>(method: string, params?: object): T => {
    let result: unknown;
    let error: Error | null = null;
    session.post(method, params, (err, res) => {
      error = err;
      result = res;
    });
    if (error) throw error;
    return result as T;
  };
  try {
    const scripts = new Map<string, string>();
    session.on('Debugger.scriptParsed', (m) => scripts.set(m.params.scriptId, m.params.url));
    post('Debugger.enable');
    return fn(post, scripts, scratch);
  } finally {
    post('Debugger.disable');
    session.disconnect();
    delete g[SCRATCH];
  }
}

/** A function's name and where it was defined. */
function describeFunction(fn: unknown): string {
  const name = typeof fn === 'function' ? fn.name || '(anonymous)' : String(fn);
  try {
    return `${name} ${withInspector((post, scripts, scratch) => locate(fn, post, scripts, scratch))}`.trimEnd();
  } catch {
    return name;
  }
}

/**
 * The timers still pending and ref'd, each with its callback's name and where it was defined
 * (found through the inspector: Node keeps no list of timers a program can read).
 */
function liveTimers(): string[] {
  return withInspector((post, scripts, scratch) => {
    const probe = setTimeout(() => undefined, 0);
    scratch.proto = Object.getPrototypeOf(probe) as object;
    clearTimeout(probe);
    const protoId = post<{ result: { objectId: string } }>('Runtime.evaluate', { expression: `globalThis.${SCRATCH}.proto` }).result.objectId;
    const all = post<{ objects: { objectId: string } }>('Runtime.queryObjects', { prototypeObjectId: protoId }).objects.objectId;
    post('Runtime.callFunctionOn', { objectId: all, functionDeclaration: `function () { globalThis.${SCRATCH}.timers = this; }` });
    const out: string[] = [];
    type TimerInternals = NodeJS.Timeout & { _destroyed?: boolean; _idleTimeout?: number; _repeat?: number | null; _onTimeout?: unknown };
    for (const timer of (scratch.timers ?? []) as TimerInternals[]) {
      if (timer._destroyed || !timer.hasRef()) continue;
      const fn = timer._onTimeout;
      const name = typeof fn === 'function' ? fn.name || '(anonymous)' : String(fn);
      // no source: a built-in, most often a promise's resolve (`await sleep(ms)` in a loop that never ends)
      const where = typeof fn === 'function' ? locate(fn, post, scripts, scratch) || '(built-in: a promise resolved by a timer, e.g. a sleep() in a loop still running)' : '';
      out.push(`${timer._repeat ? 'interval' : 'timeout'} of ${timer._idleTimeout} ms: ${name} ${where}`.trimEnd());
    }
    return out;
  });
}

function locate(fn: unknown, post: Post, scripts: Map<string, string>, scratch: Scratch): string {
  scratch.fn = fn;
  const id = post<{ result: { objectId?: string } }>('Runtime.evaluate', { expression: `globalThis.${SCRATCH}.fn` }).result.objectId;
  if (!id) return '';
  type Prop = { name: string; value?: { objectId?: string; value?: { scriptId: string; lineNumber: number; columnNumber: number } } };
  const props = post<{ internalProperties?: Prop[] }>('Runtime.getProperties', { objectId: id, ownProperties: true }).internalProperties ?? [];
  // a bound function: where its target was defined
  const target = props.find((p) => p.name === '[[TargetFunction]]')?.value?.objectId;
  const inner = target ? (post<{ internalProperties?: Prop[] }>('Runtime.getProperties', { objectId: target, ownProperties: true }).internalProperties ?? []) : props;
  const loc = inner.find((p) => p.name === '[[FunctionLocation]]')?.value?.value;
  return loc ? `at ${scripts.get(loc.scriptId) ?? `script ${loc.scriptId}`}:${loc.lineNumber + 1}:${loc.columnNumber + 1}` : '';
}
