/**
 * A deterministic book generator for benches and tests: the same seed gives the same books,
 * so figures are comparable across runs. Titles and descriptions draw from a fixed
 * vocabulary (English words plus 50,000 made-up ones) with skewed (Zipf-like) word
 * frequencies, authors from about 200,000 names (a fifth of the books by 200 popular ones),
 * ISBN-13s valid and unique per index.
 *
 *   for (const b of generateBooks({ count: 1_000_000, seed: 42 })) ...   // BookInput objects
 */
import { isbn13CheckDigit } from '../../src/store/books/isbn.js';
import type { BookInput } from '../../src/store/books/validate.js';
import { prng } from './random.js';

export { prng };

const FIRST = 'Ada Alan Alice Amara Anna Arthur Astrid Ben Bianca Boris Carla Carlos Chen Chloe Clara Dante David Diego Dmitri Edith Elena Elif Emil Emma Ezra Farah Felix Flora Frank Freya Gabriel Grace Hana Hector Helen Hugo Ian Ines Ingrid Isaac Ivan Jack Jade James Jana Javier Jonas Jorge Julia Kai Karim Kate Kenji Lara Laura Leo Leon Lin Lina Lucas Lucia Luis Maria Mark Marta Max Maya Mei Mia Milan Mina Nadia Nina Noah Nora Olga Omar Oscar Pablo Paul Petra Quinn Rafael Rania Rosa Ruth Sam Sara Selma Simon Sofia Sven Tara Theo Tomas Uma Ursula Vera Victor Wanda Yara Yusuf Zoe Zora'.split(' ');
const LAST = 'Abbott Adler Ahmed Alvarez Andersen Arendt Bauer Becker Bell Berg Blake Brandt Brooks Byrne Campbell Chen Cohen Costa Cruz Dahl Dias Duarte Dubois Eriksen Evans Falk Fischer Fontaine Fox Garcia Gomez Grant Gray Gupta Haas Hansen Hart Hayes Hoffmann Holm Huang Ibarra Ito Jansen Jensen Kaur Keller Khan Kim Klein Koch Kowalski Kruger Lange Larsen Le\u00a0Guin Lewis Lindqvist Lopez Lund Maier Marsh Martins Meyer Miller Moreau Morgan Murphy Nakamura Novak Nunez Olsen Ortiz Park Patel Perez Petrov Quinn Reyes Richter Rossi Ruiz Sato Schmidt Schulz Silva Singh Sousa Stein Suzuki Tanaka Torres Vargas Vogel Wagner Walsh Weber Wolf Wright Young Zhang Ziegler'.split(' ').map((s) => s.replace('\u00a0', ' '));
const ADJ = 'silent hidden broken golden last lost distant bright dark secret quiet wild burning frozen ancient endless crimson hollow gentle restless scarlet silver final forgotten winter summer midnight northern southern invisible little great strange bitter sweet iron glass paper velvet'.split(' ');
const NOUN = 'river garden city house mountain sea forest road night dream mirror letter island kingdom empire shadow voice song storm fire star ocean harbor bridge tower clock map window door machine library orchard station lighthouse valley desert winter summer daughter son king queen stranger'.split(' ');
const WORDS = 'a an the of in on at to for with and but or as by from into over after before under between through during without within story novel life love war family memory time world journey history secret death power truth home friend child mother father woman man city country year night day light water earth war peace hope fear change loss return escape search discovery mystery adventure romance crime detective science fiction fantasy magic dragon ship space planet future past village school university doctor soldier artist writer teacher thief spy captain pilot sailor farmer king queen prince princess island coast river mountain forest desert winter spring summer autumn revolution empire republic kingdom border refugee exile immigrant generation inheritance fortune debt murder trial justice betrayal loyalty courage friendship marriage divorce childhood youth old age illness healing music painting theatre film photograph letter diary map journey train road bridge garden house room window door kitchen table bread wine coffee tea'.split(' ');

const SYLLABLES = 'ka lo mir an tes vel dor ra si eth un bra cor fen gal hal is jor kel lum mar nor os pel quin ros sar tor ul ven wyn yor zel ber cal del ev fir gor hes ir jan kor lin mel nes or pra ril sten tal ur vor wen xan yel zor ash eld orn'.split(' ');
const LEXICON_SIZE = 50_000;

/**
 * 50,000 made-up words of 2-3 syllables (deterministic): real catalogues have hundreds of
 * thousands of distinct words, so a search term matches a small share of the books. Drawing
 * everything from a few hundred English words would make every term match ~5% of a million
 * books, which no real catalogue does.
 */
const LEXICON: readonly string[] = (() => {
  const r = prng(20261126);
  const seen = new Set<string>();
  while (seen.size < LEXICON_SIZE) {
    const n = r() < 0.6 ? 2 : 3;
    let w = '';
    for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(r() * SYLLABLES.length)];
    if (w.length >= 4) seen.add(w);
  }
  return [...seen];
})();

/** Family names: the 100 above plus 1,900 made-up ones, so about 200,000 distinct authors. */
const FAMILY: readonly string[] = [...LAST, ...LEXICON.slice(0, 1900).map((w) => w.charAt(0).toUpperCase() + w.slice(1))];

/** Skewed pick: low indexes far more often (roughly Zipf with s≈1). */
function zipf<T>(list: readonly T[], r: () => number): T {
  return list[Math.floor(list.length ** r() - 1)] ?? list[0]!;
}

function pick<T>(list: readonly T[], r: () => number): T {
  return list[Math.floor(r() * list.length)]!;
}

function cap(w: string): string {
  return w.charAt(0).toUpperCase() + w.slice(1);
}

/** The valid, unique ISBN-13 of book number `i` (979 prefix, so never a real 978 book). */
export function isbnFor(i: number): string {
  const first12 = `979${String(i).padStart(9, '0')}`;
  return first12 + isbn13CheckDigit(first12);
}

export function authorName(i: number): string {
  return `${FIRST[i % FIRST.length]} ${FAMILY[Math.floor(i / FIRST.length) % FAMILY.length]}`;
}

export const AUTHOR_COUNT = FIRST.length * FAMILY.length;

/** A title or description word: an English one (skewed) some of the time, else a lexicon word (skewed over 50,000). */
function word(r: () => number, english: readonly string[], englishShare: number): string {
  return r() < englishShare ? zipf(english, r) : zipf(LEXICON, r);
}

export function generateBook(i: number, seed = 42): BookInput {
  const r = prng((seed * 2654435761 + i * 40503) >>> 0);
  const shape = r();
  const title =
    shape < 0.35
      ? `The ${cap(pick(ADJ, r))} ${cap(word(r, NOUN, 0.4))}`
      : shape < 0.7
        ? `${cap(word(r, NOUN, 0.3))} of the ${cap(word(r, ADJ, 0.5))} ${cap(word(r, NOUN, 0.3))}`
        : `${cap(word(r, ADJ, 0.2))} ${cap(word(r, NOUN, 0.2))}`;
  // A fifth of the books come from 200 popular authors, the rest spread over all of them.
  const authors = [authorName(r() < 0.2 ? Math.floor(r() * 200) : Math.floor(r() * AUTHOR_COUNT))];
  if (r() < 0.1) authors.push(authorName(Math.floor(r() * AUTHOR_COUNT)));
  const words: string[] = [];
  const n = 12 + Math.floor(r() * 24);
  for (let w = 0; w < n; w++) words.push(word(r, WORDS, 0.6));
  const formatsRoll = r();
  const formats: BookInput['formats'] = formatsRoll < 0.3 ? ['ebook'] : formatsRoll < 0.6 ? ['print'] : ['ebook', 'print'];
  return {
    title,
    authors,
    isbn: isbnFor(i),
    description: `${cap(words.join(' '))}.`,
    priceCents: 199 + Math.floor(r() * 60) * 50,
    currency: 'EUR',
    formats,
    stock: formats.includes('print') ? Math.floor(r() * 50) : 0,
  };
}

export function* generateBooks(opts: { count: number; seed?: number; from?: number }): Generator<BookInput> {
  const from = opts.from ?? 0;
  for (let i = from; i < from + opts.count; i++) yield generateBook(i, opts.seed ?? 42);
}
