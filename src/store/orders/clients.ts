/**
 * How the Orders service calls the Books and Payment services: only over the bus, with
 * the request shapes of src/store/contracts.ts.
 */
import { handOver, type Bus } from '../../actors/bus.js';
import { SUBJECTS, type Book, type BooksReplies, type BooksRequest, type PaymentOutcome, type PaymentsRequest } from '../contracts.js';

export class BooksClient {
  constructor(
    private readonly bus: Bus,
    private readonly timeoutMs = 5000,
  ) {}

  private ask<K extends BooksRequest['op']>(req: Extract<BooksRequest, { op: K }>): Promise<BooksReplies[K]> {
    // each request object is built for this one call: handed over, not copied (bus.ts HandOver)
    return this.bus.request(SUBJECTS.books, handOver(req), this.timeoutMs) as Promise<BooksReplies[K]>;
  }

  async get(bookIds: string[]): Promise<Book[]> {
    return (await this.ask({ op: 'get', bookIds })).books;
  }

  reserve(orderId: string, lines: Array<{ bookId: string; quantity: number }>): Promise<BooksReplies['reserve']> {
    return this.ask({ op: 'reserve', orderId, lines });
  }

  release(orderId: string): Promise<BooksReplies['release']> {
    return this.ask({ op: 'release', orderId });
  }

  commit(orderId: string): Promise<BooksReplies['commit']> {
    return this.ask({ op: 'commit', orderId });
  }

  ebookFile(bookId: string): Promise<BooksReplies['ebookFile']> {
    return this.ask({ op: 'ebookFile', bookId });
  }
}

export class PaymentsClient {
  constructor(
    private readonly bus: Bus,
    /** covers the adapter's own retries with backoff */
    private readonly timeoutMs = 20_000,
  ) {}

  request(req: PaymentsRequest): Promise<PaymentOutcome> {
    return this.bus.request(SUBJECTS.payments, handOver(req), this.timeoutMs) as Promise<PaymentOutcome>;
  }
}
