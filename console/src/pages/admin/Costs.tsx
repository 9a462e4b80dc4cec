/**
 * The cost dashboard: spend over a range of days (kept in the URL), by day, model, provider and
 * user, every budget with its meter, and a user's monthly statement with its CSV. Money is always
 * shown in the row's own currency and summed per currency only. Everything refetches (debounced)
 * when a call settles, so a new call shows within a second or two.
 */
import { useCallback, useMemo } from 'react';
import type { ViewProps } from '../../App';
import { gql } from '../../api/gql';
import { useQuery, useSubscription } from '../../api/hooks';
import { useLang, useText } from '../../i18n';
import { navigate, type Route } from '../../router';
import { ChartView, PALETTE } from '../../ui/charts';
import { ErrorBox, Field, LiveDot, Loading, Page } from '../../ui/components';
import { microsToNumber, money } from '../../ui/format';
import { serverMonth, serverZone } from '../../api/calendar';
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
import { text } from './Costs.text';
import type { Row } from './costsRows';
import { Breakdown, moneyAxis } from './CostsBreakdown';
import { BUDGETS, CostsBudgets, type Budget } from './CostsBudgets';
import { CostsStatement, STATEMENT, type Statement } from './CostsStatement';
import './Costs.css';

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

  const month = route.params.get('month') || serverMonth();
  const statementUser = route.params.get('user') || undefined;
  const monthOk = /^\d{4}-(0[1-9]|1[0-2])$/.test(month);
  const statement = useQuery<{ statement: Statement }>(STATEMENT, { userId: statementUser, month }, !monthOk);

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
        <p className="muted costs-note">{t.daysNote(serverZone() ?? '')}</p>
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
            <Breakdown
              id="costs-by-model"
              title={t.byModel}
              query={byModel}
              keyOf={(r) => `${r.provider ?? ''}/${r.model ?? ''}`}
              labelOf={(k) => k}
              keyTitle={t.model}
              chartOptions={chartOptions}
            />
            <Breakdown
              id="costs-by-provider"
              title={t.byProvider}
              query={byProvider}
              keyOf={(r) => r.provider ?? '—'}
              labelOf={(k) => k}
              keyTitle={t.provider}
              chartOptions={chartOptions}
            />
          </div>
          <Breakdown
            id="costs-by-user"
            title={t.byUser}
            query={byUser}
            keyOf={(r) => r.userId ?? ''}
            labelOf={(k) => personLabel(people, k)}
            keyTitle={t.user}
            chartOptions={chartOptions}
          />
        </>
      )}

      <CostsBudgets budgets={budgets} people={people} />

      <CostsStatement
        statement={statement}
        month={month}
        monthOk={monthOk}
        statementUser={statementUser}
        people={people}
        setParams={setParams}
      />
    </Page>
  );
}
