/**
 * Decodes an untrusted `{op, ...args}` object into a typed UserCommand, or throws
 * UNKNOWN_OPERATION / INVALID_ARGUMENT naming the field. Every transport's input
 * passes through here, so a wrong type never reaches domain code.
 */
import { KindredError } from '../errors.js';
import type { UserCommand } from './commands.js';

type Raw = Record<string, unknown>;

function fail(field: string, why: string): never {
  throw new KindredError('INVALID_ARGUMENT', `${field}: ${why}`);
}

function str(raw: Raw, field: string, opts: { max?: number; optional?: boolean; min?: number } = {}): string | undefined {
  const v = raw[field];
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    fail(field, 'is required');
  }
  if (typeof v !== 'string') fail(field, 'must be a string');
  if (v.length < (opts.min ?? 1)) fail(field, 'must not be empty');
  if (v.length > (opts.max ?? 256)) fail(field, `must be at most ${opts.max ?? 256} characters`);
  return v;
}

const req = (raw: Raw, field: string, max?: number): string => str(raw, field, { max })!;

function oneOf<T extends string>(raw: Raw, field: string, allowed: readonly T[]): T {
  const v = raw[field];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) fail(field, `must be one of ${allowed.join(', ')}`);
  return v as T;
}

function int(raw: Raw, field: string, min: number, max: number): number | undefined {
  const v = raw[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(field, `must be an integer from ${min} to ${max}`);
  return v;
}

function ids(raw: Raw, field: string, max: number): string[] {
  const v = raw[field];
  if (!Array.isArray(v) || v.length > max || !v.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 64)) {
    fail(field, `must be a list of at most ${max} ids`);
  }
  return v as string[];
}

const decoders: { [Op in UserCommand['op']]: (raw: Raw) => Extract<UserCommand, { op: Op }> } = {
  logout: () => ({ op: 'logout' }),
  ping: () => ({ op: 'ping' }),
  'profile.get': (r) => ({ op: 'profile.get', userId: str(r, 'userId', { optional: true, max: 64 }) }),
  'profile.update': (r) => {
    if (typeof r.patch !== 'object' || r.patch === null || Array.isArray(r.patch)) fail('patch', 'must be an object');
    return { op: 'profile.update', patch: r.patch as Raw };
  },
  'images.upload': (r) => {
    if (!(r.data instanceof Uint8Array)) fail('data', 'must be binary');
    return { op: 'images.upload', data: r.data, contentType: req(r, 'contentType', 100) };
  },
  'images.list': (r) => ({ op: 'images.list', userId: str(r, 'userId', { optional: true, max: 64 }) }),
  'images.remove': (r) => ({ op: 'images.remove', imageId: req(r, 'imageId', 64) }),
  'images.reorder': (r) => ({ op: 'images.reorder', imageIds: ids(r, 'imageIds', 5) }),
  'deck.get': (r) => ({ op: 'deck.get', limit: int(r, 'limit', 1, 100), cursor: str(r, 'cursor', { optional: true, max: 512 }) }),
  swipe: (r) => ({ op: 'swipe', targetId: req(r, 'targetId', 64), kind: oneOf(r, 'kind', ['like', 'pass', 'superlike'] as const) }),
  'matches.list': () => ({ op: 'matches.list' }),
  unmatch: (r) => ({ op: 'unmatch', userId: req(r, 'userId', 64) }),
  block: (r) => ({ op: 'block', userId: req(r, 'userId', 64) }),
  report: (r) => ({ op: 'report', userId: req(r, 'userId', 64), reason: req(r, 'reason', 64), details: str(r, 'details', { optional: true, max: 2000, min: 0 }) }),
  'message.send': (r) => ({ op: 'message.send', to: req(r, 'to', 64), body: req(r, 'body', 100_000), clientId: str(r, 'clientId', { optional: true, max: 64 }) }),
  'message.ack': (r) => ({ op: 'message.ack', messageIds: ids(r, 'messageIds', 500) }),
  'messages.history': (r) => {
    const cmd = {
      op: 'messages.history' as const,
      with: str(r, 'with', { optional: true, max: 64 }),
      before: str(r, 'before', { optional: true, max: 64 }),
      after: str(r, 'after', { optional: true, max: 64 }),
      limit: int(r, 'limit', 1, 200),
    };
    if (cmd.before !== undefined && cmd.after !== undefined) fail('after', 'cannot be combined with before');
    return cmd;
  },
  receipt: (r) => ({ op: 'receipt', to: req(r, 'to', 64), messageId: req(r, 'messageId', 64), kind: oneOf(r, 'kind', ['delivered', 'read'] as const) }),
  typing: (r) => ({ op: 'typing', to: req(r, 'to', 64), state: oneOf(r, 'state', ['composing', 'paused'] as const) }),
  'presence.get': (r) => ({ op: 'presence.get', userIds: ids(r, 'userIds', 100) }),
  'presence.set': (r) => ({
    op: 'presence.set',
    show: oneOf(r, 'show', ['available', 'away', 'chat', 'dnd', 'xa'] as const),
    status: str(r, 'status', { optional: true, max: 500, min: 0 }),
  }),
  'contact.add': (r) => ({ op: 'contact.add', userId: req(r, 'userId', 64) }),
  'blocks.list': () => ({ op: 'blocks.list' }),
  'users.resolve': (r) => {
    const usernames = r.usernames === undefined ? undefined : ids(r, 'usernames', 100);
    const userIds = r.userIds === undefined ? undefined : ids(r, 'userIds', 100);
    if (!usernames && !userIds) fail('usernames', 'give usernames or userIds');
    return { op: 'users.resolve', usernames, userIds };
  },
};

export function isUserOp(op: unknown): op is UserCommand['op'] {
  return typeof op === 'string' && Object.prototype.hasOwnProperty.call(decoders, op);
}

export function parseUserCommand(raw: unknown): UserCommand {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new KindredError('BAD_REQUEST', 'a command must be an object');
  const op = (raw as Raw).op;
  if (!isUserOp(op)) throw new KindredError('UNKNOWN_OPERATION', `unknown operation ${JSON.stringify(String(op)).slice(0, 80)}`);
  return (decoders[op] as (r: Raw) => UserCommand)(raw as Raw);
}
