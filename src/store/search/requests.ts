/** Requests to SUBJECTS.search (queue group "search"), and their replies. */
import type { Book } from '../contracts.js';
import type { Facets, SearchQuery } from './index.js';

export type SearchRequest =
  | { op: 'search'; query: SearchQuery }
  | { op: 'suggest'; q: string }
  | { op: 'stats' };

export interface SearchReplies {
  search: { results: Book[]; total: number; page: number; size: number; pages: number; facets: Facets };
  suggest: { suggestions: Array<{ bookId: string; title: string; authors: string[] }> };
  /** `building`: the start-up rebuild from the Books service is still running */
  stats: { indexed: number; building: boolean; rebuiltAt: number | null };
}

export const MAX_PAGE_SIZE = 100;
/** Deep paging is refused beyond this many results (page × size). */
export const MAX_RESULT_WINDOW = 10_000;
export const MAX_QUERY_CHARS = 200;
