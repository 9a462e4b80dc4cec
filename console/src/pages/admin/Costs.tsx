/**
 * The cost dashboard: spend over a range of days (kept in the URL), by day, model, provider and
 * user, every budget with its meter, and a user's monthly statement with its CSV. Money is always
 * shown in the row's own currency and summed per currency only. Everything refetches (debounced)
 * when a call settles, so a new call shows within a second or two.
 */
import { useCallback, useMemo, useState } from 'react';
import type { ViewProps } from '../../App';
import { ApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery, useSubscription } from '../../api/hooks';
import { current, refresh } from '../../api/session';
import { defineText, useLang, useText } from '../../i18n';
import { navigate, type Route } from '../../router';
import type { ChartOptions } from 'chart.js';
import { ChartView, PALETTE } from '../../ui/charts';
import { ErrorBox, Field, LiveDot, Loading, Page, Table, type Column } from '../../ui/components';
import { count, dateTime, isoMonth, microsToNumber, money } from '../../ui/format';
import {
  addDays,
  daySpan,
  monthStart,
  parseDay,
  personLabel,
  today,
  totalsByCurrency,
  useDebounced,
  usePeople,
} from './costsShared';
import './Costs.css';

const text = defineText({
  en: {
    title: 'Costs',
    range: 'Date range',
    from: 'From',
    to: 'To',
    presets: 'Quick ranges',
    today: 'Today',
    last7: 'Last 7 days',
    thisMonth: 'This month',
    lastMonth: 'Last month',
    badRange: 'Pick a first day on or before the last day.',
    tooLong: 'A range may span at most 366 days.',
    daysNote: 'Days are counted in the server’s configured time zone.',
    total: 'Total in range',
    nothing: 'No spend in this range.',
    byDay: 'Spend by day',
    byModel: 'Spend by model',
    byProvider: 'Spend by provider',
    byUser: 'Spend by user',
    topN: (n: number) => `Top ${n} per currency, by cost`,
    model: 'Model',
    provider: 'Provider',
    user: 'User',
    currency: 'Currency',
    requests: 'Requests',
    tokens: 'Tokens',
    cost: 'Cost',
    unpriced: 'unpriced',
    chartDay: 'Bar chart of spend per day, one series per currency',
    chartOf: (what: string) => `Bar chart: ${what}`,
    budgets: 'Budgets',
    noBudgets: 'No budgets are set.',
    scope: 'Scope',
    USER: 'User',
    GLOBAL: 'Everyone',
    period: 'Period',
    DAY: 'Daily',
    WEEK: 'Weekly',
    MONTH: 'Monthly',
    TOTAL: 'Total',
    limit: 'Limit',
    spent: 'Spent',
    reserved: 'Reserved',
    remaining: 'Remaining',
    use: 'Use',
    resets: 'Resets',
    meterLabel: (pct: string) => `${pct} of the limit spent or reserved`,
    statement: 'Monthly statement',
    month: 'Month',
    whose: 'User',
    myself: 'Myself (signed-in admin)',
    lines: 'Lines',
    totals: 'Totals',
    download: 'Download CSV',
    downloading: 'Downloading…',
    downloadFailed: 'The CSV could not be downloaded.',
    badMonth: 'Pick a month.',
  },
  zh: {
    title: '费用',
    range: '日期范围',
    from: '开始日期',
    to: '结束日期',
    presets: '快捷范围',
    today: '今天',
    last7: '最近 7 天',
    thisMonth: '本月',
    lastMonth: '上月',
    badRange: '开始日期不能晚于结束日期。',
    tooLong: '日期范围最多 366 天。',
    daysNote: '日期按服务器配置的时区计算。',
    total: '范围内合计',
    nothing: '此范围内没有花费。',
    byDay: '每日花费',
    byModel: '按模型的花费',
    byProvider: '按服务商的花费',
    byUser: '按用户的花费',
    topN: (n: number) => `每种货币按费用排名前 ${n}`,
    model: '模型',
    provider: '服务商',
    user: '用户',
    currency: '货币',
    requests: '请求数',
    tokens: 'Token 数',
    cost: '费用',
    unpriced: '未定价',
    chartDay: '每日花费柱状图，每种货币一个系列',
    chartOf: (what: string) => `柱状图：${what}`,
    budgets: '预算',
    noBudgets: '尚未设置预算。',
    scope: '范围',
    USER: '用户',
    GLOBAL: '所有人',
    period: '周期',
    DAY: '每日',
    WEEK: '每周',
    MONTH: '每月',
    TOTAL: '总计',
    limit: '限额',
    spent: '已花费',
    reserved: '已预留',
    remaining: '剩余',
    use: '使用情况',
    resets: '重置时间',
    meterLabel: (pct: string) => `已花费和预留占限额的 ${pct}`,
    statement: '月度账单',
    month: '月份',
    whose: '用户',
    myself: '我自己（当前管理员）',
    lines: '明细',
    totals: '合计',
    download: '下载 CSV',
    downloading: '正在下载…',
    downloadFailed: 'CSV 下载失败。',
    badMonth: '请选择月份。',
  },
});

const TOP_N = 10;
const MAX_DAYS = 366;

const BY_DAY = gql`
  query CostsByDay($range: DateRange!) {
    usage(range: $range, groupBy: [DAY]) {
      day
      currency
      requests
      promptTokens
      completionTokens
      costMicros
    }
  }
`;

const BY_MODEL = gql`
  query CostsByModel($range: DateRange!) {
    usage(range: $range, groupBy: [PROVIDER, MODEL]) {
      provider
      model
      currency
      requests
      promptTokens
      completionTokens
      costMicros
    }
  }
`;

const BY_PROVIDER = gql`
  query CostsByProvider($range: DateRange!) {
    usage(range: $range, groupBy: [PROVIDER]) {
      provider
      currency
      requests
      promptTokens
      completionTokens
      costMicros
    }
  }
`;

const BY_USER = gql`
  query CostsByUser($range: DateRange!) {
    usage(range: $range, groupBy: [USER]) {
      userId
      currency
      requests
      promptTokens
      completionTokens
      costMicros
    }
  }
`;

const BUDGETS = gql`
  query CostsBudgets {
    budgets {
      id
      scope
      userId
      period
      currency
      limitMicros
      spentMicros
      reservedMicros
      remainingMicros
      resetAt
    }
  }
`;

const USERS = gql`
  query CostsUsers {
    users(first: 100) {
      nodes {
        id
        email
        displayName
      }
    }
  }
`;

const STATEMENT = gql`
  query CostsStatement($userId: ID, $month: String!) {
    statement(userId: $userId, month: $month) {
      userId
      month
      lines {
        provider
        model
        currency
        requests
        promptTokens
        cachedPromptTokens
        completionTokens
        costMicros
      }
      totals {
        currency
        requests
        promptTokens
        cachedPromptTokens
        completionTokens
        costMicros
      }
    }
  }
`;

const CALLS = gql`
  subscription CostsCalls {
    aiCallUpdated {
      id
      status
    }
  }
`;

const USAGE = gql`
  subscription CostsUsage {
    usageUpdated {
      id
    }
  }
`;

interface Row {
  day?: string | null;
  userId?: string | null;
  provider?: string | null;
  model?: string | null;
  currency: string | null;
  requests: number;
  promptTokens: number;
  cachedPromptTokens?: number;
  completionTokens: number;
  costMicros: string;
}

interface Budget {
  id: string;
  scope: 'USER' | 'GLOBAL';
  userId: string | null;
  period: 'DAY' | 'WEEK' | 'MONTH' | 'TOTAL';
  currency: string;
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  remainingMicros: string;
  resetAt: string | null;
}

interface Statement {
  userId: string;
  month: string;
  lines: Row[];
  totals: Row[];
}

/** The range in the URL, or this month so far. */
function rangeOf(route: Route): { from: string; to: string } {
  const now = today();
  const from = route.params.get('from');
  const to = route.params.get('to');
  return {
    from: from && parseDay(from) ? from : monthStart(now),
    to: to && parseDay(to) ? to : now,
  };
}

function presets(): Record<'today' | 'last7' | 'thisMonth' | 'lastMonth', { from: string; to: string }> {
  const now = today();
  const first = monthStart(now);
  const lastMonthEnd = addDays(first, -1);
  return {
    today: { from: now, to: now },
    last7: { from: addDays(now, -6), to: now },
    thisMonth: { from: first, to: now },
    lastMonth: { from: monthStart(lastMonthEnd), to: lastMonthEnd },
  };
}

function compareMicros(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The biggest `n` rows of each currency, biggest first. */
function topPerCurrency(rows: Row[], n: number): Row[] {
  const byCurrency = new Map<string, Row[]>();
  for (const r of rows) {
    const c = r.currency ?? '';
    if (!byCurrency.has(c)) byCurrency.set(c, []);
    byCurrency.get(c)!.push(r);
  }
  return [...byCurrency.keys()]
    .sort()
    .flatMap((c) =>
      byCurrency
        .get(c)!
        .slice()
        .sort((a, b) => compareMicros(b.costMicros, a.costMicros) || b.requests - a.requests)
        .slice(0, n),
    );
}

/** A bar chart's data: one label per key, one dataset per currency. */
function barData(rows: Row[], key: (r: Row) => string, label: (k: string) => string) {
  const keys = [...new Set(rows.map(key))];
  const currencies = [...new Set(rows.map((r) => r.currency ?? ''))].sort();
  return {
    labels: keys.map(label),
    datasets: currencies.map((c, i) => ({
      label: c || '—',
      backgroundColor: PALETTE[i % PALETTE.length],
      borderColor: PALETTE[i % PALETTE.length],
      data: keys.map((k) => {
        const row = rows.find((r) => key(r) === k && (r.currency ?? '') === c);
        return row ? microsToNumber(row.costMicros) : 0;
      }),
    })),
  };
}

/** Chart options: amounts on the axis and in tooltips as decimals in the series' currency. */
function moneyAxis(locale: string): ChartOptions<'bar'> {
  const number = new Intl.NumberFormat(locale, { maximumFractionDigits: 6 });
  return {
    scales: { y: { beginAtZero: true, ticks: { callback: (value) => number.format(Number(value)) } } },
    plugins: {
      tooltip: {
        callbacks: { label: (item) => `${item.dataset.label ?? ''} ${number.format(Number(item.parsed.y))}` },
      },
    },
  };
}

/** Saves a text as a file through a Blob object URL and an <a download>. */
function saveFile(name: string, blob: Blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Fetches the statement CSV with the bearer token (refreshed once on a 401). */
async function fetchCsv(month: string, userId: string | undefined): Promise<Blob> {
  const path = `/statements/${encodeURIComponent(month)}.csv${userId ? `?userId=${encodeURIComponent(userId)}` : ''}`;
  const get = (token: string | undefined) =>
    fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} }).catch(() => {
      throw new ApiError('The server cannot be reached.', 'NETWORK');
    });
  let response = await get(current()?.accessToken);
  if (response.status === 401) {
    const renewed = await refresh().catch(() => null);
    if (renewed) response = await get(renewed.accessToken);
  }
  if (!response.ok) {
    let code = 'INTERNAL';
    let message = `The server answered ${response.status}.`;
    try {
      const body = (await response.json()) as { errors?: { message: string; extensions?: { code?: string } }[] };
      const first = body.errors?.[0];
      if (first) {
        message = first.message;
        code = first.extensions?.code ?? code;
      }
    } catch {
      // not JSON: keep the status
    }
    throw new ApiError(message, code);
  }
  return response.blob();
}

export function Costs({ route }: ViewProps) {
  const t = useText(text);
  const { locale } = useLang();
  const { from, to } = rangeOf(route);
  const span = daySpan(from, to);
  const rangeError = span < 1 ? t.badRange : span > MAX_DAYS ? t.tooLong : undefined;
  const range = { from, to };
  const skip = !!rangeError;

  const byDay = useQuery<{ usage: Row[] }>(BY_DAY, { range }, skip);
  const byModel = useQuery<{ usage: Row[] }>(BY_MODEL, { range }, skip);
  const byProvider = useQuery<{ usage: Row[] }>(BY_PROVIDER, { range }, skip);
  const byUser = useQuery<{ usage: Row[] }>(BY_USER, { range }, skip);
  const budgets = useQuery<{ budgets: Budget[] }>(BUDGETS);

  const month = route.params.get('month') || isoMonth(new Date());
  const statementUser = route.params.get('user') || undefined;
  const monthOk = /^\d{4}-(0[1-9]|1[0-2])$/.test(month);
  const statement = useQuery<{ statement: Statement }>(STATEMENT, { userId: statementUser, month }, !monthOk);
  const users = useQuery<{ users: { nodes: { id: string; email: string; displayName: string }[] } }>(USERS);

  const refetch = useDebounced(() => {
    if (!skip) {
      byDay.reload();
      byModel.reload();
      byProvider.reload();
      byUser.reload();
    }
    budgets.reload();
    if (monthOk) statement.reload();
  }, 500);
  const onCall = useCallback(
    (data: { aiCallUpdated: { status: string } }) => {
      if (data.aiCallUpdated.status !== 'PENDING') refetch();
    },
    [refetch],
  );
  const callsLive = useSubscription(CALLS, undefined, onCall);
  useSubscription(USAGE, undefined, () => budgets.reload());

  const people = usePeople([
    ...(byUser.data?.usage ?? []).map((r) => r.userId),
    ...(budgets.data?.budgets ?? []).map((b) => b.userId),
    statement.data?.statement.userId,
  ]);

  const setParams = (next: Record<string, string | undefined>) =>
    navigate(
      '/costs',
      {
        from: route.params.get('from') ?? undefined,
        to: route.params.get('to') ?? undefined,
        month: route.params.get('month') ?? undefined,
        user: route.params.get('user') ?? undefined,
        ...next,
      },
      true,
    );

  const dayRows = byDay.data?.usage ?? [];
  const days = useMemo(() => {
    if (rangeError) return [];
    const list: string[] = [];
    for (let d = from; list.length < span; d = addDays(d, 1)) list.push(d);
    return list;
  }, [from, span, rangeError]);
  const dayChart = useMemo(() => {
    const currencies = [...new Set(dayRows.map((r) => r.currency ?? ''))].sort();
    return {
      labels: days,
      datasets: currencies.map((c, i) => ({
        label: c || '—',
        backgroundColor: PALETTE[i % PALETTE.length],
        borderColor: PALETTE[i % PALETTE.length],
        data: days.map((d) => {
          const row = dayRows.find((r) => r.day === d && (r.currency ?? '') === c);
          return row ? microsToNumber(row.costMicros) : 0;
        }),
      })),
    };
  }, [dayRows, days]);
  const totals = totalsByCurrency(dayRows);
  const chartOptions = useMemo(() => moneyAxis(locale), [locale]);
  const p = presets();

  const amount = (r: { costMicros: string; currency: string | null }) =>
    r.currency ? money(r.costMicros, r.currency, locale) : `${money(r.costMicros, null, locale)} (${t.unpriced})`;
  const numbers: Column<Row>[] = [
    { key: 'currency', title: t.currency, render: (r) => r.currency ?? '—' },
    { key: 'requests', title: t.requests, numeric: true, render: (r) => count(r.requests, locale) },
    { key: 'tokens', title: t.tokens, numeric: true, render: (r) => count(r.promptTokens + r.completionTokens, locale) },
    { key: 'cost', title: t.cost, numeric: true, render: amount },
  ];

  const breakdown = (
    id: string,
    title: string,
    query: { data?: { usage: Row[] }; error?: ApiError; loading: boolean; reload(): void },
    keyOf: (r: Row) => string,
    labelOf: (k: string) => string,
    keyTitle: string,
  ) => {
    const rows = topPerCurrency(query.data?.usage ?? [], TOP_N);
    return (
      <section className="card costs-card" aria-labelledby={id} data-testid={id}>
        <h2 id={id}>{title}</h2>
        <p className="muted">{t.topN(TOP_N)}</p>
        <ErrorBox error={query.error} onRetry={query.reload} />
        {rows.length > 0 && (
          <ChartView
            type="bar"
            label={t.chartOf(title)}
            data={barData(rows, keyOf, labelOf)}
            options={chartOptions}
            height={200}
          />
        )}
        <Table<Row>
          rows={rows}
          rowKey={(r) => `${keyOf(r)}|${r.currency ?? ''}`}
          columns={[{ key: 'key', title: keyTitle, render: (r) => labelOf(keyOf(r)) }, ...numbers]}
        />
      </section>
    );
  };

  const statementData = statement.data?.statement;
  const [csvBusy, setCsvBusy] = useState(false);
  const [csvError, setCsvError] = useState<ApiError>();
  const download = async () => {
    setCsvBusy(true);
    setCsvError(undefined);
    try {
      const blob = await fetchCsv(month, statementUser);
      saveFile(`statement-${statementUser ?? current()?.user.id ?? 'me'}-${month}.csv`, blob);
    } catch (error) {
      setCsvError(error instanceof ApiError ? error : new ApiError(String(error), 'INTERNAL'));
    } finally {
      setCsvBusy(false);
    }
  };

  return (
    <Page title={t.title} actions={<LiveDot error={callsLive.error} />}>
      <section className="card costs-card" aria-labelledby="costs-range">
        <h2 id="costs-range" className="sr-only">
          {t.range}
        </h2>
        <div className="row">
          <Field label={t.from}>
            <input
              type="date"
              value={from}
              max={to}
              onChange={(e) => e.target.value && setParams({ from: e.target.value })}
            />
          </Field>
          <Field label={t.to}>
            <input type="date" value={to} min={from} onChange={(e) => e.target.value && setParams({ to: e.target.value })} />
          </Field>
          <div className="costs-presets" role="group" aria-label={t.presets}>
            {(Object.keys(p) as (keyof typeof p)[]).map((k) => (
              <button
                key={k}
                type="button"
                aria-pressed={p[k].from === from && p[k].to === to}
                onClick={() => setParams({ from: p[k].from, to: p[k].to })}
              >
                {t[k]}
              </button>
            ))}
          </div>
        </div>
        <p className="muted costs-note">{t.daysNote}</p>
        {rangeError && (
          <p className="error" role="alert">
            {rangeError}
          </p>
        )}
      </section>

      {!rangeError && (
        <>
          <section className="card costs-card" aria-labelledby="costs-by-day" data-testid="costs-by-day">
            <div className="costs-head">
              <h2 id="costs-by-day">{t.byDay}</h2>
              <div className="costs-total" data-testid="costs-total">
                <span className="muted">{t.total}: </span>
                {totals.length === 0 ? (
                  <span className="muted">{t.nothing}</span>
                ) : (
                  totals.map(([c, v]) => (
                    <strong key={c || '-'} className="costs-amount">
                      {money(v, c || null, locale)}
                    </strong>
                  ))
                )}
              </div>
            </div>
            <ErrorBox error={byDay.error} onRetry={byDay.reload} />
            <Loading show={byDay.loading && !byDay.data} />
            <ChartView type="bar" label={t.chartDay} data={dayChart} options={chartOptions} />
          </section>
          <div className="grid-2">
            {breakdown(
              'costs-by-model',
              t.byModel,
              byModel,
              (r) => `${r.provider ?? ''}/${r.model ?? ''}`,
              (k) => k,
              t.model,
            )}
            {breakdown('costs-by-provider', t.byProvider, byProvider, (r) => r.provider ?? '—', (k) => k, t.provider)}
          </div>
          {breakdown('costs-by-user', t.byUser, byUser, (r) => r.userId ?? '', (k) => personLabel(people, k), t.user)}
        </>
      )}

      <section className="card costs-card" aria-labelledby="costs-budgets" data-testid="costs-budgets">
        <h2 id="costs-budgets">{t.budgets}</h2>
        <ErrorBox error={budgets.error} onRetry={budgets.reload} />
        <Loading show={budgets.loading && !budgets.data} />
        {budgets.data && budgets.data.budgets.length === 0 ? (
          <p className="muted">{t.noBudgets}</p>
        ) : (
          <Table<Budget>
            rows={budgets.data?.budgets ?? []}
            rowKey={(b) => b.id}
            columns={[
              {
                key: 'scope',
                title: t.scope,
                render: (b) => (b.scope === 'GLOBAL' ? t.GLOBAL : `${t.USER}: ${personLabel(people, b.userId)}`),
              },
              { key: 'period', title: t.period, render: (b) => t[b.period] },
              { key: 'limit', title: t.limit, numeric: true, render: (b) => money(b.limitMicros, b.currency, locale) },
              { key: 'spent', title: t.spent, numeric: true, render: (b) => money(b.spentMicros, b.currency, locale) },
              {
                key: 'reserved',
                title: t.reserved,
                numeric: true,
                render: (b) => money(b.reservedMicros, b.currency, locale),
              },
              {
                key: 'remaining',
                title: t.remaining,
                numeric: true,
                render: (b) => money(b.remainingMicros, b.currency, locale),
              },
              { key: 'use', title: t.use, render: (b) => <Meter budget={b} label={t.meterLabel} locale={locale} /> },
              { key: 'reset', title: t.resets, render: (b) => dateTime(b.resetAt, locale) },
            ]}
          />
        )}
      </section>

      <section className="card costs-card" aria-labelledby="costs-statement" data-testid="costs-statement">
        <h2 id="costs-statement">{t.statement}</h2>
        <div className="row">
          <Field label={t.month}>
            <input
              type="month"
              value={monthOk ? month : ''}
              onChange={(e) => setParams({ month: e.target.value || undefined })}
            />
          </Field>
          <Field label={t.whose}>
            <select value={statementUser ?? ''} onChange={(e) => setParams({ user: e.target.value || undefined })}>
              <option value="">{t.myself}</option>
              {statementUser && !users.data?.users.nodes.some((u) => u.id === statementUser) && (
                <option value={statementUser}>{personLabel(people, statementUser)}</option>
              )}
              {(users.data?.users.nodes ?? []).map((u) => (
                <option key={u.id} value={u.id}>
                  {u.displayName} &lt;{u.email}&gt;
                </option>
              ))}
            </select>
          </Field>
          <button type="button" onClick={() => void download()} disabled={csvBusy || !monthOk}>
            {csvBusy ? t.downloading : t.download}
          </button>
        </div>
        <ErrorBox error={users.error} onRetry={users.reload} />
        {csvError && (
          <div>
            <p className="muted">{t.downloadFailed}</p>
            <ErrorBox error={csvError} />
          </div>
        )}
        {!monthOk && <p className="muted">{t.badMonth}</p>}
        <ErrorBox error={statement.error} onRetry={statement.reload} />
        <Loading show={statement.loading && !statementData} />
        {statementData && (
          <>
            <h3>{t.lines}</h3>
            <Table<Row>
              rows={statementData.lines}
              rowKey={(r) => `${r.provider}|${r.model}|${r.currency ?? ''}`}
              columns={[
                { key: 'provider', title: t.provider, render: (r) => r.provider ?? '—' },
                { key: 'model', title: t.model, render: (r) => r.model ?? '—' },
                ...numbers,
              ]}
            />
            <h3>{t.totals}</h3>
            <div data-testid="statement-totals">
              <Table<Row> rows={statementData.totals} rowKey={(r) => r.currency ?? ''} columns={numbers} />
            </div>
          </>
        )}
      </section>
    </Page>
  );
}

function Meter({ budget, label, locale }: { budget: Budget; label: (pct: string) => string; locale: string }) {
  const limit = BigInt(budget.limitMicros);
  // Per-mille by integer arithmetic on micro-units; only the bar widths are floats.
  const share = (v: string) => (limit > 0n ? Math.min(1000, Number((BigInt(v) * 1000n) / limit)) / 10 : 0);
  const spent = share(budget.spentMicros);
  const reserved = Math.min(100 - spent, share(budget.reservedMicros));
  const pct = new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 }).format((spent + reserved) / 100);
  return (
    <div className="costs-meter">
      <div
        className="meter"
        role="meter"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round((spent + reserved) * 10) / 10}
        aria-label={label(pct)}
      >
        <span className="meter-spent" style={{ width: `${spent}%` }} />
        <span className="meter-reserved" style={{ width: `${reserved}%` }} />
      </div>
      <span className="muted">{pct}</span>
    </div>
  );
}
