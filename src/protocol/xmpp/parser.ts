/**
 * The hardened XML input of an XMPP stream (RFC 6120 §11, https://www.rfc-editor.org/rfc/rfc6120#section-11).
 *
 * Bytes go through three gates before an element is built:
 *  1. a byte scanner that tracks just enough structure (tags, quoted attribute values, CDATA,
 *     nesting depth) to enforce §11.1 restricted XML (no DTD, entity declarations, comments or
 *     processing instructions; an XML declaration only before the stream header) and to count
 *     the bytes of the current top-level element: past `maxStanzaBytes` the stream fails with
 *     <policy-violation/> and nothing more is buffered. Every structural character is ASCII and
 *     UTF-8 multi-byte sequences never contain ASCII bytes, so scanning bytes is exact.
 *  2. a fatal streaming UTF-8 decoder (§11.6): invalid UTF-8 → <not-well-formed/>; a UTF-16 BOM
 *     or an XML declaration naming another encoding → <unsupported-encoding/>.
 *  3. ltx's SAX parser (https://github.com/xmppjs/ltx), with our own tree builder: top-level
 *     elements are emitted one by one, whitespace between them is dropped (never accumulated on
 *     the root), other character data there is <bad-format/>, mismatched tags and illegal
 *     entities are <not-well-formed/> / <restricted-xml/>.
 *
 * One parser per stream: a stream restart (after STARTTLS or SASL) makes a new one. In framed
 * mode (RFC 7395 WebSocket) there is no stream root: each message holds whole top-level elements.
 */
import SaxLtx from 'ltx/lib/parsers/ltx.js';
import { Element } from '@xmpp/xml';
import { StreamError } from './stanza-errors.js';
import { NS } from './ns.js';

export interface ParserHandlers {
  /** the stream header (its attributes; it never gets children) */
  streamStart(root: Element): void;
  /** one complete top-level element; its `parent` is the stream root so getNS() resolves */
  element(el: Element): void;
  /** `</stream:stream>` */
  streamEnd(): void;
  /** fatal: called once, then all further input is ignored */
  error(err: StreamError): void;
}

export interface ParserOptions {
  maxStanzaBytes: number;
  /** nesting limit counted from the stream root (deeply nested input would exhaust the stack later) */
  maxDepth?: number;
  /** RFC 7395: no stream root, each write() is one WebSocket message of whole elements */
  framed?: boolean;
}

const enum S {
  Text,
  Lt,
  Tag,
  EndTag,
  AttrValue,
  Bang,
  Cdata,
  Pi,
}

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const BANG = 0x21;
const QMARK = 0x3f;
const DQUOTE = 0x22;
const SQUOTE = 0x27;
const RBRACKET = 0x5d;
const CDATA_OPEN = '[CDATA[';
const MAX_DECL_BYTES = 256;
// XML 1.0 Char production: C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF are not characters.
const ILLEGAL_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

export class XmppParser {
  private state = S.Text;
  private depth: number;
  private readonly baseDepth: number;
  private readonly maxDepth: number;
  /** bytes of the current top-level unit seen in earlier chunks */
  private unitBytes = 0;
  private quote = 0;
  private lastNonSpace = 0;
  private bang = '';
  private brackets = 0;
  private pi: number[] = [];
  private declAllowed = true;
  private failed = false;
  private ended = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly sax = new SaxLtx();
  private root: Element | null = null;
  private cursor: Element | null = null;
  private firstBytes = true;
  /** bytes of the current chunk that belong to the XML declaration */
  private cut: [number, number] | null = null;
  /** a trailing '<' carried over to the next chunk */
  private held: Uint8Array | null = null;

  constructor(
    private readonly opts: ParserOptions,
    private readonly handlers: ParserHandlers,
  ) {
    this.baseDepth = opts.framed ? 1 : 0;
    this.depth = this.baseDepth;
    this.maxDepth = opts.maxDepth ?? 32;
    if (opts.framed) {
      // A virtual root: gives top-level elements their default namespace and a parent.
      this.root = new Element('framed', { xmlns: NS.client });
      this.cursor = this.root;
    }
    this.sax.on('startElement', (name: string, attrs: Record<string, string>) => this.onStart(name, attrs));
    this.sax.on('endElement', (name: string) => this.onEnd(name));
    this.sax.on('text', (text: string) => this.onText(text));
  }

  get hasFailed(): boolean {
    return this.failed;
  }

  /** Feeds bytes. Never throws: problems are reported once through `handlers.error`. */
  write(chunk: Uint8Array): void {
    if (this.failed || this.ended || chunk.byteLength === 0) return;
    if (this.firstBytes) {
      this.firstBytes = false;
      if (chunk.byteLength >= 2 && ((chunk[0] === 0xfe && chunk[1] === 0xff) || (chunk[0] === 0xff && chunk[1] === 0xfe))) {
        return this.fail(new StreamError('unsupported-encoding', 'only UTF-8 is supported'));
      }
    }
    if (this.held) {
      chunk = Buffer.concat([this.held, chunk]);
      this.held = null;
    }
    const problem = this.scan(chunk);
    if (problem) return this.fail(problem);
    // A chunk ending in '<' keeps it for the next one: whether '<?' starts the XML declaration
    // is only known then.
    let end = chunk.byteLength;
    if (this.state === S.Lt && !this.opts.framed) {
      this.state = S.Text;
      this.unitBytes--;
      this.held = chunk.subarray(end - 1);
      end--;
    }
    // The XML declaration is checked by the scanner and never reaches ltx (whose PI handling
    // loses track when '?' and '>' arrive in different chunks).
    if (this.cut) {
      const [from, to] = this.cut;
      this.cut = null;
      chunk = Buffer.concat([chunk.subarray(0, from), chunk.subarray(Math.min(to, end), end)]);
    } else if (end < chunk.byteLength) {
      chunk = chunk.subarray(0, end);
    }
    if (chunk.byteLength === 0) return;
    let text: string;
    try {
      text = this.decoder.decode(chunk, { stream: !this.opts.framed });
    } catch {
      return this.fail(new StreamError('not-well-formed', 'invalid UTF-8'));
    }
    if (ILLEGAL_CHARS.test(text)) return this.fail(new StreamError('not-well-formed', 'character not allowed in XML'));
    try {
      this.sax.write(text);
    } catch (err) {
      const message = err instanceof Error ? err.message : '';
      this.fail(
        message.startsWith('Illegal XML entity')
          ? new StreamError('restricted-xml', 'only the predefined entities are allowed')
          : new StreamError('not-well-formed', message.slice(0, 100) || undefined),
      );
    }
  }

  /** Framed mode: the message must have ended between top-level elements. */
  end(): void {
    if (this.failed || this.ended) return;
    if (this.opts.framed && (this.depth !== 1 || this.state !== S.Text)) {
      this.fail(new StreamError('bad-format', 'a WebSocket message must hold complete elements (RFC 7395 §3.3.3)'));
    }
  }

  private fail(err: StreamError): void {
    if (this.failed) return;
    this.failed = true;
    this.handlers.error(err);
  }

  // ---- gate 1: the byte scanner ------------------------------------------------------

  private scan(buf: Uint8Array): StreamError | undefined {
    const n = buf.length;
    const max = this.opts.maxStanzaBytes;
    let i = 0;
    /** where the current unit starts in this chunk (0 when it began in an earlier chunk) */
    let unitStart = 0;
    const unitDone = (at: number) => {
      this.unitBytes = 0;
      unitStart = at;
    };
    while (i < n) {
      switch (this.state) {
        case S.Text: {
          const lt = buf.indexOf(LT, i);
          if (lt < 0) {
            i = n;
          } else {
            i = lt + 1;
            this.state = S.Lt;
          }
          break;
        }
        case S.Lt: {
          const c = buf[i]!;
          if (c === SLASH) {
            this.state = S.EndTag;
            i++;
          } else if (c === BANG) {
            this.state = S.Bang;
            this.bang = '';
            i++;
          } else if (c === QMARK) {
            if (!this.declAllowed) return new StreamError('restricted-xml', 'processing instructions are not allowed');
            this.state = S.Pi;
            this.pi = [];
            this.cut = [i - 1, n];
            i++;
          } else {
            this.state = S.Tag;
            this.lastNonSpace = 0;
            this.declAllowed = false;
          }
          break;
        }
        case S.Tag:
        case S.EndTag: {
          for (; i < n; i++) {
            const c = buf[i]!;
            if (c === DQUOTE || c === SQUOTE) {
              if (this.state === S.EndTag) return new StreamError('not-well-formed', 'quote in an end tag');
              this.quote = c;
              this.state = S.AttrValue;
              i++;
              break;
            }
            if (c === LT) return new StreamError('not-well-formed', '"<" inside a tag');
            if (c === GT) {
              i++;
              const err = this.tagClosed(this.state === S.EndTag, this.lastNonSpace === SLASH);
              if (err) return err;
              // back at stream level (depth 1): the top-level element, or the stream header, is complete
              if (this.depth <= 1) unitDone(i);
              this.state = S.Text;
              break;
            }
            if (!isSpace(c)) this.lastNonSpace = c;
          }
          break;
        }
        case S.AttrValue: {
          const q = buf.indexOf(this.quote, i);
          const lt = buf.indexOf(LT, i);
          if (lt >= 0 && (q < 0 || lt < q)) return new StreamError('not-well-formed', '"<" in an attribute value');
          if (q < 0) {
            i = n;
          } else {
            i = q + 1;
            this.lastNonSpace = this.quote;
            this.state = S.Tag;
          }
          break;
        }
        case S.Bang: {
          while (i < n && this.bang.length < CDATA_OPEN.length) this.bang += String.fromCharCode(buf[i++]!);
          if (!CDATA_OPEN.startsWith(this.bang)) {
            return new StreamError('restricted-xml', this.bang.startsWith('--') ? 'comments are not allowed' : 'DTDs and entity declarations are not allowed');
          }
          if (this.bang === CDATA_OPEN) {
            if (this.depth < 2) return new StreamError('bad-format', 'character data outside a stanza');
            this.state = S.Cdata;
            this.brackets = 0;
          }
          break;
        }
        case S.Cdata: {
          for (; i < n; i++) {
            const c = buf[i]!;
            if (c === RBRACKET) this.brackets++;
            else if (c === GT && this.brackets >= 2) {
              i++;
              this.state = S.Text;
              break;
            } else {
              this.brackets = 0;
              const next = buf.indexOf(RBRACKET, i + 1);
              i = (next < 0 ? n : next) - 1;
            }
          }
          break;
        }
        case S.Pi: {
          if (!this.cut) this.cut = [0, n];
          for (; i < n; i++) {
            const c = buf[i]!;
            this.pi.push(c);
            if (this.pi.length > MAX_DECL_BYTES) return new StreamError('restricted-xml', 'processing instructions are not allowed');
            if (c === GT && this.pi[this.pi.length - 2] === QMARK) {
              i++;
              const err = this.checkDeclaration(Buffer.from(this.pi).toString('latin1'));
              if (err) return err;
              this.cut![1] = i;
              this.declAllowed = false;
              this.state = S.Text;
              break;
            }
          }
          break;
        }
      }
      if (this.unitBytes + (i - unitStart) > max) {
        return new StreamError('policy-violation', `an element may be at most ${max} bytes`);
      }
    }
    this.unitBytes += n - unitStart;
    return undefined;
  }

  /** A tag ended at '>'; keeps the depth. */
  private tagClosed(endTag: boolean, selfClosing: boolean): StreamError | undefined {
    if (endTag) {
      this.depth--;
      if (this.depth < this.baseDepth) return new StreamError('not-well-formed', 'end tag without a start tag');
      if (this.depth === 0 && !this.opts.framed) this.ended = true;
      return undefined;
    }
    if (selfClosing) return undefined;
    this.depth++;
    if (this.depth > this.maxDepth) return new StreamError('policy-violation', `elements may nest at most ${this.maxDepth} deep`);
    return undefined;
  }

  private checkDeclaration(text: string): StreamError | undefined {
    // text is "xml version='1.0' encoding='UTF-8'?>" (after '<?')
    if (!/^xml\s/.test(text)) return new StreamError('restricted-xml', 'processing instructions are not allowed');
    const enc = /\sencoding\s*=\s*["']([^"']*)["']/.exec(text);
    if (enc && enc[1]!.toLowerCase() !== 'utf-8') return new StreamError('unsupported-encoding', 'only UTF-8 is supported');
    return undefined;
  }

  // ---- gate 3: the tree builder on ltx events ------------------------------------------

  private onStart(name: string, attrs: Record<string, string>): void {
    if (this.failed) return;
    if (!this.root) {
      this.root = new Element(name, attrs);
      this.cursor = this.root;
      this.handlers.streamStart(this.root);
      return;
    }
    const el = new Element(name, attrs);
    if (this.cursor === this.root) el.parent = this.root;
    else this.cursor!.cnode(el);
    this.cursor = el;
  }

  private onEnd(name: string): void {
    if (this.failed) return;
    const cursor = this.cursor;
    if (!cursor || cursor.name !== name) {
      this.fail(new StreamError('not-well-formed', `</${name.slice(0, 50)}> does not close <${cursor?.name.slice(0, 50) ?? ''}>`));
      return;
    }
    if (cursor === this.root) {
      this.handlers.streamEnd();
      return;
    }
    if (cursor.parent === this.root) {
      this.cursor = this.root;
      this.handlers.element(cursor);
      return;
    }
    this.cursor = cursor.parent;
  }

  private onText(text: string): void {
    if (this.failed) return;
    const cursor = this.cursor;
    if (!cursor || cursor === this.root) {
      if (/^\s*$/.test(text)) return; // whitespace keepalives and indentation
      this.fail(new StreamError('bad-format', 'character data outside a stanza'));
      return;
    }
    cursor.t(text);
  }
}
