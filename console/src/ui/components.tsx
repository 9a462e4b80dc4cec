/** Small building blocks every page uses: page frame, errors, loading, tables, paging, tiles,
 * badges, form fields and dialogs. */
import { useEffect, useId, useRef, useState, type AriaAttributes, type ReactNode } from 'react';
import { ApiError } from '../api/client';
import { common } from '../i18n/common';
import { useText } from '../i18n';
import { href } from '../router';

export function Page({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · CloudBase AI`;
  }, [title]);
  return (
    <section className="page" aria-labelledby="page-title">
      <header className="page-head">
        <h1 id="page-title">{title}</h1>
        {actions && <div className="page-actions">{actions}</div>}
      </header>
      {children}
    </section>
  );
}

/** An error in the language in force: the code's meaning, then the server's own words. */
export function ErrorBox({ error, onRetry }: { error: ApiError | undefined | null; onRetry?: () => void }) {
  const t = useText(common);
  if (!error) return null;
  const known = (t as Record<string, unknown>)[error.code];
  return (
    <div className="error" role="alert">
      <strong>{typeof known === 'string' ? known : error.code}</strong> <span>{error.message}</span>{' '}
      <code className="muted">{error.code}</code>
      {(error.code === 'MFA_REQUIRED' || error.code === 'PASSWORD_CHANGE_REQUIRED') && !location.hash.startsWith(href('/profile')) && (
        <>
          {' '}
          <a href={href('/profile')}>{error.code === 'MFA_REQUIRED' ? t.turnOnMfa : t.changePasswordNow}</a>
        </>
      )}
      {onRetry && (
        <button type="button" className="link" onClick={onRetry}>
          {t.retry}
        </button>
      )}
    </div>
  );
}

export function Loading({ show = true }: { show?: boolean }) {
  const t = useText(common);
  return show ? (
    <p className="muted" role="status">
      {t.loading}
    </p>
  ) : null;
}

export interface Column<T> {
  key: string;
  title: string;
  render(row: T): ReactNode;
  /** Right-aligned (numbers and money). */
  numeric?: boolean;
}

export function Table<T>({
  columns,
  rows,
  rowKey,
  onRowClick,
  selected,
  caption,
  rowClass,
}: {
  columns: Column<T>[];
  rows: T[];
  rowKey(row: T): string;
  onRowClick?: (row: T) => void;
  selected?: string;
  caption?: string;
  /** An extra class for a row (such as `inactive`). */
  rowClass?: (row: T) => string | undefined;
}) {
  const t = useText(common);
  return (
    <div className="table-wrap">
      <table>
        {caption && <caption>{caption}</caption>}
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.key} scope="col" className={c.numeric ? 'num' : undefined}>
                {c.title}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 && (
            <tr>
              <td colSpan={columns.length} className="muted">
                {t.none}
              </td>
            </tr>
          )}
          {rows.map((row) => {
            const id = rowKey(row);
            return (
              <tr
                key={id}
                className={[onRowClick ? 'clickable' : '', selected === id ? 'selected' : '', rowClass?.(row) ?? ''].join(' ').trim() || undefined}
                onClick={onRowClick ? () => onRowClick(row) : undefined}
                onKeyDown={
                  onRowClick
                    ? (e) => {
                        if (e.key === 'Enter' || e.key === ' ') {
                          e.preventDefault();
                          onRowClick(row);
                        }
                      }
                    : undefined
                }
                tabIndex={onRowClick ? 0 : undefined}
                aria-selected={onRowClick ? selected === id : undefined}
              >
                {columns.map((c) => (
                  <td key={c.key} className={c.numeric ? 'num' : undefined}>
                    {c.render(row)}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/**
 * Cursor paging: remembers the cursors of the pages seen so "previous" works without an offset.
 * `cursor` is what to pass as `after`.
 */
export function usePager(resetKey: string) {
  const [stack, setStack] = useState<(string | null)[]>([null]);
  useEffect(() => setStack([null]), [resetKey]);
  return {
    cursor: stack[stack.length - 1],
    page: stack.length,
    next(endCursor: string | null | undefined) {
      if (endCursor) setStack((s) => [...s, endCursor]);
    },
    previous() {
      setStack((s) => (s.length > 1 ? s.slice(0, -1) : s));
    },
    first() {
      setStack([null]);
    },
  };
}

export function Pager({
  pager,
  hasNext,
  endCursor,
}: {
  pager: ReturnType<typeof usePager>;
  hasNext: boolean;
  endCursor: string | null | undefined;
}) {
  const t = useText(common);
  return (
    <nav className="pager" aria-label={t.pages}>
      <button type="button" onClick={pager.first} disabled={pager.page === 1}>
        {t.first}
      </button>
      <button type="button" onClick={pager.previous} disabled={pager.page === 1}>
        {t.previous}
      </button>
      <span className="muted">{pager.page}</span>
      <button type="button" onClick={() => pager.next(endCursor)} disabled={!hasNext}>
        {t.next}
      </button>
    </nav>
  );
}

export function Tiles({ children }: { children: ReactNode }) {
  return <div className="tiles">{children}</div>;
}

export function Tile({ label, value, hint }: { label: string; value: ReactNode; hint?: ReactNode }) {
  return (
    <div className="tile">
      <div className="tile-label">{label}</div>
      <div className="tile-value">{value}</div>
      {hint && <div className="tile-hint muted">{hint}</div>}
    </div>
  );
}

/** A status word with a colour by its meaning (`ok`, `warn`, `bad`, `info`). */
export function Badge({ tone, children }: { tone: 'ok' | 'warn' | 'bad' | 'info' | 'muted'; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

export function Field({ label, children, hint }: { label: string; children: ReactNode; hint?: string }) {
  return (
    <label className="field">
      <span className="field-label">{label}</span>
      {children}
      {hint && <span className="field-hint muted">{hint}</span>}
    </label>
  );
}

/** A modal dialog (the browser's `<dialog>`: focus trapped, Escape closes). */
export function Dialog({ open, title, onClose, children }: { open: boolean; title: string; onClose(): void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  // Each dialog names itself by its own heading, however many a page holds.
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} onClose={onClose} aria-labelledby={titleId}>
      <h2 id={titleId}>{title}</h2>
      {open && children}
    </dialog>
  );
}

/** A budget meter: spent, then reserved, as shares of the limit (see `limitShares`); the caller
 * names it for assistive technology (`role="meter"` with its values) or hides it. */
export function Meter({
  shares,
  ...aria
}: { shares: { spent: number; reserved: number } } & AriaAttributes & { role?: 'meter' }) {
  return (
    <div className="meter" {...aria}>
      <div className="meter-spent" style={{ width: `${shares.spent}%` }} />
      <div className="meter-reserved" style={{ width: `${shares.reserved}%` }} />
    </div>
  );
}

/** A live dot: green while a subscription is up, grey with a word when it is reconnecting. */
export function LiveDot({ error }: { error: ApiError | undefined }) {
  const t = useText(common);
  return (
    <span className={`live ${error ? 'live-off' : 'live-on'}`} role="status">
      {error ? t.offline : t.live}
    </span>
  );
}
