/**
 * Message Archive Management, XEP-0313 (https://xmpp.org/extensions/xep-0313.html), urn:xmpp:mam:2,
 * with Result Set Management, XEP-0059 (https://xmpp.org/extensions/xep-0059.html), on the
 * user's own archive (an account feature): the domain's `messages.history`, whose archive ids are
 * the message ids (time-ordered UUIDv7 strings, so id order is time order).
 *
 * Query form fields (XEP-0004, FORM_TYPE urn:xmpp:mam:2):
 *   with   a bare JID (a full one counts as its bare JID) → that conversation; an unknown account
 *          → <item-not-found/>, someone never matched → <forbidden/>, the user themself → an
 *          empty result (Kindred has no notes to self)
 *   start  / end: XEP-0082 date-times, inclusive, on the archive id's timestamp
 *   anything else (before-id, after-id, ids, …: urn:xmpp:mam:2#extended) → <feature-not-implemented/>
 * RSM: `max` (default 50, capped at 100; 0 only says whether anything matches), `after=ID` → the
 * page just after ID, `before=ID` → the page just before ID, an empty `<before/>` → the last page,
 * neither → the first page (XEP-0313 §4.3: without `<before/>` results run forward from the start
 * of the range). `index` → <feature-not-implemented/>; `before` with `after` → <bad-request/>; an
 * ID that is not in the (filtered) archive → <item-not-found/>.
 *
 * Results go out first, oldest first within the page, as
 *   <message to=full id=…><result xmlns='urn:xmpp:mam:2' queryid=… id=messageId>
 *     <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp=sentAt/>
 *       <message xmlns='jabber:client' type='chat' from=sender-bare to=recipient-bare id=messageId><body/></message>
 *   </forwarded></result></message>
 * then the IQ result `<fin complete='true|false'><set><first/><last/></set></fin>`; `complete` is
 * true when nothing further matches in the paging direction (found by asking for one more
 * message than the page holds). No `<count/>` (it would cost a scan of every conversation).
 * `<flip-page/>` (#extended) → <feature-not-implemented/>.
 *
 * `messages.history` speaks newest first (`before`, exclusive) or oldest first (`after`,
 * exclusive); the cursors handed to it are id strings: the ID itself ± 1 to include it (and so
 * check that it exists in the same round trip), or an id made of a timestamp and zeros for
 * `start` / `end`.
 */
import { randomBytes } from 'node:crypto';
import { xml, type Element } from '@xmpp/xml';
import type { MessageView } from '../../domain/commands.js';
import { isId } from '../../ids.js';
import { formatJid, jid, parseJid, type Jid } from './jid.js';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import type { XmppSession } from './session.js';
import { StanzaError } from './stanza-errors.js';

export const NS_MAM = 'urn:xmpp:mam:2';
export const NS_RSM = 'http://jabber.org/protocol/rsm';
const NS_DATA = 'jabber:x:data';
const NS_FORWARD = 'urn:xmpp:forward:0';

const DEFAULT_MAX = 50;
const MAX_MAX = 100;
const MAX_QUERY_ID = 256;
const MAX_MS = 2 ** 48 - 1;

// ---- archive ids as cursors ------------------------------------------------------------------

function fromHex(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** The id right after / before `id` in id order (as 128-bit numbers): no message id lies between. */
function step(id: string, delta: 1n | -1n): string | undefined {
  const n = BigInt(`0x${id.replace(/-/g, '')}`) + delta;
  if (n < 0n || n >= 1n << 128n) return undefined;
  return fromHex(n.toString(16).padStart(32, '0'));
}

/** Below every id made in millisecond `ms` and above every earlier one. */
function timeCursor(ms: number): string {
  return fromHex(ms.toString(16).padStart(12, '0') + '0'.repeat(20));
}

const ZERO_ID = timeCursor(0);

/** Exclusive bounds on archive ids; undefined = open. */
interface Range {
  lower?: string;
  upper?: string;
}

// ---- parsing the query ---------------------------------------------------------------------

interface Filters {
  with?: string;
  start?: string;
  end?: string;
}

function parseForm(x: Element | undefined): Filters {
  const out: Filters = {};
  if (!x) return out;
  if (x.attrs.type !== undefined && x.attrs.type !== 'submit') throw new StanzaError('bad-request', 'the query form must be of type submit');
  for (const field of x.getChildren('field')) {
    const name = field.attrs.var;
    const values = field.getChildren('value').map((v) => v.text().trim());
    if (values.length > 1) throw new StanzaError('bad-request', `the field ${name} takes one value`);
    const value = values[0];
    switch (name) {
      case 'FORM_TYPE':
        if (value !== NS_MAM) throw new StanzaError('bad-request', `FORM_TYPE must be ${NS_MAM}`);
        break;
      case 'with':
      case 'start':
      case 'end':
        if (value) out[name] = value;
        break;
      default:
        throw new StanzaError('feature-not-implemented', `the field ${String(name).slice(0, 64)} is not supported`);
    }
  }
  return out;
}

const DATETIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** An XEP-0082 DateTime, in ms (fractions below a millisecond dropped). */
function parseTime(value: string, field: string): number {
  const m = DATETIME.exec(value);
  const ms = m ? Date.parse(`${m[1]}${m[2] ? m[2].slice(0, 4) : ''}${m[3]}`) : NaN;
  if (!Number.isFinite(ms)) throw new StanzaError('bad-request', `${field}: not an XEP-0082 date-time`);
  return ms;
}

interface Paging {
  max: number;
  /** '' = the last page */
  before?: string;
  after?: string;
}

function parseRsm(set: Element | undefined): Paging {
  if (!set) return { max: DEFAULT_MAX };
  if (set.getChild('index')) throw new StanzaError('feature-not-implemented', 'paging by index is not supported');
  let max = DEFAULT_MAX;
  const maxText = set.getChildText('max');
  if (maxText !== null) {
    if (!/^\s*\d{1,9}\s*$/.test(maxText)) throw new StanzaError('bad-request', 'max must be a non-negative integer');
    max = Math.min(Number(maxText), MAX_MAX);
  }
  const before = set.getChild('before');
  const after = set.getChild('after');
  if (before && after) throw new StanzaError('bad-request', 'before and after cannot be combined');
  const id = (el: Element) => {
    const v = el.text().trim();
    if (!isId(v)) throw new StanzaError('item-not-found', 'no such message in the archive');
    return v;
  };
  if (before) return { max, before: before.text().trim() === '' ? '' : id(before) };
  if (after) return { max, after: id(after) };
  return { max };
}

// ---- the module ------------------------------------------------------------------------------

export const mamModule: XmppModule = {
  name: 'mam',
  setup(ctx) {
    ctx.disco.addAccountFeature(NS_MAM);
    const bareOf = (username: string) => formatJid(jid(username, ctx.domain));

    /** the archive is the user's own: addressed to nobody or to their account */
    const ownArchive = (session: XmppSession, to: Jid | undefined) => {
      if (!to) return;
      if (!to.local) throw new StanzaError('service-unavailable', 'the server keeps no archive of its own: query your account');
      if (to.local !== session.username) throw new StanzaError('forbidden', 'not your archive');
    };

    ctx.iq('get', NS_MAM, 'query', ({ session, to }) => {
      ownArchive(session, to);
      return xml(
        'query',
        { xmlns: NS_MAM },
        xml(
          'x',
          { xmlns: NS_DATA, type: 'form' },
          xml('field', { type: 'hidden', var: 'FORM_TYPE' }, xml('value', {}, NS_MAM)),
          xml('field', { type: 'jid-single', var: 'with' }),
          xml('field', { type: 'text-single', var: 'start' }),
          xml('field', { type: 'text-single', var: 'end' }),
        ),
      );
    });

    ctx.iq('set', NS_MAM, 'query', async ({ session, payload, to }) => {
      ownArchive(session, to);
      const queryId = payload.attrs.queryid;
      if (queryId !== undefined && queryId.length > MAX_QUERY_ID) throw new StanzaError('bad-request', 'queryid is too long');
      if (payload.getChild('flip-page')) throw new StanzaError('feature-not-implemented', 'flip-page is not supported');
      const filters = parseForm(payload.getChild('x', NS_DATA));
      const paging = parseRsm(payload.getChild('set', NS_RSM));

      const range: Range = {};
      if (filters.start !== undefined) {
        const ms = parseTime(filters.start, 'start');
        if (ms > MAX_MS) range.lower = 'g'; // after every id
        else if (ms > 0) range.lower = timeCursor(ms);
      }
      if (filters.end !== undefined) {
        const ms = parseTime(filters.end, 'end');
        if (ms < MAX_MS) range.upper = timeCursor(Math.max(0, ms + 1));
      }

      let peer: string | undefined;
      if (filters.with !== undefined) {
        const w = parseJid(filters.with);
        if (!w) throw new StanzaError('jid-malformed', 'with: not a JID');
        if (!w.local || w.domain !== ctx.domain) throw new StanzaError('item-not-found', 'with: no such account here');
        if (w.local === session.username) {
          if (paging.before || paging.after) throw new StanzaError('item-not-found', 'no such message in the archive');
          return fin([], true, false);
        }
        peer = await ctx.directory.userIdOf(session.principal, w.local);
        if (!peer) throw new StanzaError('item-not-found', 'with: no such account');
      }

      const history = (args: { before?: string; after?: string; limit: number }) =>
        ctx.gateway.execute(session.principal, { op: 'messages.history', with: peer, ...args }, session.connId).then((r) => r.messages);
      const notFound = () => new StanzaError('item-not-found', 'no such message in the archive');
      /** for an ID outside the range: is it in the archive at all? */
      const mustExist = async (id: string) => {
        const [m] = await history({ before: step(id, 1n) ?? 'g', limit: 1 });
        if (m?.messageId !== id) throw notFound();
      };
      const { max } = paging;
      const inRange = (id: string) => (range.lower === undefined || id > range.lower) && (range.upper === undefined || id < range.upper);

      let page: MessageView[];
      let complete: boolean;
      let fromStart = false;
      if (paging.before !== undefined) {
        // backwards: newest first from the cursor, reversed into chronological order
        let upper = range.upper;
        let anchor: string | undefined;
        if (paging.before !== '') {
          const next = step(paging.before, 1n) ?? 'g';
          if (upper === undefined || next <= upper) {
            upper = next;
            anchor = paging.before;
          } else await mustExist(paging.before);
        }
        let list = await history({ before: upper, limit: max + 1 + (anchor ? 1 : 0) });
        if (anchor) {
          if (list[0]?.messageId !== anchor) throw notFound();
          list = list.slice(1);
        }
        const within = takeWhile(list, (m) => inRange(m.messageId));
        page = within.slice(0, max).reverse();
        complete = within.length <= max;
      } else {
        // forwards: oldest first from the cursor (or the start of the range)
        let lower = range.lower ?? ZERO_ID;
        let anchor: string | undefined;
        if (paging.after !== undefined) {
          const prev = step(paging.after, -1n) ?? '';
          if (prev >= lower) {
            lower = prev;
            anchor = paging.after;
          } else await mustExist(paging.after);
        } else fromStart = true;
        let list = await history({ after: lower, limit: max + 1 + (anchor ? 1 : 0) });
        if (anchor) {
          if (list[0]?.messageId !== anchor) throw notFound();
          list = list.slice(1);
        }
        const within = takeWhile(list, (m) => inRange(m.messageId));
        page = within.slice(0, max);
        complete = within.length <= max;
      }

      const names = await ctx.directory.usernamesOf(session.principal, [...new Set(page.flatMap((m) => [m.from, m.to]))]);
      const me = formatJid(session.jid);
      for (const m of page) {
        const from = names.get(m.from);
        const rcpt = names.get(m.to);
        if (!from || !rcpt) continue; // an account that is gone: its JID cannot be written
        session.send(
          xml(
            'message',
            { to: me, id: randomBytes(6).toString('hex') },
            xml(
              'result',
              { xmlns: NS_MAM, queryid: queryId, id: m.messageId },
              xml(
                'forwarded',
                { xmlns: NS_FORWARD },
                xml('delay', { xmlns: NS.delay, stamp: new Date(m.sentAt).toISOString() }),
                xml('message', { xmlns: NS.client, type: 'chat', from: bareOf(from), to: bareOf(rcpt), id: m.messageId }, xml('body', {}, m.body)),
              ),
            ),
          ),
        );
      }
      return fin(page, complete, fromStart);
    });
  },
};

function takeWhile<T>(list: T[], ok: (item: T) => boolean): T[] {
  const i = list.findIndex((x) => !ok(x));
  return i < 0 ? list : list.slice(0, i);
}

function fin(page: MessageView[], complete: boolean, fromStart: boolean): Element {
  const first = page[0];
  const last = page[page.length - 1];
  return xml(
    'fin',
    { xmlns: NS_MAM, complete: String(complete) },
    xml(
      'set',
      { xmlns: NS_RSM },
      first ? xml('first', { index: fromStart ? '0' : undefined }, first.messageId) : null,
      last ? xml('last', {}, last.messageId) : null,
    ),
  );
}
