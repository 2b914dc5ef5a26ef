/**
 * The search box with suggestions as you type (the ARIA combobox pattern: arrow keys move
 * through the list, Enter opens a suggestion or searches, Escape closes). Each keystroke
 * cancels the previous suggestion request, so answers never arrive out of order.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { navigate } from '../router.js';
import { storeApi } from './api.js';
import type { Suggestion } from './types.js';

export function SearchBox({ initial = '', big = false }: { initial?: string; big?: boolean }) {
  const [q, setQ] = useState(initial);
  const [suggestions, setSuggestions] = useState<Suggestion[]>([]);
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(-1);
  const [error, setError] = useState('');
  const pending = useRef<AbortController | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);

  useEffect(() => setQ(initial), [initial]);
  useEffect(() => () => (clearTimeout(timer.current), pending.current?.abort()), []);

  function onInput(value: string) {
    setQ(value);
    setActive(-1);
    clearTimeout(timer.current);
    pending.current?.abort();
    if (value.trim().length < 2) {
      setSuggestions([]);
      setOpen(false);
      return;
    }
    timer.current = setTimeout(async () => {
      const ctl = new AbortController();
      pending.current = ctl;
      try {
        const { suggestions } = await storeApi.suggest(value.trim(), ctl.signal);
        setSuggestions(suggestions);
        setOpen(suggestions.length > 0);
        setError('');
      } catch (err) {
        if ((err as Error).name !== 'AbortError') {
          setSuggestions([]);
          setError('Suggestions are unavailable right now; you can still search.');
        }
      }
    }, 120);
  }

  function search(text = q) {
    setOpen(false);
    const t = text.trim();
    if (t) navigate(`/store/search?q=${encodeURIComponent(t)}`);
  }

  function onKeyDown(e: KeyboardEvent) {
    if (e.key === 'ArrowDown' && suggestions.length) {
      e.preventDefault();
      setOpen(true);
      setActive((a) => (a + 1) % suggestions.length);
    } else if (e.key === 'ArrowUp' && suggestions.length) {
      e.preventDefault();
      setActive((a) => (a <= 0 ? suggestions.length - 1 : a - 1));
    } else if (e.key === 'Escape') {
      setOpen(false);
      setActive(-1);
    } else if (e.key === 'Enter' && open && active >= 0) {
      e.preventDefault();
      setOpen(false);
      navigate(`/store/books/${suggestions[active]!.bookId}`);
    }
  }

  return (
    <form
      class={big ? 'search-box big' : 'search-box'}
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        search();
      }}
    >
      <label for="book-search" class="sr-only">
        Search books by title, author or ISBN
      </label>
      <div class="combo">
        <input
          id="book-search"
          type="search"
          // (Preact's types tie role=combobox to a <datalist>; this is the ARIA 1.2 listbox popup pattern)
          {...({ role: 'combobox' } as object)}
          autoComplete="off"
          placeholder="Search by title, author or ISBN"
          aria-autocomplete="list"
          aria-expanded={open}
          aria-controls="book-suggestions"
          aria-activedescendant={open && active >= 0 ? `suggestion-${active}` : undefined}
          value={q}
          onInput={(e) => onInput(e.currentTarget.value)}
          onKeyDown={onKeyDown}
          onBlur={() => setTimeout(() => setOpen(false), 150)}
          onFocus={() => suggestions.length && setOpen(true)}
        />
        <ul id="book-suggestions" role="listbox" aria-label="Suggestions" class="suggestions" hidden={!open} data-testid="suggestions">
          {suggestions.map((s, i) => (
            <li
              id={`suggestion-${i}`}
              role="option"
              aria-selected={i === active}
              class={i === active ? 'active' : ''}
              onMouseDown={(e) => {
                e.preventDefault();
                setOpen(false);
                navigate(`/store/books/${s.bookId}`);
              }}
            >
              <strong>{s.title}</strong> <span class="muted">{s.authors.join(', ')}</span>
            </li>
          ))}
        </ul>
      </div>
      <button type="submit" class="primary">
        Search
      </button>
      {error && <p class="hint">{error}</p>}
    </form>
  );
}
