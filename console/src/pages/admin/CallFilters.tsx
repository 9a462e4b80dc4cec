/** The filter form of the AI calls explorer, with its user picker. */
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useText } from '../../i18n';
import { ErrorBox, Field } from '../../ui/components';
import { localInputToIso } from '../../ui/format';
import { text } from './Calls.text';
import { STATUSES, USER_ONE, type Filters, type UserLite } from './callsShared';

const CHOICES = gql`
  query CallsChoices {
    models { provider id }
    plugins { instance kind }
  }
`;

const USER_SEARCH = gql`
  query CallsUserSearch($search: String, $first: Int) {
    users(search: $search, first: $first) {
      nodes { id email displayName }
    }
  }
`;

/** An RFC 3339 time as a `datetime-local` value (local time, to the minute). */
function isoToLocalInput(iso: string | null): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export function FilterForm({
  filters,
  keyLabel,
  onApply,
  onReset,
}: {
  filters: Filters;
  /** The filtered API key's prefix and name, once known. */
  keyLabel?: string;
  onApply(f: Filters): void;
  onReset(): void;
}) {
  const t = useText(text);
  const c = useText(common);
  const [draft, setDraft] = useState({
    ...filters,
    from: isoToLocalInput(filters.from),
    to: isoToLocalInput(filters.to),
  });
  const [rangeError, setRangeError] = useState(false);
  // Follow the address when it changes (back/forward, a pasted link).
  const key = JSON.stringify(filters);
  useEffect(() => {
    setDraft({ ...filters, from: isoToLocalInput(filters.from), to: isoToLocalInput(filters.to) });
    setRangeError(false);
  }, [key]);

  const choices = useQuery<{ models: { provider: string; id: string }[]; plugins: { instance: string | null; kind: string | null }[] }>(
    CHOICES,
  );
  const providers = useMemo(() => {
    const set = new Set<string>();
    for (const p of choices.data?.plugins ?? []) if (p.kind === 'AI_PROVIDER' && p.instance) set.add(p.instance);
    for (const m of choices.data?.models ?? []) set.add(m.provider);
    return [...set].sort();
  }, [choices.data]);
  const models = useMemo(
    () =>
      [...new Set((choices.data?.models ?? []).filter((m) => !draft.provider || m.provider === draft.provider).map((m) => m.id))].sort(),
    [choices.data, draft.provider],
  );

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const from = localInputToIso(draft.from) ?? '';
    const to = localInputToIso(draft.to) ?? '';
    if (from && to && from >= to) {
      setRangeError(true);
      return;
    }
    setRangeError(false);
    onApply({ ...draft, provider: draft.provider.trim(), model: draft.model.trim(), from, to });
  };

  return (
    <form className="card calls-filters" onSubmit={submit} aria-label={t.filters}>
      <UserPicker value={filters.user} onPick={(id) => onApply({ ...filters, user: id })} />
      {filters.key && (
        <div className="calls-user">
          <span className="field-label">{t.apiKey}</span>
          <span className="calls-user-chip" data-testid="calls-key-chip">
            {keyLabel ? <span>{keyLabel}</span> : <code className="muted">{filters.key}</code>}
            <button type="button" className="link" onClick={() => onApply({ ...filters, key: '' })} aria-label={t.keyClear} title={t.keyClear}>
              ×
            </button>
          </span>
        </div>
      )}
      <div className="row">
        <Field label={t.provider}>
          <input
            list="calls-providers"
            value={draft.provider}
            onChange={(e) => setDraft({ ...draft, provider: e.target.value })}
            autoComplete="off"
          />
        </Field>
        <datalist id="calls-providers">
          {providers.map((p) => (
            <option key={p} value={p} />
          ))}
        </datalist>
        <Field label={t.model}>
          <input
            list="calls-models"
            value={draft.model}
            onChange={(e) => setDraft({ ...draft, model: e.target.value })}
            autoComplete="off"
          />
        </Field>
        <datalist id="calls-models">
          {models.map((m) => (
            <option key={m} value={m} />
          ))}
        </datalist>
        <Field label={t.status}>
          <select value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.target.value })}>
            <option value="">{c.all}</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {t[s]}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t.from}>
          <input type="datetime-local" value={draft.from} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
        </Field>
        <Field label={t.to}>
          <input type="datetime-local" value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
        </Field>
        <div className="calls-filter-actions">
          <button type="submit" className="primary">
            {c.apply}
          </button>
          <button type="button" onClick={onReset}>
            {t.reset}
          </button>
        </div>
      </div>
      {rangeError && (
        <p className="error" role="alert">
          {t.badRange}
        </p>
      )}
    </form>
  );
}

/** Type part of an email or a name, then pick the user: the filter keeps their id. */
function UserPicker({ value, onPick }: { value: string; onPick(id: string): void }) {
  const t = useText(text);
  const [query, setQuery] = useState('');
  const [debounced, setDebounced] = useState('');
  useEffect(() => {
    const timer = window.setTimeout(() => setDebounced(query.trim()), 250);
    return () => window.clearTimeout(timer);
  }, [query]);
  const found = useQuery<{ users: { nodes: UserLite[] } }>(USER_SEARCH, { search: debounced, first: 8 }, !debounced);
  const chosen = useQuery<{ user: UserLite }>(USER_ONE, { id: value }, !value);

  if (value) {
    const u = chosen.data?.user;
    return (
      <div className="calls-user">
        <span className="field-label">{t.user}</span>
        <span className="calls-user-chip" data-testid="calls-user-chip">
          {u ? (
            <>
              <strong>{u.displayName}</strong> <span className="muted">{u.email}</span>
            </>
          ) : chosen.error ? (
            <code>{value}</code>
          ) : (
            <code className="muted">{value.slice(0, 8)}…</code>
          )}
          <button type="button" className="link" onClick={() => onPick('')} aria-label={t.userClear} title={t.userClear}>
            ×
          </button>
        </span>
      </div>
    );
  }
  const list = debounced ? found.data?.users.nodes : undefined;
  return (
    <div className="calls-user">
      <Field label={t.user} hint={t.userSearch}>
        <input type="search" value={query} placeholder={t.anyUser} onChange={(e) => setQuery(e.target.value)} autoComplete="off" />
      </Field>
      <ErrorBox error={debounced ? found.error : undefined} />
      {list && (
        <ul className="calls-user-results">
          {list.length === 0 && <li className="muted">{t.noUserMatch}</li>}
          {list.map((u) => (
            <li key={u.id}>
              <button type="button" className="link" onClick={() => onPick(u.id)} aria-label={t.userPick(u.displayName)}>
                <strong>{u.displayName}</strong> <span className="muted">{u.email}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
