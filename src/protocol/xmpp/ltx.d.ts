/**
 * Type declarations for the parts of @xmpp/xml (https://github.com/xmppjs/xmpp.js/tree/main/packages/xml)
 * and ltx (https://github.com/xmppjs/ltx) that the XMPP transport uses. Both ship without types.
 */
declare module '@xmpp/xml' {
  export type Attrs = Record<string, string | number | undefined | null>;
  export type Child = Element | string | null | undefined | false | true | Child[];

  export class Element {
    constructor(name: string, attrs?: Attrs | string);
    name: string;
    attrs: Record<string, string>;
    children: Array<Element | string>;
    parent: Element | null;
    /** name without prefix, and (if given) the resolved namespace */
    is(name: string, xmlns?: string): boolean;
    getName(): string;
    getNS(): string | undefined;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    text(): string;
    c(name: string, attrs?: Attrs): Element;
    t(text: string): Element;
    up(): Element;
    cnode(child: Element): Element;
    append(...nodes: Array<Element | string>): void;
    remove(el: Element | string, xmlns?: string): Element;
    toString(): string;
  }

  export function xml(name: string, attrs?: Attrs | null, ...children: Child[]): Element;
  export function escapeXML(s: string): string;
  export function escapeXMLText(s: string): string;
  const _default: typeof xml;
  export default _default;
}

declare module 'ltx/lib/parsers/ltx.js' {
  import { EventEmitter } from 'node:events';
  /** ltx's SAX parser: emits startElement(name, attrs), endElement(name, selfClosing), text(str). */
  export default class SaxLtx extends EventEmitter {
    write(data: string): void;
    end(data?: string): void;
  }
}
