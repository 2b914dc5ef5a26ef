/**
 * SASL authentication, RFC 6120 §6 (https://www.rfc-editor.org/rfc/rfc6120#section-6), with
 * SCRAM-SHA-256 (RFC 7677), SCRAM-SHA-1 (RFC 5802) and PLAIN (RFC 4616). The SCRAM arithmetic
 * lives in the domain (`gateway.startScram`, checked against stored verifiers); this module only
 * moves base64 across the wire.
 *
 * PLAIN is offered only under TLS. With `xmpp.requireTls`, no mechanism is offered before
 * STARTTLS (a loopback WebSocket counts as secure: a local TLS proxy). After five failures the
 * stream is closed.
 */
import { xml, type Element } from '@xmpp/xml';
import { KindredError } from '../../errors.js';
import type { Principal } from '../../domain/gateway.js';
import type { ModuleContext, XmppModule } from './module.js';
import { NS } from './ns.js';
import type { XmppSession } from './session.js';
import { StreamError } from './stanza-errors.js';

type Mechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-1' | 'PLAIN';
type SaslFailure =
  | 'aborted'
  | 'account-disabled'
  | 'encryption-required'
  | 'incorrect-encoding'
  | 'invalid-authzid'
  | 'invalid-mechanism'
  | 'malformed-request'
  | 'not-authorized'
  | 'temporary-auth-failure';

const MAX_FAILURES = 5;
const MAX_SASL_CHARS = 8192;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

interface SaslState {
  failures: number;
  /** `<auth/>` came without an initial response: the next `<response/>` is it */
  awaitingInitial?: Mechanism;
  scram?: { finish(clientFinal: string): Promise<{ serverFinal: string; principal: Principal }>; authcid: string };
}

/** The mechanisms this session may use now. */
export function offeredMechanisms(session: XmppSession, requireTls: boolean): Mechanism[] {
  if (requireTls && !session.confidential) return [];
  return session.encrypted ? ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'] : ['SCRAM-SHA-256', 'SCRAM-SHA-1'];
}

/** Base64 payload of `<auth/>`/`<response/>`: null when absent, Buffer otherwise ('=' is empty). */
function payloadOf(el: Element): Buffer | null | 'bad' {
  const text = el.getText().replace(/\s+/g, '');
  if (text === '') return null;
  if (text === '=') return Buffer.alloc(0);
  if (text.length > MAX_SASL_CHARS || !BASE64.test(text)) return 'bad';
  return Buffer.from(text, 'base64');
}

function decodeSaslName(name: string): string {
  return name.replace(/=2C/gi, ',').replace(/=3D/gi, '=');
}

export const saslModule: XmppModule = {
  name: 'sasl',
  setup(ctx: ModuleContext) {
    const requireTls = ctx.config.xmpp.requireTls;
    const state = ctx.sessionState<SaslState>(() => ({ failures: 0 }));

    ctx.preAuthFeature((session) => {
      const mechs = offeredMechanisms(session, requireTls);
      if (mechs.length === 0) return null;
      return xml('mechanisms', { xmlns: NS.sasl }, ...mechs.map((m) => xml('mechanism', {}, m)));
    });

    const failure = (session: XmppSession, condition: SaslFailure, text?: string) => {
      const s = state.get(session);
      s.awaitingInitial = undefined;
      s.scram = undefined;
      session.sendNonza(xml('failure', { xmlns: NS.sasl }, xml(condition), text ? xml('text', { 'xml:lang': 'en' }, text) : null));
      if (condition !== 'aborted' && ++s.failures >= MAX_FAILURES) {
        session.close(new StreamError('policy-violation', 'too many failed authentication attempts'));
      }
    };

    const fromKindred = (session: XmppSession, err: unknown) => {
      if (err instanceof KindredError) {
        switch (err.code) {
          case 'BAD_CREDENTIALS':
          case 'INVALID_ARGUMENT':
          case 'NOT_FOUND':
            return failure(session, 'not-authorized');
          case 'FORBIDDEN':
            return failure(session, 'account-disabled');
          case 'BAD_REQUEST':
            return failure(session, 'malformed-request', err.message);
          case 'INTERNAL':
            break;
          default:
            return failure(session, 'temporary-auth-failure');
        }
      }
      ctx.log.error({ err }, 'SASL step failed');
      failure(session, 'temporary-auth-failure');
    };

    /**
     * `authcid` is the name the account was found by, normalized the way the domain does
     * (trimmed, lower case; accounts are stored so), so it is the account's username: no
     * lookup per login, and the directory learns it for the roster and presence that follow.
     */
    const succeed = (session: XmppSession, principal: Principal, authcid: string, additional?: string) => {
      const username = authcid.trim().toLowerCase();
      ctx.directory.learn(principal.userId, username);
      if (session.isClosed) return;
      // SASL is over for this stream (RFC 6120 §6.4.6: no second authentication): drop its state.
      state.delete(session);
      // The new parser is in place before <success/> leaves: the client's next bytes are a new header.
      session.authenticated(principal, username);
      session.sendNonza(xml('success', { xmlns: NS.sasl }, additional !== undefined ? Buffer.from(additional).toString('base64') : null));
    };

    /** The first message of a mechanism (initial response, or the response to an empty challenge). */
    const begin = async (session: XmppSession, mech: Mechanism, data: Buffer) => {
      if (mech === 'PLAIN') {
        const parts = data.toString('utf8').split('\0');
        if (parts.length !== 3 || !parts[1] || !parts[2]) return failure(session, 'malformed-request', 'PLAIN wants authzid NUL authcid NUL password');
        const [authzid, authcid, password] = parts as [string, string, string];
        const username = authcid.trim().toLowerCase();
        if (authzid && authzid.toLowerCase() !== username && authzid.toLowerCase() !== `${username}@${ctx.domain}`) {
          return failure(session, 'invalid-authzid');
        }
        const { principal } = await ctx.gateway.authenticate({ op: 'login', username, password });
        return succeed(session, principal, username);
      }
      const clientFirst = data.toString('utf8');
      const exchange = await ctx.gateway.startScram(mech, clientFirst);
      const authcid = decodeSaslName(/(?:^|,)n=([^,]*)/.exec(clientFirst.replace(/^[^,]*,[^,]*,/, ''))?.[1] ?? '').toLowerCase();
      state.get(session).scram = { finish: (m) => exchange.finish(m), authcid };
      session.sendNonza(xml('challenge', { xmlns: NS.sasl }, Buffer.from(exchange.serverFirst).toString('base64')));
    };

    ctx.onNonza(
      NS.sasl,
      'auth',
      async (session, el) => {
        const s = state.get(session);
        s.awaitingInitial = undefined;
        s.scram = undefined;
        const offered = offeredMechanisms(session, requireTls);
        if (offered.length === 0) return failure(session, 'encryption-required', 'use STARTTLS first');
        const mech = el.attrs.mechanism as Mechanism;
        if (!offered.includes(mech)) return failure(session, 'invalid-mechanism');
        const data = payloadOf(el);
        if (data === 'bad') return failure(session, 'incorrect-encoding');
        if (data === null) {
          s.awaitingInitial = mech;
          session.sendNonza(xml('challenge', { xmlns: NS.sasl }));
          return;
        }
        try {
          await begin(session, mech, data);
        } catch (err) {
          fromKindred(session, err);
        }
      },
      { phase: 'preauth' },
    );

    ctx.onNonza(
      NS.sasl,
      'response',
      async (session, el) => {
        const s = state.get(session);
        const data = payloadOf(el);
        if (data === 'bad') return failure(session, 'incorrect-encoding');
        try {
          if (s.awaitingInitial) {
            const mech = s.awaitingInitial;
            s.awaitingInitial = undefined;
            await begin(session, mech, data ?? Buffer.alloc(0));
          } else if (s.scram) {
            const scram = s.scram;
            s.scram = undefined;
            const { serverFinal, principal } = await scram.finish((data ?? Buffer.alloc(0)).toString('utf8'));
            await succeed(session, principal, scram.authcid, serverFinal);
          } else {
            failure(session, 'malformed-request', 'no authentication in progress');
          }
        } catch (err) {
          fromKindred(session, err);
        }
      },
      { phase: 'preauth' },
    );

    ctx.onNonza(NS.sasl, 'abort', (session) => failure(session, 'aborted'), { phase: 'preauth' });
  },
};
