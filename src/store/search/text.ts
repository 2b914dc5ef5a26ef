/**
 * How book text becomes index terms, and how a typed query becomes an FTS5 MATCH expression.
 * The index (index.ts) stores pre-tokenised text (folded, stop words dropped), so that the
 * terms FTS5 holds and the terms of the typo vocabulary kept beside it are the same strings.
 */

/**
 * Words too common to tell books apart: not indexed and ignored in queries. Without this a
 * query containing "the" walks the posting list of nearly every book.
 */
export const STOP_WORDS = new Set('a an and are as at be by for from has in is it its of on or that the to was were with'.split(' '));

/** Lowercase, accents removed. */
export function fold(s: string): string {
  return s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
}

/** The index terms of a text: folded words (letters and digits), stop words dropped. */
export function terms(s: string): string[] {
  return fold(s)
    .split(/[^\p{L}\p{N}]+/u)
    .filter((t) => t.length > 0 && !STOP_WORDS.has(t));
}

/** Typos allowed in a query term: none for short terms, one edit up to 7 letters, two beyond. */
export function fuzziness(term: string): number {
  return term.length <= 3 ? 0 : term.length <= 7 ? 1 : 2;
}

/** A term as an FTS5 string (terms hold only letters and digits, so quoting is all it needs). */
export function quoted(term: string): string {
  return `"${term}"`;
}

/**
 * One query word as an FTS5 expression: the word itself in any column, or — in title and
 * authors only — any of `alternatives` (typo corrections, `"word"*` for a prefix).
 */
export function wordExpr(term: string, alternatives: string[]): string {
  if (alternatives.length === 0) return quoted(term);
  return `(${quoted(term)} OR {title authors}: (${alternatives.join(' OR ')}))`;
}
