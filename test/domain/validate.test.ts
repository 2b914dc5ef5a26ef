/**
 * parseUserCommand: the one decoder every transport's input passes through.
 */
import t from 'tap';
import { isUserOp, parseUserCommand } from '../../src/domain/validate.js';
import { KindredError } from '../../src/errors.js';
import type { UserCommand } from '../../src/domain/commands.js';

const ID = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const ID2 = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c';

function defined(v: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined));
}

/** Every op with valid arguments and the command it must decode to. */
const valid: Array<[Record<string, unknown>, UserCommand]> = [
  [{ op: 'logout' }, { op: 'logout' }],
  [{ op: 'ping' }, { op: 'ping' }],
  [{ op: 'profile.get' }, { op: 'profile.get' }],
  [{ op: 'profile.get', userId: ID }, { op: 'profile.get', userId: ID }],
  [{ op: 'profile.update', patch: { displayName: 'A', bio: '' } }, { op: 'profile.update', patch: { displayName: 'A', bio: '' } }],
  [{ op: 'images.upload', data: new Uint8Array([1, 2, 3]), contentType: 'image/png' }, { op: 'images.upload', data: new Uint8Array([1, 2, 3]), contentType: 'image/png' }],
  [{ op: 'images.upload', data: Buffer.from([9]), contentType: 'image/jpeg' }, { op: 'images.upload', data: Buffer.from([9]), contentType: 'image/jpeg' }],
  [{ op: 'images.list' }, { op: 'images.list' }],
  [{ op: 'images.list', userId: ID }, { op: 'images.list', userId: ID }],
  [{ op: 'images.remove', imageId: ID }, { op: 'images.remove', imageId: ID }],
  [{ op: 'images.reorder', imageIds: [ID, ID2] }, { op: 'images.reorder', imageIds: [ID, ID2] }],
  [{ op: 'images.reorder', imageIds: [] }, { op: 'images.reorder', imageIds: [] }],
  [{ op: 'deck.get' }, { op: 'deck.get' }],
  [{ op: 'deck.get', limit: 1 }, { op: 'deck.get', limit: 1 }],
  [{ op: 'deck.get', limit: 100 }, { op: 'deck.get', limit: 100 }],
  [{ op: 'swipe', targetId: ID, kind: 'like' }, { op: 'swipe', targetId: ID, kind: 'like' }],
  [{ op: 'swipe', targetId: ID, kind: 'pass' }, { op: 'swipe', targetId: ID, kind: 'pass' }],
  [{ op: 'swipe', targetId: ID, kind: 'superlike' }, { op: 'swipe', targetId: ID, kind: 'superlike' }],
  [{ op: 'matches.list' }, { op: 'matches.list' }],
  [{ op: 'unmatch', userId: ID }, { op: 'unmatch', userId: ID }],
  [{ op: 'block', userId: ID }, { op: 'block', userId: ID }],
  [{ op: 'report', userId: ID, reason: 'spam' }, { op: 'report', userId: ID, reason: 'spam' }],
  [{ op: 'report', userId: ID, reason: 'spam', details: '' }, { op: 'report', userId: ID, reason: 'spam', details: '' }],
  [{ op: 'report', userId: ID, reason: 'spam', details: 'x'.repeat(2000) }, { op: 'report', userId: ID, reason: 'spam', details: 'x'.repeat(2000) }],
  [{ op: 'message.send', to: ID, body: 'hi' }, { op: 'message.send', to: ID, body: 'hi' }],
  [{ op: 'message.send', to: ID, body: 'hi', clientId: 'c-1' }, { op: 'message.send', to: ID, body: 'hi', clientId: 'c-1' }],
  [{ op: 'messages.history', with: ID }, { op: 'messages.history', with: ID }],
  [{ op: 'messages.history', after: ID }, { op: 'messages.history', after: ID }],
  [{ op: 'presence.set', show: 'dnd', status: 'busy' }, { op: 'presence.set', show: 'dnd', status: 'busy' }],
  [{ op: 'contact.add', userId: ID }, { op: 'contact.add', userId: ID }],
  [{ op: 'blocks.list' }, { op: 'blocks.list' }],
  [{ op: 'message.ack', messageIds: [ID] }, { op: 'message.ack', messageIds: [ID] }],
  [{ op: 'users.resolve', usernames: ['alice'] }, { op: 'users.resolve', usernames: ['alice'] }],
  [{ op: 'messages.history', with: ID, before: ID2, limit: 200 }, { op: 'messages.history', with: ID, before: ID2, limit: 200 }],
  [{ op: 'receipt', to: ID, messageId: ID2, kind: 'delivered' }, { op: 'receipt', to: ID, messageId: ID2, kind: 'delivered' }],
  [{ op: 'receipt', to: ID, messageId: ID2, kind: 'read' }, { op: 'receipt', to: ID, messageId: ID2, kind: 'read' }],
  [{ op: 'typing', to: ID, state: 'composing' }, { op: 'typing', to: ID, state: 'composing' }],
  [{ op: 'typing', to: ID, state: 'paused' }, { op: 'typing', to: ID, state: 'paused' }],
  [{ op: 'presence.get', userIds: [ID, ID2] }, { op: 'presence.get', userIds: [ID, ID2] }],
];

t.test('every op decodes with valid arguments', async (t) => {
  const ops = new Set<string>();
  for (const [raw, expected] of valid) {
    const got = parseUserCommand(raw) as unknown as Record<string, unknown>;
    t.same(defined(got), expected, `${String(raw.op)} ${JSON.stringify(Object.keys(raw))}`);
    ops.add(String(raw.op));
  }
  const all = ['logout', 'ping', 'profile.get', 'profile.update', 'images.upload', 'images.list', 'images.remove', 'images.reorder', 'deck.get', 'swipe', 'matches.list', 'unmatch', 'block', 'report', 'message.send', 'messages.history', 'receipt', 'typing', 'presence.get', 'presence.set', 'contact.add', 'blocks.list', 'message.ack', 'users.resolve'];
  t.same([...ops].sort(), [...all].sort(), 'the table covers every user op');
  for (const op of all) t.ok(isUserOp(op), `${op} is a user op`);
});

t.test('decoded commands carry only their own fields', async (t) => {
  const got = parseUserCommand({ op: 'swipe', targetId: ID, kind: 'like', admin: true, __proto__: { polluted: 1 } }) as unknown as Record<string, unknown>;
  t.same(Object.keys(got).sort(), ['kind', 'op', 'targetId']);
  t.equal((got as { polluted?: unknown }).polluted, undefined);
  const send = parseUserCommand({ op: 'message.send', to: ID, body: 'x', extra: 'y' });
  t.notOk('extra' in send);
});

/** [raw command, the field the refusal must name] */
const invalid: Array<[Record<string, unknown>, string]> = [
  [{ op: 'profile.get', userId: 42 }, 'userId'],
  [{ op: 'profile.get', userId: '' }, 'userId'],
  [{ op: 'profile.get', userId: 'x'.repeat(65) }, 'userId'],
  [{ op: 'profile.update' }, 'patch'],
  [{ op: 'profile.update', patch: 'name=x' }, 'patch'],
  [{ op: 'profile.update', patch: null }, 'patch'],
  [{ op: 'profile.update', patch: [1] }, 'patch'],
  [{ op: 'images.upload', data: 'aGVsbG8=', contentType: 'image/png' }, 'data'],
  [{ op: 'images.upload', data: [1, 2, 3], contentType: 'image/png' }, 'data'],
  [{ op: 'images.upload', contentType: 'image/png' }, 'data'],
  [{ op: 'images.upload', data: new Uint8Array(1) }, 'contentType'],
  [{ op: 'images.upload', data: new Uint8Array(1), contentType: 7 }, 'contentType'],
  [{ op: 'images.list', userId: true }, 'userId'],
  [{ op: 'images.remove' }, 'imageId'],
  [{ op: 'images.remove', imageId: 5 }, 'imageId'],
  [{ op: 'images.reorder', imageIds: ID }, 'imageIds'],
  [{ op: 'images.reorder', imageIds: [ID, 3] }, 'imageIds'],
  [{ op: 'images.reorder', imageIds: [ID, ID, ID, ID, ID, ID] }, 'imageIds'],
  [{ op: 'images.reorder' }, 'imageIds'],
  [{ op: 'deck.get', limit: 'x' }, 'limit'],
  [{ op: 'deck.get', limit: 0 }, 'limit'],
  [{ op: 'deck.get', limit: 101 }, 'limit'],
  [{ op: 'deck.get', limit: 2.5 }, 'limit'],
  [{ op: 'swipe', targetId: ID, kind: 'love' }, 'kind'],
  [{ op: 'swipe', targetId: ID }, 'kind'],
  [{ op: 'swipe', targetId: ID, kind: 1 }, 'kind'],
  [{ op: 'swipe', targetId: 12345, kind: 'like' }, 'targetId'],
  [{ op: 'swipe', kind: 'like' }, 'targetId'],
  [{ op: 'swipe', targetId: ['a'], kind: 'like' }, 'targetId'],
  [{ op: 'unmatch' }, 'userId'],
  [{ op: 'unmatch', userId: {} }, 'userId'],
  [{ op: 'block', userId: null }, 'userId'],
  [{ op: 'report', userId: ID }, 'reason'],
  [{ op: 'report', userId: ID, reason: 3 }, 'reason'],
  [{ op: 'report', userId: ID, reason: 'spam', details: 9 }, 'details'],
  [{ op: 'report', userId: ID, reason: 'spam', details: 'x'.repeat(2001) }, 'details'],
  [{ op: 'report', reason: 'spam' }, 'userId'],
  [{ op: 'message.send', to: ID }, 'body'],
  [{ op: 'message.send', to: ID, body: '' }, 'body'],
  [{ op: 'message.send', to: ID, body: 42 }, 'body'],
  [{ op: 'message.send', to: ID, body: 'x'.repeat(100_001) }, 'body'],
  [{ op: 'message.send', body: 'hi' }, 'to'],
  [{ op: 'message.send', to: 1, body: 'hi' }, 'to'],
  [{ op: 'message.send', to: ID, body: 'hi', clientId: 5 }, 'clientId'],
  [{ op: 'message.send', to: ID, body: 'hi', clientId: 'c'.repeat(65) }, 'clientId'],
  [{ op: 'messages.history', with: 7 }, 'with'],
  [{ op: 'messages.history', before: ID, after: ID2 }, 'after'],
  [{ op: 'presence.set', show: 'asleep' }, 'show'],
  [{ op: 'presence.set', show: 'away', status: 5 }, 'status'],
  [{ op: 'contact.add' }, 'userId'],
  [{ op: 'message.ack', messageIds: 'x' }, 'messageIds'],
  [{ op: 'users.resolve' }, 'usernames'],
  [{ op: 'users.resolve', userIds: [1] }, 'userIds'],
  [{ op: 'messages.history', with: ID, limit: '10' }, 'limit'],
  [{ op: 'messages.history', with: ID, limit: 201 }, 'limit'],
  [{ op: 'messages.history', with: ID, before: 99 }, 'before'],
  [{ op: 'receipt', to: ID, messageId: ID2, kind: 'seen' }, 'kind'],
  [{ op: 'receipt', to: ID, kind: 'read' }, 'messageId'],
  [{ op: 'receipt', messageId: ID2, kind: 'read' }, 'to'],
  [{ op: 'typing', to: ID, state: 'typing' }, 'state'],
  [{ op: 'typing', to: ID }, 'state'],
  [{ op: 'typing', to: false, state: 'paused' }, 'to'],
  [{ op: 'presence.get' }, 'userIds'],
  [{ op: 'presence.get', userIds: 'a,b' }, 'userIds'],
  [{ op: 'presence.get', userIds: [''] }, 'userIds'],
  [{ op: 'presence.get', userIds: Array.from({ length: 101 }, () => ID) }, 'userIds'],
];

t.test('wrong types and values are INVALID_ARGUMENT naming the field', async (t) => {
  for (const [raw, field] of invalid) {
    const label = `${String(raw.op)} ${JSON.stringify(raw, (_k, v) => (typeof v === 'string' && v.length > 20 ? `<${v.length} chars>` : Array.isArray(v) && v.length > 6 ? `<${v.length} items>` : v))}`;
    try {
      parseUserCommand(raw);
      t.fail(`accepted ${label}`);
    } catch (err) {
      t.ok(err instanceof KindredError, `${label}: a KindredError`);
      t.equal((err as KindredError).code, 'INVALID_ARGUMENT', `${label}: INVALID_ARGUMENT`);
      t.match((err as KindredError).message, new RegExp(`^${field.replace('.', '\\.')}: `), `${label}: names ${field}`);
    }
  }
});

t.test('specific messages', async (t) => {
  t.throws(() => parseUserCommand({ op: 'swipe', targetId: ID, kind: 'love' }), { code: 'INVALID_ARGUMENT', message: 'kind: must be one of like, pass, superlike' });
  t.throws(() => parseUserCommand({ op: 'swipe', targetId: 12345, kind: 'like' }), { code: 'INVALID_ARGUMENT', message: 'targetId: must be a string' });
  t.throws(() => parseUserCommand({ op: 'deck.get', limit: 'x' }), { code: 'INVALID_ARGUMENT', message: 'limit: must be an integer from 1 to 100' });
  t.throws(() => parseUserCommand({ op: 'message.send', to: ID }), { code: 'INVALID_ARGUMENT', message: 'body: is required' });
  t.throws(() => parseUserCommand({ op: 'message.send', to: ID, body: '' }), { code: 'INVALID_ARGUMENT', message: 'body: must not be empty' });
});

t.test('unknown operations', async (t) => {
  for (const op of ['nope', 'SWIPE', 'swipe ', '', 'auth', 'login', 'register', 'constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    t.notOk(isUserOp(op), `${JSON.stringify(op)} is not a user op`);
    t.throws(() => parseUserCommand({ op }), { code: 'UNKNOWN_OPERATION' }, `op ${JSON.stringify(op)}`);
  }
  for (const op of [undefined, null, 42, ['swipe'], { name: 'swipe' }]) {
    t.throws(() => parseUserCommand({ op }), { code: 'UNKNOWN_OPERATION' }, `op ${JSON.stringify(op)}`);
  }
  t.throws(() => parseUserCommand({}), { code: 'UNKNOWN_OPERATION' }, 'no op at all');
  t.match((() => { try { parseUserCommand({ op: 'frobnicate' }); } catch (e) { return (e as Error).message; } return ''; })(), /frobnicate/, 'the message names the op');
});

t.test('a command that is not an object is BAD_REQUEST', async (t) => {
  for (const raw of [null, undefined, 'swipe', 42, ['swipe'], true]) {
    t.throws(() => parseUserCommand(raw), { code: 'BAD_REQUEST' }, JSON.stringify(raw) ?? 'undefined');
  }
});
