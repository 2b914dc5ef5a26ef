/**
 * The hardened stream parser on its own: the same elements come out however the bytes are split
 * (one at a time, random cuts, multi-byte characters cut in half), and each kind of bad input
 * ends in its stream error.
 */
import t from 'tap';
import { XmppParser } from '../../src/protocol/xmpp/parser.js';
import type { StreamError } from '../../src/protocol/xmpp/stanza-errors.js';
import { seededRandom as rng } from '../helpers/async.js';

interface Out {
  header?: Record<string, string>;
  elements: string[];
  namespaces: Array<string | undefined>;
  ended: boolean;
  error?: StreamError;
}

function run(chunks: Uint8Array[], opts: { maxStanzaBytes?: number; framed?: boolean } = {}): Out {
  const out: Out = { elements: [], namespaces: [], ended: false };
  const p = new XmppParser(
    { maxStanzaBytes: opts.maxStanzaBytes ?? 1024 * 1024, framed: opts.framed },
    {
      streamStart: (root) => (out.header = { ...root.attrs }),
      element: (el) => {
        out.elements.push(el.toString());
        out.namespaces.push(el.getNS());
      },
      streamEnd: () => (out.ended = true),
      error: (err) => {
        if (out.error) throw new Error('error reported twice');
        out.error = err;
      },
    },
  );
  for (const c of chunks) p.write(c);
  if (opts.framed) p.end();
  return out;
}

const enc = (s: string) => Buffer.from(s, 'utf8');
const bytewise = (s: string | Buffer) => [...(typeof s === 'string' ? enc(s) : s)].map((b) => Uint8Array.of(b));

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>`;
const STANZAS = [
  `<message to='a@example.org' id='1' type='chat'><body>héllo wörld 😀 &amp; &lt;tags&gt; &#x263A;</body></message>`,
  ` \n\t `,
  `<iq type='get' id="q'2"><query xmlns='jabber:iq:roster'/></iq>`,
  `<presence/>`,
  `<message><body><![CDATA[<not> & a tag]]]]></body></message>`,
  `<r xmlns='urn:xmpp:sm:3'/>`,
  `<message a='x > y' b="1/2"><body>/></body></message>`,
];
const STREAM = HEADER + STANZAS.join('') + '</stream:stream>';

t.test('whole, byte by byte, and randomly split give the same result', async (t) => {
  const whole = run([enc(STREAM)]);
  t.equal(whole.error, undefined);
  t.equal(whole.header?.to, 'example.org');
  t.equal(whole.elements.length, 6, 'whitespace between stanzas is not an element');
  t.equal(whole.ended, true);
  t.match(whole.elements[0], /héllo wörld 😀 &amp; &lt;tags&gt; ☺/);
  t.match(whole.elements[3], /&lt;not&gt; &amp; a tag\]\]/);
  t.same(whole.namespaces, ['jabber:client', 'jabber:client', 'jabber:client', 'jabber:client', 'urn:xmpp:sm:3', 'jabber:client']);
  t.same(run(bytewise(STREAM)), whole, 'one byte at a time');
  for (let seed = 1; seed <= 50; seed++) {
    const rand = rng(seed);
    const bytes = enc(STREAM);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; ) {
      const n = 1 + Math.floor(rand() * 40);
      chunks.push(bytes.subarray(i, i + n));
      i += n;
    }
    t.same(run(chunks), whole, `random cuts, seed ${seed}`);
  }
});

t.test('restricted XML (RFC 6120 §11.1)', async (t) => {
  const cases: Array<[string, string]> = [
    [`<!DOCTYPE x [<!ENTITY a "b">]>${HEADER}`, 'restricted-xml'],
    [`${HEADER}<!-- comment -->`, 'restricted-xml'],
    [`${HEADER}<message><!-- c --></message>`, 'restricted-xml'],
    [`${HEADER}<?target data?>`, 'restricted-xml'],
    [`${HEADER}<message><body>&custom;</body></message>`, 'restricted-xml'],
    [`<?xml version='1.0' encoding='latin1'?>${HEADER.replace(/^<\?xml[^>]*>/, '')}`, 'unsupported-encoding'],
    [`${HEADER}<![CDATA[top level]]>`, 'bad-format'],
    [`${HEADER}some text<presence/>`, 'bad-format'],
    [`${HEADER}<message><body>\u0001</body></message>`, 'not-well-formed'],
    [`${HEADER}<message><body>&#0;</body></message>`, 'not-well-formed'],
    [`${HEADER}<message></presence>`, 'not-well-formed'],
    [`${HEADER}<message a='<'/>`, 'not-well-formed'],
  ];
  for (const [input, condition] of cases) {
    t.equal(run([enc(input)]).error?.condition, condition, input);
    t.equal(run(bytewise(input)).error?.condition, condition, `${input} (byte by byte)`);
  }
  const invalid = Buffer.concat([enc(HEADER + '<message><body>'), Buffer.from([0xe2, 0x82]), enc('</body></message>')]);
  t.equal(run([invalid]).error?.condition, 'not-well-formed', 'truncated UTF-8 sequence');
  t.equal(run(bytewise(invalid)).error?.condition, 'not-well-formed', 'truncated UTF-8 sequence (byte by byte)');
  t.equal(run([Buffer.from([0xfe, 0xff, 0, 0x3c])]).error?.condition, 'unsupported-encoding', 'UTF-16 BOM');
});

t.test('the stanza size limit counts bytes since the last complete element', async (t) => {
  const limit = 200;
  const small = `<message><body>${'x'.repeat(150)}</body></message>`;
  const ok = run([enc(HEADER + small.repeat(20))], { maxStanzaBytes: limit });
  t.equal(ok.error, undefined, 'many elements under the limit are fine');
  t.equal(ok.elements.length, 20);
  const big = `<message><body>${'x'.repeat(300)}</body></message>`;
  t.equal(run([enc(HEADER + big)], { maxStanzaBytes: limit }).error?.condition, 'policy-violation');
  // Fed in pieces: the error comes as soon as the limit is crossed, not at the end.
  let seen = 0;
  const out: string[] = [];
  const p = new XmppParser({ maxStanzaBytes: limit }, { streamStart() {}, element() {}, streamEnd() {}, error: (e) => out.push(e.condition) });
  p.write(enc(HEADER + '<message><body>'));
  for (let i = 0; i < 1000 && out.length === 0; i++) {
    p.write(enc('y'.repeat(10)));
    seen += 10;
  }
  t.same(out, ['policy-violation']);
  t.ok(seen <= limit, `failed after ${seen} body bytes`);
  // Multi-byte characters count as bytes.
  t.equal(run([enc(HEADER + `<message><body>${'€'.repeat(70)}</body></message>`)], { maxStanzaBytes: limit }).error?.condition, 'policy-violation');
  t.equal(run([enc(HEADER + `<message><body>${'€'.repeat(40)}</body></message>`)], { maxStanzaBytes: limit }).error, undefined);
});

t.test('nesting is limited', async (t) => {
  t.equal(run([enc(HEADER + '<a>'.repeat(40))]).error?.condition, 'policy-violation');
  t.equal(run([enc(HEADER + '<a>'.repeat(20) + '</a>'.repeat(20))]).error, undefined);
});

t.test('framed mode (RFC 7395): elements per message, no stream root', async (t) => {
  const out = run([enc(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>`)], { framed: true });
  t.equal(out.elements.length, 1);
  t.equal(out.namespaces[0], 'urn:ietf:params:xml:ns:xmpp-framing');
  const stanza = run([enc(`<message xmlns='jabber:client' to='a@example.org'><body>hi</body></message>`)], { framed: true });
  t.equal(stanza.namespaces[0], 'jabber:client');
  t.equal(run([enc(`<message xmlns='jabber:client'><body>cut`)], { framed: true }).error?.condition, 'bad-format', 'an incomplete message');
  t.equal(run([enc(`<!DOCTYPE x>`)], { framed: true }).error?.condition, 'restricted-xml');
});
