/**
 * Who is logged in: the token from POST /v1/login or /v1/register, kept in localStorage so a
 * reload stays logged in. The same account is used by Tindr and the book store.
 */
import { createStore } from './store.js';

export interface Session {
  userId: string;
  username: string;
  token: string;
  expiresAt: number;
}

const KEY = 'kindred.session';

function load(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return s.expiresAt > Date.now() ? s : null;
  } catch {
    return null;
  }
}

export const session = createStore<Session | null>(load());

session.subscribe((s) => {
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
});
