/**
 * Stanza errors (RFC 6120 §8.3, https://www.rfc-editor.org/rfc/rfc6120#section-8.3) and stream
 * errors (RFC 6120 §4.9). KindredError codes (src/errors.ts) map to stanza errors here, in one
 * place, the way REST maps them to HTTP statuses.
 */
import { xml, type Element } from '@xmpp/xml';
import { KindredError, type ErrorCode } from '../../errors.js';
import { NS } from './ns.js';

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

export type StanzaErrorCondition =
  | 'bad-request'
  | 'conflict'
  | 'feature-not-implemented'
  | 'forbidden'
  | 'gone'
  | 'internal-server-error'
  | 'item-not-found'
  | 'jid-malformed'
  | 'not-acceptable'
  | 'not-allowed'
  | 'not-authorized'
  | 'policy-violation'
  | 'recipient-unavailable'
  | 'redirect'
  | 'registration-required'
  | 'remote-server-not-found'
  | 'remote-server-timeout'
  | 'resource-constraint'
  | 'service-unavailable'
  | 'subscription-required'
  | 'undefined-condition'
  | 'unexpected-request';

/** The default error type for each condition (RFC 6120 §8.3.3). */
const DEFAULT_TYPE: Record<StanzaErrorCondition, StanzaErrorType> = {
  'bad-request': 'modify',
  conflict: 'cancel',
  'feature-not-implemented': 'cancel',
  forbidden: 'auth',
  gone: 'cancel',
  'internal-server-error': 'cancel',
  'item-not-found': 'cancel',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'not-allowed': 'cancel',
  'not-authorized': 'auth',
  'policy-violation': 'modify',
  'recipient-unavailable': 'wait',
  redirect: 'modify',
  'registration-required': 'auth',
  'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait',
  'resource-constraint': 'wait',
  'service-unavailable': 'cancel',
  'subscription-required': 'auth',
  'undefined-condition': 'cancel',
  'unexpected-request': 'wait',
};

/** Throw one from an IQ/message handler: the core answers the stanza with it. */
export class StanzaError extends Error {
  readonly type: StanzaErrorType;
  /** extra application-specific child of <error/>, if any */
  readonly appCondition: Element | undefined;

  constructor(
    readonly condition: StanzaErrorCondition,
    readonly text?: string,
    type?: StanzaErrorType,
    appCondition?: Element,
  ) {
    super(text ?? condition);
    this.name = 'StanzaError';
    this.type = type ?? DEFAULT_TYPE[condition];
    this.appCondition = appCondition;
  }

  /** `<error type='…'><condition xmlns='…stanzas'/><text>…</text></error>` */
  toElement(by?: string): Element {
    return xml(
      'error',
      { type: this.type, by },
      xml(this.condition, { xmlns: NS.stanzaErrors }),
      this.text ? xml('text', { xmlns: NS.stanzaErrors, 'xml:lang': 'en' }, this.text) : null,
      this.appCondition,
    );
  }
}

const KINDRED_TO_STANZA: Record<ErrorCode, [StanzaErrorCondition, StanzaErrorType]> = {
  BAD_REQUEST: ['bad-request', 'modify'],
  INVALID_ARGUMENT: ['bad-request', 'modify'],
  UNKNOWN_OPERATION: ['service-unavailable', 'cancel'],
  NOT_FOUND: ['item-not-found', 'cancel'],
  UNAUTHENTICATED: ['not-authorized', 'auth'],
  TOKEN_EXPIRED: ['not-authorized', 'auth'],
  TOKEN_INVALID: ['not-authorized', 'auth'],
  BAD_CREDENTIALS: ['not-authorized', 'auth'],
  FORBIDDEN: ['forbidden', 'auth'],
  NOT_MATCHED: ['forbidden', 'auth'],
  CONFLICT: ['conflict', 'cancel'],
  LIMIT_REACHED: ['not-allowed', 'cancel'],
  PAYLOAD_TOO_LARGE: ['policy-violation', 'modify'],
  UNSUPPORTED_MEDIA: ['not-acceptable', 'modify'],
  RATE_LIMITED: ['resource-constraint', 'wait'],
  OVERLOADED: ['service-unavailable', 'wait'],
  UNAVAILABLE: ['service-unavailable', 'wait'],
  TIMEOUT: ['internal-server-error', 'wait'],
  INTERNAL: ['internal-server-error', 'cancel'],
};

/** The stanza error for a KindredError code. */
export function stanzaErrorFor(err: KindredError): StanzaError {
  const [condition, type] = KINDRED_TO_STANZA[err.code] ?? ['internal-server-error', 'cancel'];
  // Internal details never leak; refusals keep their (already user-facing) message.
  return new StanzaError(condition, err.code === 'INTERNAL' ? undefined : err.message, type);
}

/** Anything thrown by a handler → a StanzaError; `unexpected` is told about errors that are bugs. */
export function toStanzaError(err: unknown, unexpected?: (err: unknown) => void): StanzaError {
  if (err instanceof StanzaError) return err;
  if (err instanceof KindredError) {
    if (err.code === 'INTERNAL') unexpected?.(err);
    return stanzaErrorFor(err);
  }
  unexpected?.(err);
  return new StanzaError('internal-server-error');
}

/**
 * The error reply to `stanza` (RFC 6120 §8.3.1): same name and id, type='error', addresses
 * swapped. IQ payloads are not echoed back; message and presence payloads are not either
 * (allowed by §8.3.1, and keeps replies small).
 */
export function errorReply(stanza: Element, err: StanzaError): Element {
  const { id, from, to } = stanza.attrs;
  return xml(stanza.name, { type: 'error', id, from: to, to: from }, err.toElement());
}

// ---- stream errors ----------------------------------------------------------------

export type StreamErrorCondition =
  | 'bad-format'
  | 'bad-namespace-prefix'
  | 'conflict'
  | 'connection-timeout'
  | 'host-gone'
  | 'host-unknown'
  | 'improper-addressing'
  | 'internal-server-error'
  | 'invalid-from'
  | 'invalid-namespace'
  | 'invalid-xml'
  | 'not-authorized'
  | 'not-well-formed'
  | 'policy-violation'
  | 'remote-connection-failed'
  | 'reset'
  | 'resource-constraint'
  | 'restricted-xml'
  | 'see-other-host'
  | 'system-shutdown'
  | 'undefined-condition'
  | 'unsupported-encoding'
  | 'unsupported-feature'
  | 'unsupported-stanza-type'
  | 'unsupported-version';

/** A stream error (RFC 6120 §4.9): fatal; the stream is closed after it is sent. */
export class StreamError extends Error {
  constructor(
    readonly condition: StreamErrorCondition,
    readonly text?: string,
  ) {
    super(text ?? condition);
    this.name = 'StreamError';
  }

  /** `<stream:error><condition xmlns='…streams'/><text>…</text></stream:error>` */
  toElement(): Element {
    return xml(
      'stream:error',
      {},
      xml(this.condition, { xmlns: NS.streamErrors }),
      this.text ? xml('text', { xmlns: NS.streamErrors, 'xml:lang': 'en' }, this.text) : null,
    );
  }
}
