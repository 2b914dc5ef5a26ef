/**
 * The one registry of error codes. Every transport maps these the same way:
 * the native protocol sends `{id?, error:{code,message}}`, REST answers with
 * `httpStatus` and `{error:{code,message}}`, XMPP maps to a stanza error.
 * Codes are stable: clients switch on them, so never rename one.
 */
export const ErrorCodes = {
  BAD_REQUEST: { http: 400, text: 'the request is malformed' },
  INVALID_ARGUMENT: { http: 422, text: 'an argument has the wrong type or value' },
  UNKNOWN_OPERATION: { http: 404, text: 'no such operation' },
  NOT_FOUND: { http: 404, text: 'not found' },
  UNAUTHENTICATED: { http: 401, text: 'authentication required' },
  TOKEN_EXPIRED: { http: 401, text: 'the access token has expired' },
  TOKEN_INVALID: { http: 401, text: 'the access token is invalid or revoked' },
  BAD_CREDENTIALS: { http: 401, text: 'wrong username or password' },
  FORBIDDEN: { http: 403, text: 'not allowed' },
  NOT_MATCHED: { http: 403, text: 'you can only message your matches' },
  CONFLICT: { http: 409, text: 'already exists' },
  LIMIT_REACHED: { http: 409, text: 'a limit was reached' },
  PAYLOAD_TOO_LARGE: { http: 413, text: 'the payload is too large' },
  UNSUPPORTED_MEDIA: { http: 415, text: 'unsupported media type' },
  RATE_LIMITED: { http: 429, text: 'too many requests, slow down' },
  OVERLOADED: { http: 503, text: 'the server is overloaded, retry later' },
  UNAVAILABLE: { http: 503, text: 'a backing service is unavailable' },
  TIMEOUT: { http: 504, text: 'the operation timed out' },
  INTERNAL: { http: 500, text: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class KindredError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string) {
    super(message ?? ErrorCodes[code].text);
    this.code = code;
    this.name = 'KindredError';
  }
  get httpStatus(): number {
    return ErrorCodes[this.code].http;
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ErrorCodes, value);
}

/** Normalise anything thrown into a KindredError; unexpected errors become INTERNAL without leaking details. */
export function toKindredError(err: unknown): KindredError {
  if (err instanceof KindredError) return err;
  if (err && typeof err === 'object' && isErrorCode((err as { code?: unknown }).code)) {
    return new KindredError((err as { code: ErrorCode }).code, String((err as { message?: unknown }).message ?? ''));
  }
  return new KindredError('INTERNAL');
}
