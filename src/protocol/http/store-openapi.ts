/**
 * OpenAPI pieces for the book store's Books, Search and Customers routes (store-routes.ts),
 * merged into the generated document by openapi.ts.
 */
import type { ErrorCode } from '../../errors.js';
import { PRICE_BUCKETS, SORT_ORDERS } from '../../store/search/index.js';

type Schema = Record<string, unknown>;

export interface StoreOperationDoc {
  request?: string;
  response: string | { contentType: string; schema: Schema; description: string };
  query?: Array<{ name: string; schema: Schema; description: string; required?: boolean }>;
  errors?: ErrorCode[];
  description?: string;
  /** a request body other than a JSON schema or an image (import, ebook) */
  requestBody?: Schema;
}

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({ type: 'object', properties, required, additionalProperties: false });
const str = (description?: string): Schema => (description ? { type: 'string', description } : { type: 'string' });
const int = (description?: string): Schema => (description ? { type: 'integer', description } : { type: 'integer' });
const epochMs: Schema = { type: 'integer', description: 'milliseconds since the Unix epoch' };
const id: Schema = ref('Id');
const format: Schema = { type: 'string', enum: ['ebook', 'print'] };
const ADMIN = 'Only accounts listed in the `store.admins` config key (KINDRED_STORE_ADMINS) may call it; others get FORBIDDEN.';

export function storeSchemas(): Record<string, Schema> {
  const bookFields = {
    title: str('1-500 characters'),
    authors: { type: 'array', items: str(), minItems: 1, maxItems: 20 },
    isbn: str('ISBN-10 or ISBN-13 with a valid check digit; hyphens and spaces are ignored'),
    description: str('up to 20,000 characters'),
    priceCents: int('price in minor units (cents)'),
    currency: str('ISO 4217 code, e.g. EUR'),
    formats: { type: 'array', items: format, minItems: 1 },
    stock: int('print copies available (only for books with the print format)'),
  };
  return {
    Book: obj(
      {
        bookId: id,
        ...bookFields,
        isbn: str('normalised: digits only (and a final X for ISBN-10)'),
        coverUrl: str('path of the cover image, when one was uploaded'),
        hasEbookFile: { type: 'boolean' },
        createdAt: epochMs,
        updatedAt: epochMs,
      },
      ['bookId', 'title', 'authors', 'isbn', 'description', 'priceCents', 'currency', 'formats', 'stock', 'hasEbookFile', 'createdAt', 'updatedAt'],
    ),
    BookInput: obj(bookFields, ['title', 'authors', 'isbn', 'priceCents', 'currency', 'formats']),
    BookPatch: obj(bookFields, []),
    BookResult: obj({ book: ref('Book') }),
    ImportResult: obj({
      lines: int('books (lines or array elements) received'),
      created: { type: 'array', items: obj({ line: int(), bookId: id }) },
      failed: { type: 'array', items: obj({ line: int('1-based line (NDJSON) or element (array)'), code: str('an error code'), message: str() }) },
    }),
    SearchResult: obj({
      results: { type: 'array', items: ref('Book') },
      total: int('matching books'),
      page: int(),
      size: int(),
      pages: int(),
      facets: obj({
        format: obj({ ebook: int(), print: int() }),
        price: { type: 'array', items: obj({ key: str(), min: int(), max: { anyOf: [int(), { type: 'null' }] }, count: int() }) },
        author: { type: 'array', items: obj({ name: str(), count: int() }), description: 'the 10 authors with most matches' },
      }),
    }),
    Suggestions: obj({ suggestions: { type: 'array', items: obj({ bookId: id, title: str(), authors: { type: 'array', items: str() } }) } }),
    SearchStats: obj({ indexed: int(), building: { type: 'boolean' }, rebuiltAt: { anyOf: [epochMs, { type: 'null' }] } }),
    Address: obj(
      {
        addressId: id,
        label: str(),
        name: str('recipient'),
        line1: str(),
        line2: str(),
        city: str(),
        region: str(),
        postalCode: str(),
        country: str('ISO 3166-1 alpha-2'),
        phone: str(),
        isDefault: { type: 'boolean' },
        createdAt: epochMs,
        updatedAt: epochMs,
      },
    ),
    AddressInput: obj(
      {
        label: str('e.g. Home'), name: str('recipient'), line1: str(), line2: str(), city: str(), region: str(),
        postalCode: str('checked against the country\'s format where known'), country: str('ISO 3166-1 alpha-2, e.g. DE'), phone: str(),
        default: { type: 'boolean', description: 'make it the default address' },
      },
      [],
    ),
    AddressResult: obj({ address: ref('Address') }),
    AddressList: obj({ addresses: { type: 'array', items: ref('Address') } }),
    Customer: obj({ customerId: id, name: str(), defaultAddressId: { anyOf: [id, { type: 'null' }] }, addresses: { type: 'array', items: ref('Address') } }),
    CustomerResult: obj({ customer: ref('Customer') }),
    CustomerMe: obj(
      {
        customer: ref('Customer'),
        orders: { anyOf: [{ type: 'array', items: { type: 'object' } }, { type: 'null' }], description: 'your 10 newest orders, from the Orders service; null when it could not answer' },
        ordersError: str('why orders is null'),
      },
      ['customer', 'orders'],
    ),
    CustomerPatch: obj({ name: str(), defaultAddressId: { anyOf: [id, { type: 'null' }] } }, []),
  };
}

const bookErrors: ErrorCode[] = ['FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'INVALID_ARGUMENT'];

export const storeDocs: Record<string, StoreOperationDoc> = {
  createBook: { request: 'BookInput', response: 'BookResult', errors: ['FORBIDDEN', 'CONFLICT'], description: `${ADMIN} CONFLICT when another book has the ISBN.` },
  importBooks: {
    response: 'ImportResult',
    errors: ['FORBIDDEN', 'BAD_REQUEST', 'PAYLOAD_TOO_LARGE'],
    description: `${ADMIN} The body is a JSON array of BookInput, or NDJSON (one BookInput per line). Every line is checked and created on its own; refused lines are listed in \`failed\` with their error (a duplicate ISBN is CONFLICT, so re-running an import adds nothing twice).`,
    requestBody: {
      required: true,
      content: { 'application/x-ndjson': { schema: { type: 'string' } }, 'application/json': { schema: { type: 'array', items: ref('BookInput') } } },
    },
  },
  getBook: { response: 'BookResult', errors: ['NOT_FOUND'] },
  replaceBook: { request: 'BookInput', response: 'BookResult', errors: bookErrors, description: ADMIN },
  updateBook: { request: 'BookPatch', response: 'BookResult', errors: bookErrors, description: `${ADMIN} \`stock\` sets the available print copies.` },
  deleteBook: { response: 'Ok', errors: ['FORBIDDEN', 'NOT_FOUND'], description: ADMIN },
  uploadBookCover: {
    response: 'BookResult',
    errors: ['FORBIDDEN', 'NOT_FOUND', 'UNSUPPORTED_MEDIA'],
    description: `${ADMIN} The image is decoded completely and stored as a JPEG of at most 1200x1800.`,
  },
  uploadBookEbook: {
    response: 'BookResult',
    errors: ['FORBIDDEN', 'NOT_FOUND', 'UNSUPPORTED_MEDIA', 'PAYLOAD_TOO_LARGE'],
    description: `${ADMIN} An EPUB (checked by its OCF mimetype entry) or a PDF, at most store.ebookMaxBytes. The book must have the ebook format.`,
    requestBody: { required: true, content: { 'application/epub+zip': { schema: { type: 'string', contentMediaType: 'application/epub+zip' } }, 'application/pdf': { schema: { type: 'string', contentMediaType: 'application/pdf' } } } },
  },
  getBookCover: { response: { contentType: 'image/jpeg', schema: { type: 'string', contentMediaType: 'image/jpeg' }, description: 'the cover, with an ETag; 304 when If-None-Match matches' }, errors: ['NOT_FOUND'] },
  searchBooks: {
    response: 'SearchResult',
    query: [
      { name: 'q', schema: { type: 'string', maxLength: 200 }, description: 'words of the title, authors, ISBN or description; prefixes and small typos match. Empty: every book' },
      { name: 'format', schema: format, description: 'only books sold in this format' },
      { name: 'minPrice', schema: { type: 'integer', minimum: 0 }, description: 'in minor units (cents), inclusive' },
      { name: 'maxPrice', schema: { type: 'integer', minimum: 0 }, description: 'in minor units (cents), inclusive' },
      { name: 'author', schema: { type: 'string' }, description: 'exact author name (as in the author facet), case-insensitive' },
      { name: 'sort', schema: { type: 'string', enum: [...SORT_ORDERS] }, description: 'relevance (default), price (ascending), -price, title, newest' },
      { name: 'page', schema: { type: 'integer', minimum: 1 }, description: '1-based; page × size at most 10,000' },
      { name: 'size', schema: { type: 'integer', minimum: 1, maximum: 100 }, description: 'results per page (default 20)' },
    ],
    description: `Facets count with every filter applied except their own. Price buckets (cents): ${PRICE_BUCKETS.map((b) => b.key).join(', ')}.`,
  },
  suggestBooks: { response: 'Suggestions', query: [{ name: 'q', schema: { type: 'string', maxLength: 200 }, description: 'what was typed so far' }] },
  searchStats: { response: 'SearchStats' },
  getCustomer: { response: 'CustomerMe', description: 'One Kindred account is one customer: the record is keyed by your user id and created on first change.' },
  updateCustomer: { request: 'CustomerPatch', response: 'CustomerResult', errors: ['NOT_FOUND'] },
  listAddresses: { response: 'AddressList' },
  addAddress: { request: 'AddressInput', response: 'AddressResult', errors: ['LIMIT_REACHED'], description: 'name, line1, city, postalCode and country are required; at most 20 addresses.' },
  updateAddress: { request: 'AddressInput', response: 'AddressResult', errors: ['NOT_FOUND'] },
  deleteAddress: { response: 'Ok', errors: ['NOT_FOUND'] },
};
