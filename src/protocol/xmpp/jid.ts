/**
 * JIDs: parse, format, compare. RFC 7622 (https://www.rfc-editor.org/rfc/rfc7622), simplified:
 * no full PRECIS profiles, but the forbidden characters and length limits are enforced, the
 * localpart and domainpart are case-folded (Kindred usernames are lowercase ASCII anyway).
 */

export interface Jid {
  readonly local: string;
  readonly domain: string;
  /** '' for a bare JID */
  readonly resource: string;
}

const MAX_PART_BYTES = 1023;
// RFC 7622 §3.3.1: these may not appear in a localpart; whitespace and controls are out too.
const LOCAL_FORBIDDEN = /["&'/:<>@\s\u0000-\u001f\u007f]/u;
const DOMAIN_FORBIDDEN = /[\s\u0000-\u001f\u007f/@"&'<>]/u;
const RESOURCE_FORBIDDEN = /[\u0000-\u001f\u007f]/u;

function bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Parses a JID; undefined if it is malformed (answer with <jid-malformed/>). */
export function parseJid(raw: string): Jid | undefined {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 3 * MAX_PART_BYTES + 2) return undefined;
  const slash = raw.indexOf('/');
  const head = slash >= 0 ? raw.slice(0, slash) : raw;
  const resource = slash >= 0 ? raw.slice(slash + 1) : '';
  const at = head.indexOf('@');
  const local = at >= 0 ? head.slice(0, at) : '';
  let domain = at >= 0 ? head.slice(at + 1) : head;
  if (domain.endsWith('.')) domain = domain.slice(0, -1);
  domain = domain.toLowerCase();
  if (at >= 0 && (local.length === 0 || bytes(local) > MAX_PART_BYTES || LOCAL_FORBIDDEN.test(local))) return undefined;
  if (domain.length === 0 || bytes(domain) > MAX_PART_BYTES || DOMAIN_FORBIDDEN.test(domain)) return undefined;
  if (slash >= 0 && (resource.length === 0 || bytes(resource) > MAX_PART_BYTES || RESOURCE_FORBIDDEN.test(resource))) return undefined;
  return { local: local.toLowerCase(), domain, resource };
}

export function jid(local: string, domain: string, resource = ''): Jid {
  return { local, domain, resource };
}

export function formatJid(j: Jid): string {
  const bare = j.local ? `${j.local}@${j.domain}` : j.domain;
  return j.resource ? `${bare}/${j.resource}` : bare;
}

export function bareOf(j: Jid): Jid {
  return j.resource ? { local: j.local, domain: j.domain, resource: '' } : j;
}

export function bareString(j: Jid): string {
  return j.local ? `${j.local}@${j.domain}` : j.domain;
}

export function sameBare(a: Jid, b: Jid): boolean {
  return a.local === b.local && a.domain === b.domain;
}

export function sameFull(a: Jid, b: Jid): boolean {
  return sameBare(a, b) && a.resource === b.resource;
}

/** True if the JID is this server itself (no localpart, no resource). */
export function isServer(j: Jid, domain: string): boolean {
  return j.local === '' && j.resource === '' && j.domain === domain;
}

/** True if the JID is hosted here (the server or an account on it). */
export function isLocal(j: Jid, domain: string): boolean {
  return j.domain === domain;
}

/** A resource as a client may ask for it (RFC 7622 §3.4); undefined if unusable. */
export function checkResource(raw: string): string | undefined {
  const r = raw.trim();
  if (r.length === 0 || bytes(r) > MAX_PART_BYTES || RESOURCE_FORBIDDEN.test(r)) return undefined;
  return r.normalize('NFC');
}
