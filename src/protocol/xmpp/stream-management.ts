/**
 * Stream Management, XEP-0198 (https://xmpp.org/extensions/xep-0198.html), urn:xmpp:sm:3.
 *
 * Acks. After `<enable/>` (once a resource is bound) both sides count stanzas. Inbound, `h` counts
 * stanzas *handled*: the session's `onStanzaHandled` hook fires after a handler's durable work
 * (a chat message is persisted before it counts), so an `<a h/>` from here acknowledges only what
 * is safe. Outbound, a middleware next to the wire numbers every stanza and keeps it, with its
 * `onAcked`, until the client's `<a h/>` covers it: for chat messages `onAcked` is what sends
 * `message.ack` to the domain, so a message counts as delivered only once the client said so.
 * The server asks for acks (`<r/>`) after every few stanzas or after a short delay. An `h` beyond
 * what was sent ends the stream (`<undefined-condition/>` + `<handled-count-too-high/>`); so does
 * a client that lets more than MAX_UNACKED stanzas pile up (`<policy-violation/>`): what it never
 * acknowledged stays pending in the domain and is replayed at its next login.
 *
 * Two miscounts of a real client are tolerated rather than fatal, because both only ever make a
 * client claim stanzas it did receive: @xmpp/client 0.14 resets its count in a promise
 * continuation after `<enabled/>`, so when `<enabled/>` shares a read with later stanzas its
 * first `h` also counts what it got between bind and `<enabled/>` (pending messages replayed at
 * login), and its next `h` then falls back below that. An `h` behind the last one acknowledges
 * nothing new; an `h` too high by no more than the stanzas sent between bind and `<enabled/>`
 * acknowledges everything sent so far. Anything higher is still the error above.
 *
 * Resumption. With `resume='true'` the session outlives its transport for `max` seconds
 * (`xmpp.resumeTimeoutSeconds`): domain events keep flowing into the unacked queue. A new stream
 * authenticated as the same user sends `<resume previd h/>`; it gets `<resumed/>`, the old
 * session takes over its transport and re-sends what the client had not acknowledged. An unknown
 * or expired id gets `<failed><item-not-found/></failed>` and the client binds afresh. When the
 * timer runs out the session ends; its unacknowledged messages were never `message.ack`ed, so the
 * domain replays them, with delay stamps, at the next login.
 */
import { randomBytes } from 'node:crypto';
import { xml, type Element } from '@xmpp/xml';
import type { XmppModule } from './module.js';
import { NS } from './ns.js';
import type { XmppSession } from './session.js';
import { StreamError } from './stanza-errors.js';

export const NS_SM = 'urn:xmpp:sm:3';

/** Unacknowledged outbound stanzas one session may hold; beyond it the stream is closed. */
export const MAX_UNACKED = 1000;
/** Ask for an ack after this many stanzas without one… */
export const REQUEST_EVERY = 5;
/** …or this long after the first unrequested one. */
export const REQUEST_DELAY_MS = 500;
/** Hibernating sessions one user may keep; the oldest goes when another one detaches. */
export const MAX_HIBERNATING_PER_USER = 5;

/** Counters are unsigned 32-bit and wrap (XEP-0198 §4). */
const WRAP = 2 ** 32;
const mod = (n: number) => ((n % WRAP) + WRAP) % WRAP;

interface Unacked {
  stanza: Element;
  onAcked: (() => void) | undefined;
  queuedAt: number;
}

interface SmState {
  /** the resumption id (resumable sessions only) */
  id: string | undefined;
  /** seconds a detached session waits for <resume/> */
  max: number;
  /** inbound stanzas handled since <enable/> (the h we report) */
  handled: number;
  /** outbound stanzas the client has acknowledged (its last h) */
  acked: number;
  /** stanzas sent after bind and before <enabled/>: how far an `h` may overshoot (see the header) */
  sentBeforeEnable: number;
  /** outbound stanzas not yet acknowledged; queue[0] is number acked + 1 */
  queue: Unacked[];
  sinceRequest: number;
  requestTimer: NodeJS.Timeout | undefined;
  resumeTimer: NodeJS.Timeout | undefined;
  /** when the transport went away (picks the oldest hibernating session to drop) */
  detachedAt: number;
}

/** RFC 6120 §4.9.4: <undefined-condition/> with XEP-0198's application-specific condition. */
class HandledCountTooHigh extends StreamError {
  constructor(
    readonly h: number,
    readonly sendCount: number,
  ) {
    super('undefined-condition', `you acknowledged ${h} stanzas, but only ${sendCount} were sent`);
  }

  override toElement(): Element {
    const el = super.toElement();
    el.append(xml('handled-count-too-high', { xmlns: NS_SM, h: String(this.h), 'send-count': String(this.sendCount) }));
    return el;
  }
}

/** An `h` attribute: an unsigned 32-bit integer, or undefined. */
function parseH(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined;
  const n = Number(v);
  return n < WRAP ? n : undefined;
}

const failed = (condition: string, h?: number) =>
  xml('failed', { xmlns: NS_SM, h: h === undefined ? undefined : String(h) }, xml(condition, { xmlns: NS.stanzaErrors }));

export const streamManagementModule: XmppModule = {
  name: 'stream-management',
  setup(ctx) {
    const states = ctx.sessionState<SmState | undefined>(() => undefined);
    /** resumable sessions by id (insertion order = oldest first) */
    const resumable = new Map<string, XmppSession>();
    /** stanzas sent to a bound session that has not enabled stream management (yet) */
    const sentUnmanaged = ctx.sessionState<number>(() => 0);

    const stateOf = (session: XmppSession) => states.peek(session);

    const requestAck = (session: XmppSession, st: SmState) => {
      if (st.requestTimer) clearTimeout(st.requestTimer);
      st.requestTimer = undefined;
      st.sinceRequest = 0;
      if (session.isDetached || session.isClosed || st.queue.length === 0) return;
      session.sendNonza(xml('r', { xmlns: NS_SM }));
    };

    /** Drops the stanzas `h` acknowledges and runs their onAcked; false if `h` is too high. */
    const ackUpTo = (session: XmppSession, st: SmState, h: number): boolean => {
      let n = mod(h - st.acked);
      if (n >= WRAP / 2) return true; // behind the last h: nothing new (the header says why)
      if (n > st.queue.length) {
        if (n - st.queue.length > st.sentBeforeEnable) return false;
        n = st.queue.length; // it also counted what came before <enabled/>
      }
      st.acked = mod(st.acked + n);
      for (const item of st.queue.splice(0, n)) {
        try {
          item.onAcked?.();
        } catch (err) {
          ctx.log.error({ err }, 'onAcked failed');
        }
      }
      return true;
    };

    const tooHigh = (st: SmState, h: number) => new HandledCountTooHigh(h, mod(st.acked + st.queue.length));

    const forget = (session: XmppSession, st: SmState) => {
      if (st.requestTimer) clearTimeout(st.requestTimer);
      if (st.resumeTimer) clearTimeout(st.resumeTimer);
      st.requestTimer = st.resumeTimer = undefined;
      if (st.id && resumable.get(st.id) === session) resumable.delete(st.id);
    };

    // Offered after authentication, next to <bind/>: to enable once bound, or to resume instead of binding.
    ctx.streamFeature((session) => (session.phase === 'postauth' ? xml('sm', { xmlns: NS_SM }) : null));

    ctx.onNonza(
      NS_SM,
      'enable',
      (session, el) => {
        // §3: only after binding, and only once.
        if (!session.isBound || stateOf(session)) {
          session.sendNonza(failed('unexpected-request'));
          return;
        }
        const wantsResume = el.attrs.resume === 'true' || el.attrs.resume === '1';
        const preferred = Number(el.attrs.max);
        const configured = ctx.config.xmpp.resumeTimeoutSeconds;
        const max = Number.isInteger(preferred) && preferred > 0 ? Math.min(preferred, configured) : configured;
        const id = wantsResume && max > 0 ? randomBytes(18).toString('base64url') : undefined;
        const sentBeforeEnable = sentUnmanaged.peek(session) ?? 0;
        sentUnmanaged.delete(session);
        const st: SmState = { id, max, handled: 0, acked: 0, sentBeforeEnable, queue: [], sinceRequest: 0, requestTimer: undefined, resumeTimer: undefined, detachedAt: 0 };
        states.set(session, st);
        if (id) resumable.set(id, session);
        session.sendNonza(xml('enabled', { xmlns: NS_SM, id, resume: id ? 'true' : undefined, max: id ? String(max) : undefined }));
      },
      { phase: 'postauth' },
    );

    ctx.onNonza(NS_SM, 'r', (session) => {
      const st = stateOf(session);
      if (!st) throw new StreamError('unsupported-stanza-type', 'stream management is not enabled');
      session.sendNonza(xml('a', { xmlns: NS_SM, h: String(st.handled) }));
    });

    ctx.onNonza(NS_SM, 'a', (session, el) => {
      const st = stateOf(session);
      if (!st) throw new StreamError('unsupported-stanza-type', 'stream management is not enabled');
      const h = parseH(el.attrs.h);
      if (h === undefined) throw new StreamError('undefined-condition', "<a/> needs an 'h' counter");
      if (!ackUpTo(session, st, h)) throw tooHigh(st, h);
    });

    ctx.onNonza(
      NS_SM,
      'resume',
      (session, el) => {
        if (session.isBound || stateOf(session)) {
          session.sendNonza(failed('unexpected-request'));
          return;
        }
        const h = parseH(el.attrs.h);
        const previd = el.attrs.previd ?? '';
        const old = resumable.get(previd);
        // Another user's session is "not found" as well: ids are not to be probed.
        if (h === undefined || !old || old === session || old.isClosed || old.userId !== session.userId) {
          session.sendNonza(failed('item-not-found'));
          return;
        }
        const st = stateOf(old)!;
        if (!ackUpTo(old, st, h)) {
          // The old session's state cannot be trusted any more: it ends, its messages stay pending.
          const err = tooHigh(st, h);
          old.end();
          throw err;
        }
        if (st.resumeTimer) clearTimeout(st.resumeTimer);
        st.resumeTimer = undefined;
        // <resumed/> goes out first, on the new stream's transport; then the old session owns it.
        session.sendNonza(xml('resumed', { xmlns: NS_SM, previd, h: String(st.handled) }));
        old.resumeWith(session);
        for (const item of st.queue) {
          const s = item.stanza;
          // Held back for a while: say so (XEP-0203), as offline messages do. A copy: the element
          // may be shared with other sessions.
          if (s.name === 'message' && !s.getChild('delay', NS.delay)) {
            item.stanza = xml(s.name, { ...s.attrs }, ...s.children, xml('delay', { xmlns: NS.delay, from: ctx.domain, stamp: new Date(item.queuedAt).toISOString() }));
          }
          old.sendNonza(item.stanza); // already numbered: a direct write
        }
        requestAck(old, st);
        ctx.log.debug({ connId: old.connId, resent: st.queue.length }, 'session resumed');
      },
      { phase: 'postauth' },
    );

    ctx.onStanzaHandled((session) => {
      const st = stateOf(session);
      if (st) st.handled = mod(st.handled + 1);
    });

    // Closest to the wire: number, keep, and hold onAcked until the client's <a/>.
    ctx.outbound((session, out, next) => {
      const st = stateOf(session);
      if (!st) {
        if (session.isBound) sentUnmanaged.set(session, (sentUnmanaged.peek(session) ?? 0) + 1);
        return next(out);
      }
      if (st.queue.length >= MAX_UNACKED) {
        session.close(new StreamError('policy-violation', `more than ${MAX_UNACKED} stanzas unacknowledged`));
        return;
      }
      st.queue.push({ stanza: out.stanza, onAcked: out.onAcked, queuedAt: Date.now() });
      next({ stanza: out.stanza });
      if (session.isDetached || session.isClosed) return;
      if (++st.sinceRequest >= REQUEST_EVERY) requestAck(session, st);
      else if (!st.requestTimer) {
        st.requestTimer = setTimeout(() => requestAck(session, st), REQUEST_DELAY_MS);
        st.requestTimer.unref();
      }
    }, -1000);

    ctx.onTransportLost((session) => {
      const st = stateOf(session);
      if (!st) return false;
      if (st.requestTimer) clearTimeout(st.requestTimer);
      st.requestTimer = undefined;
      st.sinceRequest = 0;
      if (!st.id) return false;
      st.detachedAt = Date.now();
      if (st.resumeTimer) clearTimeout(st.resumeTimer);
      st.resumeTimer = setTimeout(() => {
        ctx.log.debug({ connId: session.connId, unacked: st.queue.length }, 'resumption window expired');
        session.end();
      }, st.max * 1000);
      st.resumeTimer.unref();
      // A client that keeps dropping its connections does not get to keep them all open.
      const hibernating = [...resumable.values()]
        .filter((s) => s !== session && s.isDetached && s.userId === session.userId)
        .sort((x, y) => stateOf(x)!.detachedAt - stateOf(y)!.detachedAt);
      for (const s of hibernating.slice(0, Math.max(0, hibernating.length + 1 - MAX_HIBERNATING_PER_USER))) s.end();
      return true;
    });

    ctx.onSessionEnd((session) => {
      const st = stateOf(session);
      if (!st) return;
      forget(session, st);
      // Never acknowledged: no onAcked, so the domain still holds these messages as pending.
      st.queue = [];
    });

    return () => {
      for (const session of resumable.values()) {
        const st = stateOf(session);
        if (st) forget(session, st);
      }
      resumable.clear();
    };
  },
};
