/**
 * The signed-in user's own usage: cost and calls by day (chart) and by model (table) over a date
 * range, the budgets that apply to them (moving live as their calls settle), their rate limits,
 * and a month's statement.
 */
import { useMemo, useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useLang, useText } from '../../i18n';
import { navigate } from '../../router';
import { ErrorBox, Field, Loading, Page, Table, Tile, Tiles } from '../../ui/components';
import { ChartView, PALETTE } from '../../ui/charts';
import { count, isoDay, microsToNumber, money, sumMicros } from '../../ui/format';
import { addDays, serverMonth, serverToday } from '../../api/calendar';
import { text } from './Usage.text';
import { Budgets } from './UsageBudgets';
import { RateLimits } from './UsageRateLimits';
import { Statement, type UsageRow } from './UsageStatement';
import '../ops.css';

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
