/**
 * The AI calls explorer (admin): every call record, newest first, one page of 50 at a time
 * (cursor paging, never a count of all rows, so it stays quick over millions of records).
 * Filters (user, API key, provider, model, status, time range) live in the query string, so a link
 * reproduces the view; `#/calls/<id>` opens one call's detail beside the table.
 */
import { useMemo } from 'react';
import type { ViewProps } from '../../App';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useLang, useText } from '../../i18n';
import { navigate } from '../../router';
import { Badge, ErrorBox, Loading, Page, Pager, Table, usePager, type Column } from '../../ui/components';
import { count, dateTime, money, ms, shortDateTime } from '../../ui/format';
import { CallPanel } from './CallDetail';
import { FilterForm } from './CallFilters';
import { text } from './Calls.text';
import { FILTER_KEYS, STATUSES, statusTone, useKeys, useUsers, type CallRow, type Filters, type Status } from './callsShared';
import './Calls.css';

const PAGE_SIZE = 50;

const CALLS = gql`
  query CallsList($filter: AiCallFilter, $first: Int, $after: String) {
    aiCalls(filter: $filter, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id userId provider model status promptTokens cachedPromptTokens completionTokens
        startedAt latencyMs costMicros currency apiKeyId
      }
    }
  }
`;

/** A compact date and time for the table (the full one is its tooltip). */
function shortTime(iso: string, locale: string): string {
  return shortDateTime(iso, locale);
}

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
    if (filters.key) f.apiKeyId = filters.key;
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
  const keys = useKeys(rows);

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
      key: 'apiKey',
      title: t.apiKey,
      render: (r) => {
        if (!r.apiKeyId) return <span className="muted">—</span>;
        const k = keys[r.apiKeyId];
        return k ? <code className="calls-nowrap" title={k.name}>{k.prefix}…</code> : <code className="muted">{r.apiKeyId.slice(0, 8)}</code>;
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
      <FilterForm
        filters={filters}
        keyLabel={filters.key && keys[filters.key] ? `${keys[filters.key].prefix}… ${keys[filters.key].name}` : undefined}
        onApply={(f) => go(f)}
        onReset={() => navigate('/calls')}
      />
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
          <CallPanel id={selectedId} onClose={() => go({})} closeLabel={c.close} onKey={(key) => go({ key })} />
        )}
      </div>
    </Page>
  );
}
