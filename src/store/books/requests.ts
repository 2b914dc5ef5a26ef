/**
 * The Books service's requests beyond the shared contract (src/store/contracts.ts): the
 * admin operations behind the REST routes, paging for the Search service's rebuild and cover
 * bytes. Same subject (SUBJECTS.books), same envelope. `by` is the caller's user id as
 * verified from its bearer token at the edge; the Books service checks it is an admin.
 */
import type { Book } from '../contracts.js';

export type BooksAdminRequest =
  /** `input` is the untrusted JSON body of POST /books: the service validates it */
  | { op: 'create'; by: string; input: unknown }
  /** `replace`: PUT (every field required) rather than PATCH (the fields given) */
  | { op: 'update'; by: string; bookId: string; input: unknown; replace: boolean }
  | { op: 'delete'; by: string; bookId: string }
  /** a chunk of a bulk import: each item is a parsed line (or its parse error) and its 1-based line number */
  | { op: 'import'; by: string; items: ImportItem[] }
  | { op: 'setCover'; by: string; bookId: string; data: Uint8Array }
  | { op: 'setEbook'; by: string; bookId: string; data: Uint8Array; contentType: string }
  /** every book in a stable order, `limit` at a time after the cursor (Search rebuilds from this) */
  | { op: 'page'; after?: string; limit: number }
  | { op: 'cover'; imageId: string }
  | { op: 'isAdmin'; userId: string };

export type ImportItem = { line: number; value: unknown } | { line: number; parseError: string };

export interface BooksAdminReplies {
  create: { book: Book };
  update: { book: Book };
  delete: { deleted: true };
  import: { created: Array<{ line: number; bookId: string }>; failed: Array<{ line: number; code: string; message: string }> };
  setCover: { book: Book };
  setEbook: { book: Book };
  page: { books: Book[]; next: string | null };
  cover: { data: Uint8Array; contentType: string };
  isAdmin: { admin: boolean };
}
