/** The cart's line count for the header; reloaded on login and after every cart change. */
import { session } from '../session.js';
import { createStore } from '../store.js';
import { storeApi } from './api.js';
import type { CartLine } from './types.js';

export const cartLines = createStore<CartLine[]>([]);

export async function reloadCart(): Promise<CartLine[]> {
  if (!session.get()) {
    cartLines.set([]);
    return [];
  }
  const { lines } = await storeApi.cart();
  cartLines.set(lines);
  return lines;
}

session.subscribe(() => void reloadCart().catch(() => undefined));
void reloadCart().catch(() => undefined);
