/**
 * XML namespaces used by the XMPP core. Feature modules keep theirs next to their code.
 * RFC 6120 https://www.rfc-editor.org/rfc/rfc6120 · RFC 7395 https://www.rfc-editor.org/rfc/rfc7395
 */
export const NS = {
  client: 'jabber:client',
  streams: 'http://etherx.jabber.org/streams',
  streamErrors: 'urn:ietf:params:xml:ns:xmpp-streams',
  stanzaErrors: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  tls: 'urn:ietf:params:xml:ns:xmpp-tls',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  bind: 'urn:ietf:params:xml:ns:xmpp-bind',
  session: 'urn:ietf:params:xml:ns:xmpp-session',
  framing: 'urn:ietf:params:xml:ns:xmpp-framing',
  register: 'jabber:iq:register',
  registerFeature: 'http://jabber.org/features/iq-register',
  roster: 'jabber:iq:roster',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  discoItems: 'http://jabber.org/protocol/disco#items',
  ping: 'urn:xmpp:ping',
  delay: 'urn:xmpp:delay',
} as const;
