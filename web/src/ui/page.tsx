/** A page's frame: its heading takes focus when the page opens, so screen readers announce it. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export function Page({ title, children, actions, wide }: { title: string; children: ComponentChildren; actions?: ComponentChildren; wide?: boolean }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Kindred`;
    heading.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <section class={wide ? 'page page-wide' : 'page'}>
      <div class="page-head">
        <h1 tabIndex={-1} ref={heading}>
          {title}
        </h1>
        {actions}
      </div>
      {children}
    </section>
  );
}
