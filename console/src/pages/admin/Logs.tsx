/**
 * Stored warnings, errors and business events (admin): filter by level, source prefix, text and
 * time; page through them newest first; open a row for its fields and request id; a live tail
 * puts new entries on top as they are stored.
 */
import { useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { gql } from '../../api/gql';
import { useQuery, useSubscription } from '../../api/hooks';
import { common } from '../../i18n/common';
import { defineText, useLang, useText } from '../../i18n';
import { navigate } from '../../router';
import { Badge, ErrorBox, Field, LiveDot, Loading, Page, Pager, Table, usePager } from '../../ui/components';
import { dateTime, localInputToIso } from '../../ui/format';
import '../ops.css';

const text = defineText({
  en: {
    title: 'Logs',
    filters: 'Filters',
    level: 'Level',
    anyLevel: 'Any level',
    levelError: 'Errors',
    levelWarn: 'Warnings and errors',
    levelInfo: 'Everything (events too)',
    source: 'Source starts with',
    sourceCol: 'Source',
    sourceHint: 'e.g. cloudbase::event',
    text: 'Message contains',
    since: 'From',
    until: 'Until',
    clear: 'Clear',
    liveTail: 'Live tail',
    at: 'Time',
    message: 'Message',
    details: 'Entry',
    fields: 'Fields',
    requestId: 'Request id',
    pickOne: 'Select an entry to see its fields.',
    newOnTop: (n: number) => `${n} new since the tail started`,
  },
  zh: {
    title: '日志',
    filters: '筛选',
    level: '级别',
    anyLevel: '所有级别',
    levelError: '仅错误',
    levelWarn: '警告及错误',
    levelInfo: '全部（含业务事件）',
    source: '来源前缀',
    sourceCol: '来源',
    sourceHint: '例如 cloudbase::event',
    text: '消息包含',
    since: '开始时间',
    until: '结束时间',
    clear: '清除',
    liveTail: '实时跟踪',
    at: '时间',
    message: '消息',
    details: '日志详情',
    fields: '字段',
    requestId: '请求 ID',
    pickOne: '选择一条日志以查看其字段。',
    newOnTop: (n: number) => `跟踪开始后新增 ${n} 条`,
  },
});

interface LogEntry {
  id: string;
  at: string;
  level: 'ERROR' | 'WARN' | 'INFO';
  source: string;
  message: string;
  fields: unknown;
  requestId: string | null;
}

const LOGS = gql`
  query LogsPage($filter: LogsFilter, $first: Int, $after: String) {
    logs(filter: $filter, first: $first, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        at
        level
        source
        message
        fields
        requestId
      }
    }
  }
`;

const TAIL = gql`
  subscription LogsTail($filter: LogsFilter) {
    logAppended(filter: $filter) {
      id
      at
      level
      source
      message
      fields
      requestId
    }
  }
`;

const LEVEL_TONE = { ERROR: 'bad', WARN: 'warn', INFO: 'info' } as const;

export function Logs({ route }: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const p = route.params;
  const level = p.get('level') ?? '';
  const source = p.get('source') ?? '';
  const contains = p.get('text') ?? '';
  const since = p.get('since') ?? '';
  const until = p.get('until') ?? '';
  const filter = {
    level: level || undefined,
    source: source || undefined,
    text: contains || undefined,
    since: localInputToIso(since),
    until: localInputToIso(until),
  };
  const pager = usePager(JSON.stringify(filter));
  const { data, error, loading, reload } = useQuery<{
    logs: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: LogEntry[] };
  }>(LOGS, { filter, first: 50, after: pager.cursor });

  const [tail, setTail] = useState(false);
  const [tailed, setTailed] = useState<LogEntry[]>([]);
  const tailFilter = { level: filter.level, source: filter.source, text: filter.text };
  const live = useSubscription<{ logAppended: LogEntry }>(
    TAIL,
    { filter: tailFilter },
    (d) => setTailed((list) => (list.some((e) => e.id === d.logAppended.id) ? list : [d.logAppended, ...list].slice(0, 500))),
    tail,
  );
  const [selected, setSelected] = useState<LogEntry>();

  const rows = [...(pager.page === 1 ? tailed : []), ...(data?.logs.nodes ?? [])].filter(
    (e, i, all) => all.findIndex((x) => x.id === e.id) === i,
  );

  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const get = (k: string) => String(f.get(k) ?? '').trim();
    setTailed([]);
    navigate('/logs', { level: get('level'), source: get('source'), text: get('text'), since: get('since'), until: get('until') });
  };

  return (
    <Page
      title={t.title}
      actions={
        <>
          <label className="checkbox">
            <input
              type="checkbox"
              checked={tail}
              onChange={(e) => {
                setTail(e.target.checked);
                if (!e.target.checked) setTailed([]);
              }}
            />
            {t.liveTail}
          </label>
          {tail && <LiveDot error={live.error} />}
          <button type="button" onClick={reload}>
            {c.refresh}
          </button>
        </>
      }
    >
      <form className="card row" onSubmit={submit} aria-label={t.filters} key={route.params.toString()}>
        <Field label={t.level}>
          <select name="level" defaultValue={level}>
            <option value="">{t.anyLevel}</option>
            <option value="ERROR">{t.levelError}</option>
            <option value="WARN">{t.levelWarn}</option>
            <option value="INFO">{t.levelInfo}</option>
          </select>
        </Field>
        <Field label={t.source} hint={t.sourceHint}>
          <input name="source" defaultValue={source} />
        </Field>
        <Field label={t.text}>
          <input name="text" type="search" defaultValue={contains} />
        </Field>
        <Field label={t.since}>
          <input name="since" type="datetime-local" defaultValue={since} />
        </Field>
        <Field label={t.until}>
          <input name="until" type="datetime-local" defaultValue={until} />
        </Field>
        <button type="submit">{c.apply}</button>
        <button type="button" onClick={() => navigate('/logs')}>
          {t.clear}
        </button>
      </form>
      <ErrorBox error={error} onRetry={reload} />
      {tail && tailed.length > 0 && <p className="muted">{t.newOnTop(tailed.length)}</p>}
      <div className="split">
        <div>
          <Loading show={loading && !data} />
          <Table<LogEntry>
            caption={t.title}
            rows={rows}
            rowKey={(r) => r.id}
            selected={selected?.id}
            onRowClick={(r) => setSelected(selected?.id === r.id ? undefined : r)}
            columns={[
              { key: 'at', title: t.at, render: (r) => <span className="nowrap">{dateTime(r.at, locale)}</span> },
              { key: 'level', title: t.level, render: (r) => <Badge tone={LEVEL_TONE[r.level]}>{r.level}</Badge> },
              { key: 'source', title: t.sourceCol, render: (r) => <code>{r.source}</code> },
              { key: 'message', title: t.message, render: (r) => r.message },
            ]}
          />
          <Pager pager={pager} hasNext={!!data?.logs.pageInfo.hasNextPage} endCursor={data?.logs.pageInfo.endCursor} />
        </div>
        <aside className="card detail" aria-label={t.details}>
          <h2>{t.details}</h2>
          {selected ? (
            <dl>
              <dt>{t.at}</dt>
              <dd>{dateTime(selected.at, locale)}</dd>
              <dt>{t.level}</dt>
              <dd>{selected.level}</dd>
              <dt>{t.sourceCol}</dt>
              <dd>
                <code>{selected.source}</code>
              </dd>
              <dt>{t.message}</dt>
              <dd>{selected.message}</dd>
              <dt>{t.requestId}</dt>
              <dd>
                <code>{selected.requestId ?? '—'}</code>
              </dd>
              <dt>{t.fields}</dt>
              <dd>
                <pre className="json">{JSON.stringify(selected.fields, null, 2)}</pre>
              </dd>
            </dl>
          ) : (
            <p className="muted">{t.pickOne}</p>
          )}
        </aside>
      </div>
    </Page>
  );
}
