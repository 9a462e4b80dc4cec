/**
 * The AI calls explorer (admin): every call record, newest first, one page of 50 at a time
 * (cursor paging, never a count of all rows, so it stays quick over millions of records).
 * Filters (user, provider, model, status, time range) live in the query string, so a link
 * reproduces the view; `#/calls/<id>` opens one call's detail beside the table.
 */
import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { request } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { defineText, useLang, useText } from '../../i18n';
import { navigate } from '../../router';
import { Badge, ErrorBox, Field, Loading, Page, Pager, Table, usePager, type Column } from '../../ui/components';
import { count, dateTime, localInputToIso, money, ms, shortDateTime } from '../../ui/format';
import './Calls.css';

const text = defineText({
  en: {
    title: 'AI calls',
    filters: 'Filters',
    user: 'User',
    userSearch: 'Find a user by email or name',
    userPick: (name: string) => `Show calls of ${name}`,
    userClear: 'Clear the user filter',
    anyUser: 'Everyone',
    noUserMatch: 'No user matches.',
    provider: 'Provider',
    model: 'Model',
    status: 'Status',
    from: 'From',
    to: 'To',
    reset: 'Reset',
    started: 'Started',
    providerModel: 'Provider / model',
    tokens: 'Tokens',
    cost: 'Cost',
    latency: 'Latency',
    tableCaption: 'Call records, newest first, 50 per page',
    detail: 'Call detail',
    closeDetail: 'Close the detail',
    promptTokens: 'Prompt tokens',
    cachedTokens: 'Cached prompt tokens',
    completionTokens: 'Completion tokens',
    usageSource: 'Usage source',
    ttft: 'Time to first token',
    upstream: 'Upstream time',
    overhead: 'Gateway overhead',
    finished: 'Finished',
    price: 'Price used',
    perMillion: 'per 1M tokens',
    priceInput: 'Input',
    priceCached: 'Cached input',
    priceOutput: 'Output',
    priceFrom: (when: string) => `in force from ${when}`,
    priceMissing: 'The price record was not found.',
    unpriced: 'No price applied',
    flags: 'Flags',
    cachedFlag: 'Cached',
    pricedFlag: 'Priced',
    stream: 'Streamed',
    conversation: 'Conversation',
    requestId: 'Request id',
    callId: 'Call id',
    attempts: 'Attempts',
    noAttempts: 'No attempt was made.',
    error: 'Error',
    badRange: 'The start must be before the end.',
    PENDING: 'Pending',
    SUCCEEDED: 'Succeeded',
    FAILED: 'Failed',
    CANCELLED: 'Cancelled',
    REPORTED: 'Reported by the provider',
    ESTIMATED: 'Estimated',
  },
  zh: {
    title: 'AI 调用',
    filters: '筛选',
    user: '用户',
    userSearch: '按邮箱或名称查找用户',
    userPick: (name: string) => `查看 ${name} 的调用`,
    userClear: '清除用户筛选',
    anyUser: '所有用户',
    noUserMatch: '没有匹配的用户。',
    provider: '服务商',
    model: '模型',
    status: '状态',
    from: '开始时间',
    to: '结束时间',
    reset: '重置',
    started: '开始于',
    providerModel: '服务商 / 模型',
    tokens: 'Token 数',
    cost: '费用',
    latency: '延迟',
    tableCaption: '调用记录，按时间倒序，每页 50 条',
    detail: '调用详情',
    closeDetail: '关闭详情',
    promptTokens: '提示 Token',
    cachedTokens: '缓存命中的提示 Token',
    completionTokens: '生成 Token',
    usageSource: '用量来源',
    ttft: '首 Token 时间',
    upstream: '上游耗时',
    overhead: '网关开销',
    finished: '结束于',
    price: '所用价格',
    perMillion: '每百万 Token',
    priceInput: '输入',
    priceCached: '缓存输入',
    priceOutput: '输出',
    priceFrom: (when: string) => `自 ${when} 起生效`,
    priceMissing: '未找到该价格记录。',
    unpriced: '未计价',
    flags: '标记',
    cachedFlag: '已缓存',
    pricedFlag: '已计价',
    stream: '流式',
    conversation: '会话',
    requestId: '请求 ID',
    callId: '调用 ID',
    attempts: '尝试记录',
    noAttempts: '没有发起任何尝试。',
    error: '错误',
    badRange: '开始时间必须早于结束时间。',
    PENDING: '进行中',
    SUCCEEDED: '成功',
    FAILED: '失败',
    CANCELLED: '已取消',
    REPORTED: '服务商上报',
    ESTIMATED: '估算',
  },
});

type Status = 'PENDING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
const STATUSES: Status[] = ['PENDING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
const PAGE_SIZE = 50;

interface CallRow {
  id: string;
  userId: string;
  provider: string;
  model: string;
  status: Status;
  promptTokens: number;
  cachedPromptTokens: number;
  completionTokens: number;
  startedAt: string;
  latencyMs: number | null;
  costMicros: string;
  currency: string | null;
}

interface CallDetail extends CallRow {
  conversationId: string | null;
  requestId: string | null;
  stream: boolean;
  errorCode: string | null;
  errorMessage: string | null;
  usageSource: 'REPORTED' | 'ESTIMATED' | null;
  finishedAt: string | null;
  ttftMs: number | null;
  upstreamMs: number | null;
  overheadMs: number | null;
  priceId: string | null;
  priced: boolean;
  cached: boolean;
  attempts: unknown;
}

interface Price {
  id: string;
  inputPerMtok: string;
  cachedInputPerMtok: string;
  outputPerMtok: string;
  currency: string;
  effectiveFrom: string;
}

interface UserLite {
  id: string;
  email: string;
  displayName: string;
}

const CALLS = gql`
  query CallsList($filter: AiCallFilter, $first: Int, $after: String) {
    aiCalls(filter: $filter, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id userId provider model status promptTokens cachedPromptTokens completionTokens
        startedAt latencyMs costMicros currency
      }
    }
  }
`;

const CALL = gql`
  query CallsDetail($id: ID!) {
    aiCall(id: $id) {
      id userId conversationId requestId provider model stream status errorCode errorMessage
      promptTokens cachedPromptTokens completionTokens usageSource startedAt finishedAt
      latencyMs ttftMs upstreamMs overheadMs priceId costMicros currency priced cached attempts
    }
  }
`;

const PRICES = gql`
  query CallsPrices($provider: String, $model: String) {
    prices(provider: $provider, model: $model) {
      id inputPerMtok cachedInputPerMtok outputPerMtok currency effectiveFrom
    }
  }
`;

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

const USER_ONE = gql`
  query CallsUser($id: ID!) {
    user(id: $id) { id email displayName }
  }
`;

/** Names of the users on the page, fetched once each and kept for the session. */
const userCache = new Map<string, Promise<UserLite | null>>();
function loadUser(id: string): Promise<UserLite | null> {
  let hit = userCache.get(id);
  if (!hit) {
    hit = request<{ user: UserLite }>(USER_ONE, { id })
      .then((d) => d.user)
      .catch(() => {
        userCache.delete(id);
        return null;
      });
    userCache.set(id, hit);
  }
  return hit;
}

function useUsers(ids: string[]): Record<string, UserLite> {
  const [known, setKnown] = useState<Record<string, UserLite>>({});
  const key = [...new Set(ids)].sort().join(',');
  useEffect(() => {
    let live = true;
    const wanted = key ? key.split(',') : [];
    void Promise.all(wanted.map(loadUser)).then((users) => {
      if (!live) return;
      const next: Record<string, UserLite> = {};
      for (const u of users) if (u) next[u.id] = u;
      setKnown(next);
    });
    return () => {
      live = false;
    };
  }, [key]);
  return known;
}

function statusTone(status: Status): 'ok' | 'warn' | 'bad' | 'info' | 'muted' {
  if (status === 'SUCCEEDED') return 'ok';
  if (status === 'FAILED') return 'bad';
  if (status === 'PENDING') return 'info';
  return 'muted';
}

/** A compact date and time for the table (the full one is its tooltip). */
function shortTime(iso: string, locale: string): string {
  return shortDateTime(iso, locale);
}

/** An RFC 3339 time as a `datetime-local` value (local time, to the minute). */
function isoToLocalInput(iso: string | null): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

const FILTER_KEYS = ['user', 'provider', 'model', 'status', 'from', 'to'] as const;
type Filters = Record<(typeof FILTER_KEYS)[number], string>;

function readFilters(params: URLSearchParams): Filters {
  const f = {} as Filters;
  for (const k of FILTER_KEYS) f[k] = params.get(k) ?? '';
  if (!STATUSES.includes(f.status as Status)) f.status = '';
  return f;
}

export function Calls({ route }: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const filters = readFilters(route.params);
  const selectedId = route.path[1];
  const filterKey = JSON.stringify(filters);

  const apiFilter = useMemo(() => {
    const f: Record<string, string> = {};
    if (filters.user) f.userId = filters.user;
    if (filters.provider) f.provider = filters.provider;
    if (filters.model) f.model = filters.model;
    if (filters.status) f.status = filters.status;
    if (filters.from) f.from = filters.from;
    if (filters.to) f.to = filters.to;
    return f;
  }, [filterKey]);

  const pager = usePager(filterKey);
  const calls = useQuery<{
    aiCalls: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: CallRow[] };
  }>(CALLS, { filter: apiFilter, first: PAGE_SIZE, after: pager.cursor });
  const rows = calls.data?.aiCalls.nodes ?? [];
  const users = useUsers(rows.map((r) => r.userId));

  const go = (next: Partial<Filters>, id?: string) => {
    navigate(id ? `/calls/${encodeURIComponent(id)}` : '/calls', { ...filters, ...next });
  };

  const columns: Column<CallRow>[] = [
    { key: 'started', title: t.started, render: (r) => <span className="calls-nowrap" title={dateTime(r.startedAt, locale)}>{shortTime(r.startedAt, locale)}</span> },
    {
      key: 'user',
      title: t.user,
      render: (r) => {
        const u = users[r.userId];
        return u ? <span title={u.email}>{u.displayName}</span> : <code className="muted">{r.userId.slice(0, 8)}</code>;
      },
    },
    {
      key: 'model',
      title: t.providerModel,
      render: (r) => (
        <>
          {r.provider} / <strong>{r.model}</strong>
        </>
      ),
    },
    { key: 'status', title: t.status, render: (r) => <Badge tone={statusTone(r.status)}>{t[r.status]}</Badge> },
    {
      key: 'tokens',
      title: t.tokens,
      numeric: true,
      render: (r) => (
        <span title={`${t.promptTokens}: ${r.promptTokens} · ${t.completionTokens}: ${r.completionTokens}`}>
          {count(r.promptTokens + r.completionTokens, locale)}
        </span>
      ),
    },
    {
      key: 'cost',
      title: t.cost,
      numeric: true,
      render: (r) => <span className="calls-nowrap">{money(r.costMicros, r.currency, locale)}</span>,
    },
    { key: 'latency', title: t.latency, numeric: true, render: (r) => ms(r.latencyMs, locale) },
  ];

  return (
    <Page title={t.title}>
      <FilterForm filters={filters} onApply={(f) => go(f)} onReset={() => navigate('/calls')} />
      <div className={selectedId ? 'calls-split' : undefined}>
        <div>
          <ErrorBox error={calls.error} onRetry={calls.reload} />
          <Loading show={calls.loading && !calls.data} />
          {calls.data && (
            <div className={calls.loading ? 'calls-stale' : undefined} aria-busy={calls.loading}>
              <Table
                caption={t.tableCaption}
                columns={columns}
                rows={rows}
                rowKey={(r) => r.id}
                selected={selectedId}
                onRowClick={(r) => go({}, r.id)}
              />
              <Pager
                pager={pager}
                hasNext={calls.data.aiCalls.pageInfo.hasNextPage}
                endCursor={calls.data.aiCalls.pageInfo.endCursor}
              />
            </div>
          )}
        </div>
        {selectedId && (
          <CallPanel id={selectedId} onClose={() => go({})} closeLabel={c.close} />
        )}
      </div>
    </Page>
  );
}

function FilterForm({
  filters,
  onApply,
  onReset,
}: {
  filters: Filters;
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

interface Attempt {
  provider?: string;
  model?: string;
  outcome?: string;
  ms?: number;
  httpAttempts?: number;
}

function CallPanel({ id, onClose, closeLabel }: { id: string; onClose(): void; closeLabel: string }) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const call = useQuery<{ aiCall: CallDetail }>(CALL, { id });
  const d = call.data?.aiCall.id === id ? call.data.aiCall : undefined;
  const prices = useQuery<{ prices: Price[] }>(
    PRICES,
    { provider: d?.provider, model: d?.model },
    !d?.priceId,
  );
  const users = useUsers(d ? [d.userId] : []);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    heading.current?.focus();
  }, [id]);

  const price = d?.priceId ? prices.data?.prices.find((p) => p.id === d.priceId) : undefined;
  const attempts: Attempt[] = Array.isArray(d?.attempts) ? (d?.attempts as Attempt[]) : [];
  const user = d ? users[d.userId] : undefined;

  return (
    <aside className="card detail calls-detail" aria-labelledby="calls-detail-title" data-testid="call-detail">
      <div className="calls-detail-head">
        <h2 id="calls-detail-title" ref={heading} tabIndex={-1}>
          {t.detail}
        </h2>
        <button type="button" onClick={onClose} aria-label={t.closeDetail}>
          {closeLabel}
        </button>
      </div>
      <ErrorBox error={call.error} onRetry={call.reload} />
      <Loading show={call.loading && !d} />
      {d && (
        <dl>
          <dt>{t.callId}</dt>
          <dd>
            <code>{d.id}</code>
          </dd>
          <dt>{t.user}</dt>
          <dd>{user ? `${user.displayName} <${user.email}>` : <code>{d.userId}</code>}</dd>
          <dt>{t.providerModel}</dt>
          <dd>
            {d.provider} / <strong>{d.model}</strong>
          </dd>
          <dt>{t.status}</dt>
          <dd>
            <Badge tone={statusTone(d.status)}>{t[d.status]}</Badge>
          </dd>
          <dt>{t.started}</dt>
          <dd>{dateTime(d.startedAt, locale)}</dd>
          <dt>{t.finished}</dt>
          <dd>{dateTime(d.finishedAt, locale)}</dd>
          <dt>{t.promptTokens}</dt>
          <dd data-testid="detail-prompt">{count(d.promptTokens, locale)}</dd>
          <dt>{t.cachedTokens}</dt>
          <dd data-testid="detail-cached">{count(d.cachedPromptTokens, locale)}</dd>
          <dt>{t.completionTokens}</dt>
          <dd data-testid="detail-completion">{count(d.completionTokens, locale)}</dd>
          <dt>{t.usageSource}</dt>
          <dd>{d.usageSource ? t[d.usageSource] : '—'}</dd>
          <dt>{t.ttft}</dt>
          <dd>{ms(d.ttftMs, locale)}</dd>
          <dt>{t.upstream}</dt>
          <dd>{ms(d.upstreamMs, locale)}</dd>
          <dt>{t.overhead}</dt>
          <dd>{ms(d.overheadMs, locale)}</dd>
          <dt>{t.latency}</dt>
          <dd>{ms(d.latencyMs, locale)}</dd>
          <dt>{t.cost}</dt>
          <dd data-testid="detail-cost">
            <strong>{money(d.costMicros, d.currency, locale)}</strong>
          </dd>
          <dt>{t.price}</dt>
          <dd>
            {!d.priceId ? (
              t.unpriced
            ) : price ? (
              <div data-testid="detail-price">
                <div className="muted">
                  {t.perMillion} · {t.priceFrom(dateTime(price.effectiveFrom, locale))}
                </div>
                <div>
                  {t.priceInput}: {money(price.inputPerMtok, price.currency, locale)}
                </div>
                <div>
                  {t.priceCached}: {money(price.cachedInputPerMtok, price.currency, locale)}
                </div>
                <div>
                  {t.priceOutput}: {money(price.outputPerMtok, price.currency, locale)}
                </div>
                <code className="muted">{d.priceId}</code>
              </div>
            ) : prices.loading ? (
              c.loading
            ) : (
              <>
                {t.priceMissing} <code>{d.priceId}</code>
              </>
            )}
          </dd>
          <dt>{t.flags}</dt>
          <dd>
            {t.pricedFlag}: {d.priced ? c.yes : c.no} · {t.cachedFlag}: {d.cached ? c.yes : c.no} · {t.stream}:{' '}
            {d.stream ? c.yes : c.no}
          </dd>
          <dt>{t.conversation}</dt>
          <dd>{d.conversationId ? <code>{d.conversationId}</code> : '—'}</dd>
          <dt>{t.requestId}</dt>
          <dd>{d.requestId ? <code>{d.requestId}</code> : '—'}</dd>
          <dt>{t.attempts}</dt>
          <dd>
            {attempts.length === 0 ? (
              t.noAttempts
            ) : (
              <ol className="calls-attempts" data-testid="detail-attempts">
                {attempts.map((a, i) => (
                  <li key={i}>
                    {a.provider ?? '?'} / {a.model ?? '?'} —{' '}
                    <Badge tone={a.outcome === 'SUCCEEDED' ? 'ok' : 'bad'}>{a.outcome ?? '?'}</Badge> {ms(a.ms ?? null, locale)}
                  </li>
                ))}
              </ol>
            )}
          </dd>
          {(d.errorCode || d.errorMessage) && (
            <>
              <dt>{t.error}</dt>
              <dd className="calls-error" data-testid="detail-error">
                {d.errorCode && <code>{d.errorCode}</code>} {d.errorMessage}
              </dd>
            </>
          )}
        </dl>
      )}
    </aside>
  );
}
