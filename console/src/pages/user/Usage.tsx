/**
 * The signed-in user's own usage: cost and calls by day (chart) and by model (table) over a date
 * range, the budgets that apply to them (moving live as their calls settle), their rate limits,
 * and a month's statement.
 */
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { gql } from '../../api/gql';
import { useQuery, useSubscription } from '../../api/hooks';
import { common } from '../../i18n/common';
import { defineText, useLang, useText } from '../../i18n';
import { navigate } from '../../router';
import { Badge, ErrorBox, Field, LiveDot, Loading, Page, Table, Tile, Tiles } from '../../ui/components';
import { ChartView, PALETTE } from '../../ui/charts';
import { count, dateTime, isoDay, microsToNumber, money, sumMicros } from '../../ui/format';
import { addDays, serverMonth, serverToday } from '../../api/calendar';
import '../ops.css';

const text = defineText({
  en: {
    title: 'Usage & budgets',
    range: 'Date range',
    from: 'From',
    to: 'To',
    totalCost: 'Cost in range',
    totalRequests: 'Calls in range',
    totalTokens: 'Tokens in range',
    byDay: 'Cost by day',
    byDayLabel: 'Bar chart of cost per day',
    byModel: 'By model',
    model: 'Model',
    currency: 'Currency',
    requests: 'Calls',
    promptTokens: 'Input tokens',
    completionTokens: 'Output tokens',
    cost: 'Cost',
    budgets: 'My budgets',
    noBudgets: 'No budget applies to you.',
    scopeUser: 'Mine',
    scopeGlobal: 'Everyone’s',
    DAY: 'Daily',
    WEEK: 'Weekly',
    MONTH: 'Monthly',
    TOTAL: 'Total',
    spent: 'Spent',
    reserved: 'Reserved',
    limit: 'Limit',
    remaining: 'Remaining',
    resets: 'Resets',
    never: 'never',
    tokens: 'Tokens',
    requestsLimit: 'Calls',
    meter: (used: string, limit: string) => `${used} of ${limit}`,
    rateLimits: 'My rate limits',
    rpm: 'Calls per minute',
    tpm: 'Tokens per minute',
    unlimited: 'unlimited',
    statement: 'Monthly statement',
    month: 'Month',
    provider: 'Provider',
    totals: 'Totals',
    badRange: 'The start must not be after the end.',
  },
  zh: {
    title: '用量与预算',
    range: '日期范围',
    from: '开始日期',
    to: '结束日期',
    totalCost: '区间费用',
    totalRequests: '区间调用次数',
    totalTokens: '区间 Token 数',
    byDay: '每日费用',
    byDayLabel: '每日费用柱状图',
    byModel: '按模型',
    model: '模型',
    currency: '币种',
    requests: '调用次数',
    promptTokens: '输入 Token',
    completionTokens: '输出 Token',
    cost: '费用',
    budgets: '我的预算',
    noBudgets: '没有适用于你的预算。',
    scopeUser: '个人',
    scopeGlobal: '全局',
    DAY: '每日',
    WEEK: '每周',
    MONTH: '每月',
    TOTAL: '总额',
    spent: '已花费',
    reserved: '已预留',
    limit: '限额',
    remaining: '剩余',
    resets: '重置时间',
    never: '不重置',
    tokens: 'Token',
    requestsLimit: '调用次数',
    meter: (used: string, limit: string) => `${used} / ${limit}`,
    rateLimits: '我的速率限制',
    rpm: '每分钟调用次数',
    tpm: '每分钟 Token 数',
    unlimited: '不限',
    statement: '月度账单',
    month: '月份',
    provider: '服务商',
    totals: '合计',
    badRange: '开始日期不能晚于结束日期。',
  },
});

interface UsageRow {
  day: string | null;
  provider: string | null;
  model: string | null;
  currency: string | null;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costMicros: string;
}

interface Budget {
  id: string;
  scope: 'USER' | 'GLOBAL';
  period: 'DAY' | 'WEEK' | 'MONTH' | 'TOTAL';
  currency: string;
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  remainingMicros: string;
  limitTokens: number | null;
  spentTokens: number;
  limitRequests: number | null;
  spentRequests: number;
  reservedRequests: number;
  resetAt: string | null;
}

const BY_DAY = gql`
  query UsagePageByDay($range: DateRange!) {
    myUsage(range: $range, groupBy: [DAY]) {
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
  query UsagePageByModel($range: DateRange!) {
    myUsage(range: $range, groupBy: [MODEL]) {
      model
      currency
      requests
      promptTokens
      completionTokens
      costMicros
    }
  }
`;

const BUDGETS = gql`
  query UsagePageBudgets {
    budgets {
      id
      scope
      period
      currency
      limitMicros
      spentMicros
      reservedMicros
      remainingMicros
      limitTokens
      spentTokens
      limitRequests
      spentRequests
      reservedRequests
      resetAt
    }
  }
`;

const BUDGETS_LIVE = gql`
  subscription UsagePageBudgetsLive {
    usageUpdated {
      id
      scope
      period
      currency
      limitMicros
      spentMicros
      reservedMicros
      remainingMicros
      limitTokens
      spentTokens
      limitRequests
      spentRequests
      reservedRequests
      resetAt
    }
  }
`;

const RATE_LIMITS = gql`
  query UsagePageRateLimits {
    rateLimits {
      requestsPerMinute
      tokensPerMinute
    }
  }
`;

const STATEMENT = gql`
  query UsagePageStatement($month: String!) {
    statement(month: $month) {
      month
      lines {
        provider
        model
        currency
        requests
        promptTokens
        completionTokens
        costMicros
      }
      totals {
        currency
        requests
        promptTokens
        completionTokens
        costMicros
      }
    }
  }
`;

/** The last 30 days, in the server's calendar. */
function defaultRange() {
  const to = serverToday();
  return { from: addDays(to, -29), to };
}

/** Sums per currency (a total across currencies would mean nothing). */
function totalsByCurrency(rows: UsageRow[]) {
  const out = new Map<string, bigint>();
  for (const r of rows) {
    if (!r.currency) continue;
    out.set(r.currency, (out.get(r.currency) ?? 0n) + sumMicros([r.costMicros]));
  }
  return [...out.entries()];
}

export function Usage({ route }: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const fallback = defaultRange();
  const from = route.params.get('from') || fallback.from;
  const to = route.params.get('to') || fallback.to;
  const month = route.params.get('month') || serverMonth();
  const badRange = from > to;
  const range = { from, to };
  const byDay = useQuery<{ myUsage: UsageRow[] }>(BY_DAY, { range }, badRange);
  const byModel = useQuery<{ myUsage: UsageRow[] }>(BY_MODEL, { range }, badRange);
  // A call of mine settled (the budgets subscription says so): the reports move too.
  const [settled, setSettled] = useState(0);
  const onSettled = () => {
    byDay.reload();
    byModel.reload();
    setSettled((n) => n + 1);
  };

  const setParams = (next: Record<string, string>) =>
    navigate('/usage', { from: route.params.get('from'), to: route.params.get('to'), month: route.params.get('month'), ...next });
  const submitRange = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setParams({ from: String(f.get('from') ?? ''), to: String(f.get('to') ?? '') });
  };

  const modelRows = byModel.data?.myUsage ?? [];
  const totals = totalsByCurrency(modelRows);
  const requests = modelRows.reduce((n, r) => n + r.requests, 0);
  const tokens = modelRows.reduce((n, r) => n + r.promptTokens + r.completionTokens, 0);

  const chart = useMemo(() => {
    const rows = byDay.data?.myUsage ?? [];
    const days: string[] = [];
    for (let d = new Date(`${from}T00:00:00`); isoDay(d) <= to && days.length < 367; d.setDate(d.getDate() + 1)) days.push(isoDay(d));
    const currencies = [...new Set(rows.map((r) => r.currency).filter((x): x is string => !!x))];
    return {
      labels: days,
      datasets: currencies.map((cur, i) => ({
        label: cur,
        backgroundColor: PALETTE[i % PALETTE.length],
        data: days.map((day) => rows.filter((r) => r.day === day && r.currency === cur).reduce((n, r) => n + microsToNumber(r.costMicros), 0)),
      })),
    };
  }, [byDay.data, from, to]);

  const chartOptions = useMemo(() => {
    const number = new Intl.NumberFormat(locale, { maximumFractionDigits: 6 });
    return {
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, ticks: { callback: (value: string | number) => number.format(Number(value)) } },
      },
    };
  }, [locale]);

  return (
    <Page title={t.title}>
      <form className="card row" onSubmit={submitRange} aria-label={t.range} key={`${from}-${to}`}>
        <Field label={t.from}>
          <input type="date" name="from" defaultValue={from} required />
        </Field>
        <Field label={t.to}>
          <input type="date" name="to" defaultValue={to} required />
        </Field>
        <button type="submit">{c.apply}</button>
      </form>
      {badRange && (
        <p className="error" role="alert">
          {t.badRange}
        </p>
      )}
      <ErrorBox error={byModel.error ?? byDay.error} onRetry={() => (byModel.reload(), byDay.reload())} />
      <Tiles>
        <Tile
          label={t.totalCost}
          value={totals.length ? totals.map(([cur, v]) => money(v, cur, locale)).join(' + ') : money(0, null, locale)}
        />
        <Tile label={t.totalRequests} value={count(requests, locale)} />
        <Tile label={t.totalTokens} value={count(tokens, locale)} />
      </Tiles>
      <div className="stack">
        <section className="card" aria-labelledby="usage-by-day">
          <h2 id="usage-by-day">{t.byDay}</h2>
          <Loading show={byDay.loading && !byDay.data} />
          <ChartView type="bar" data={chart} label={t.byDayLabel} options={chartOptions} />
        </section>
        <section className="card" aria-labelledby="usage-by-model">
          <h2 id="usage-by-model">{t.byModel}</h2>
          <Loading show={byModel.loading && !byModel.data} />
          <Table<UsageRow>
            rows={modelRows}
            rowKey={(r) => `${r.model}-${r.currency}`}
            columns={[
              { key: 'model', title: t.model, render: (r) => r.model ?? '—' },
              { key: 'requests', title: t.requests, numeric: true, render: (r) => count(r.requests, locale) },
              { key: 'prompt', title: t.promptTokens, numeric: true, render: (r) => count(r.promptTokens, locale) },
              { key: 'completion', title: t.completionTokens, numeric: true, render: (r) => count(r.completionTokens, locale) },
              { key: 'cost', title: t.cost, numeric: true, render: (r) => money(r.costMicros, r.currency, locale) },
            ]}
          />
        </section>
      </div>
      <div className="grid-2">
        <Budgets onSettled={onSettled} />
        <RateLimits />
      </div>
      <Statement month={month} settled={settled} onMonth={(m) => setParams({ month: m })} />
    </Page>
  );
}

function Budgets({ onSettled }: { onSettled(): void }) {
  const t = useText(text);
  const { locale } = useLang();
  const budgets = useQuery<{ budgets: Budget[] }>(BUDGETS);
  const [live, setLive] = useState<Record<string, Budget>>({});
  const sub = useSubscription<{ usageUpdated: Budget[] }>(BUDGETS_LIVE, undefined, (d) => {
    setLive((prev) => {
      const next = { ...prev };
      for (const b of d.usageUpdated) next[b.id] = b;
      return next;
    });
    onSettled();
  });
  const list = (budgets.data?.budgets ?? []).map((b) => live[b.id] ?? b);
  return (
    <section className="card" aria-labelledby="usage-budgets">
      <div className="page-head">
        <h2 id="usage-budgets">{t.budgets}</h2>
        <LiveDot error={sub.error} />
      </div>
      <ErrorBox error={budgets.error} onRetry={budgets.reload} />
      <Loading show={budgets.loading && !budgets.data} />
      {budgets.data && list.length === 0 && <p className="muted">{t.noBudgets}</p>}
      {list.map((b) => {
        const limit = BigInt(b.limitMicros);
        const share = (v: string) => (limit > 0n ? Number((BigInt(v) * 10000n) / limit) / 100 : 0);
        const spent = Math.min(100, share(b.spentMicros));
        const reserved = Math.min(100 - spent, share(b.reservedMicros));
        return (
          <div className="meter-block" key={b.id} data-budget={b.id}>
            <div className="meter-legend">
              <strong>
                <Badge tone={b.scope === 'USER' ? 'info' : 'muted'}>{b.scope === 'USER' ? t.scopeUser : t.scopeGlobal}</Badge> {t[b.period]}
              </strong>
              <span>{t.meter(money(b.spentMicros, b.currency, locale), money(b.limitMicros, b.currency, locale))}</span>
            </div>
            <div
              className="meter"
              role="meter"
              aria-label={`${t.spent} ${t[b.period]}`}
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round(spent)}
              aria-valuetext={t.meter(money(b.spentMicros, b.currency, locale), money(b.limitMicros, b.currency, locale))}
            >
              <div className="meter-spent" style={{ width: `${spent}%` }} />
              <div className="meter-reserved" style={{ width: `${reserved}%` }} />
            </div>
            <div className="meter-legend muted">
              <span>
                {t.reserved}: {money(b.reservedMicros, b.currency, locale)}
              </span>
              <span>
                {t.remaining}: {money(b.remainingMicros, b.currency, locale)}
              </span>
              {b.limitTokens != null && (
                <span>
                  {t.tokens}: {t.meter(count(b.spentTokens, locale), count(b.limitTokens, locale))}
                </span>
              )}
              {b.limitRequests != null && (
                <span>
                  {t.requestsLimit}: {t.meter(count(b.spentRequests, locale), count(b.limitRequests, locale))}
                </span>
              )}
              <span>
                {t.resets}: {b.resetAt ? dateTime(b.resetAt, locale) : t.never}
              </span>
            </div>
          </div>
        );
      })}
    </section>
  );
}

function RateLimits() {
  const t = useText(text);
  const { locale } = useLang();
  const limits = useQuery<{ rateLimits: { requestsPerMinute: number | null; tokensPerMinute: number | null } }>(RATE_LIMITS);
  const r = limits.data?.rateLimits;
  return (
    <section className="card" aria-labelledby="usage-rate-limits">
      <h2 id="usage-rate-limits">{t.rateLimits}</h2>
      <ErrorBox error={limits.error} onRetry={limits.reload} />
      <Loading show={limits.loading && !r} />
      {r && (
        <Tiles>
          <Tile label={t.rpm} value={r.requestsPerMinute == null ? t.unlimited : count(r.requestsPerMinute, locale)} />
          <Tile label={t.tpm} value={r.tokensPerMinute == null ? t.unlimited : count(r.tokensPerMinute, locale)} />
        </Tiles>
      )}
    </section>
  );
}

function Statement({ month, settled, onMonth }: { month: string; settled: number; onMonth(m: string): void }) {
  const t = useText(text);
  const { locale } = useLang();
  const st = useQuery<{ statement: { month: string; lines: UsageRow[]; totals: UsageRow[] } }>(STATEMENT, { month });
  const { reload } = st;
  useEffect(() => {
    if (settled) reload();
  }, [settled, reload]);
  return (
    <section className="card" aria-labelledby="usage-statement">
      <div className="page-head">
        <h2 id="usage-statement">{t.statement}</h2>
        <div className="page-actions">
          <Field label={t.month}>
            <input type="month" value={month} onChange={(e) => e.target.value && onMonth(e.target.value)} />
          </Field>
        </div>
      </div>
      <ErrorBox error={st.error} onRetry={st.reload} />
      <Loading show={st.loading && !st.data} />
      {st.data && (
        <>
          <Table<UsageRow>
            caption={`${t.statement} ${st.data.statement.month}`}
            rows={st.data.statement.lines}
            rowKey={(r) => `${r.provider}-${r.model}-${r.currency}`}
            columns={[
              { key: 'provider', title: t.provider, render: (r) => r.provider ?? '—' },
              { key: 'model', title: t.model, render: (r) => r.model ?? '—' },
              { key: 'requests', title: t.requests, numeric: true, render: (r) => count(r.requests, locale) },
              { key: 'prompt', title: t.promptTokens, numeric: true, render: (r) => count(r.promptTokens, locale) },
              { key: 'completion', title: t.completionTokens, numeric: true, render: (r) => count(r.completionTokens, locale) },
              { key: 'cost', title: t.cost, numeric: true, render: (r) => money(r.costMicros, r.currency, locale) },
            ]}
          />
          <h3>{t.totals}</h3>
          <Table<UsageRow>
            caption={t.totals}
            rows={st.data.statement.totals}
            rowKey={(r) => r.currency ?? 'none'}
            columns={[
              { key: 'currency', title: t.currency, render: (r) => r.currency ?? '—' },
              { key: 'requests', title: t.requests, numeric: true, render: (r) => count(r.requests, locale) },
              { key: 'tokens', title: t.tokens, numeric: true, render: (r) => count(r.promptTokens + r.completionTokens, locale) },
              { key: 'cost', title: t.cost, numeric: true, render: (r) => <strong>{money(r.costMicros, r.currency, locale)}</strong> },
            ]}
          />
        </>
      )}
    </section>
  );
}
