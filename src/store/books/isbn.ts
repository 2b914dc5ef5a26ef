/**
 * ISBN checks (ISO 2108). A book's ISBN is stored normalised: digits only (plus a final X
 * for ISBN-10), without hyphens or spaces, so the same book typed two ways is one ISBN.
 */

/** Strips hyphens and spaces and upper-cases a trailing x; undefined when other characters remain. */
export function normaliseIsbn(raw: string): string | undefined {
  const s = raw.replace(/[\s-]/g, '').toUpperCase();
  if (/^\d{13}$/.test(s) || /^\d{9}[\dX]$/.test(s)) return s;
  return undefined;
}

/** ISBN-10: sum of digit × weight (10 down to 1) is divisible by 11; X stands for 10. */
export function validIsbn10(s: string): boolean {
  if (!/^\d{9}[\dX]$/.test(s)) return false;
  let sum = 0;
  for (let i = 0; i < 10; i++) {
    const c = s[i]!;
    sum += (c === 'X' ? 10 : c.charCodeAt(0) - 48) * (10 - i);
  }
  return sum % 11 === 0;
}

/** ISBN-13 (EAN-13): digits weighted 1,3,1,3,… sum to a multiple of 10; prefix 978 or 979. */
export function validIsbn13(s: string): boolean {
  if (!/^97[89]\d{10}$/.test(s)) return false;
  let sum = 0;
  for (let i = 0; i < 13; i++) sum += (s.charCodeAt(i) - 48) * (i % 2 === 0 ? 1 : 3);
  return sum % 10 === 0;
}

/** Why an ISBN is refused, or undefined when it is valid. */
export function isbnProblem(raw: string): string | undefined {
  const s = normaliseIsbn(raw);
  if (!s) return 'must be an ISBN-10 or ISBN-13 (digits, hyphens allowed)';
  if (s.length === 10 ? !validIsbn10(s) : !validIsbn13(s)) {
    return s.length === 13 && !/^97[89]/.test(s) ? 'an ISBN-13 starts with 978 or 979' : 'the ISBN check digit is wrong';
  }
  return undefined;
}

/** The ISBN-13 check digit for 12 leading digits (used by the data generator and tests). */
export function isbn13CheckDigit(first12: string): string {
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += (first12.charCodeAt(i) - 48) * (i % 2 === 0 ? 1 : 3);
  return String((10 - (sum % 10)) % 10);
}
