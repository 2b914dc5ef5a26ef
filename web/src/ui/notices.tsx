/** Messages for the person: errors, confirmations, live news (a match!). Shown in live regions. */
import type { ComponentChildren } from 'preact';
import { describeError } from '../api.js';
import { createStore, useStore } from '../store.js';

export interface Notice {
  id: number;
  kind: 'error' | 'info';
  text: string;
  /** optional content (a link) shown after the text */
  extra?: ComponentChildren;
}

const notices = createStore<Notice[]>([]);
let nextId = 1;

export function notify(text: string, kind: Notice['kind'] = 'info', extra?: ComponentChildren, ms = kind === 'error' ? 12_000 : 6_000): void {
  const id = nextId++;
  notices.set((list) => [...list, { id, kind, text, extra }]);
  setTimeout(() => dismiss(id), ms);
}

export function notifyError(err: unknown): void {
  notify(describeError(err), 'error');
}

export function dismiss(id: number): void {
  notices.set((list) => list.filter((n) => n.id !== id));
}

export function Notices() {
  const list = useStore(notices);
  const errors = list.filter((n) => n.kind === 'error');
  const infos = list.filter((n) => n.kind === 'info');
  const render = (n: Notice) => (
    <div key={n.id} class={`notice notice-${n.kind}`} data-testid={`notice-${n.kind}`}>
      <span>{n.text}</span>
      {n.extra}
      <button type="button" class="link-button" aria-label="Dismiss" onClick={() => dismiss(n.id)}>
        ×
      </button>
    </div>
  );
  return (
    <div class="notices">
      <div role="alert">{errors.map(render)}</div>
      <div role="status" aria-live="polite">{infos.map(render)}</div>
    </div>
  );
}

/** An inline error under a form or section; renders nothing without one. */
export function ErrorText({ error, id }: { error: unknown; id?: string }) {
  if (!error) return null;
  return (
    <p class="error-text" role="alert" id={id}>
      {describeError(error)}
    </p>
  );
}
