/** The costs page's budgets card: every budget with its limit, spend, reservation and meter. */
import type { QueryState } from '../../api/hooks';
import { gql } from '../../api/gql';
import { useLang, useText } from '../../i18n';
import { ErrorBox, Loading, Meter, Table } from '../../ui/components';
import { dateTime, limitShares, money } from '../../ui/format';
import { personLabel, type Person } from './costsShared';
import { text } from './Costs.text';

export const BUDGETS = gql`
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

export interface Budget {
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

export function CostsBudgets({
  budgets,
  people,
}: {
  budgets: QueryState<{ budgets: Budget[] }>;
  people: Map<string, Person | null>;
}) {
  const t = useText(text);
  const { locale } = useLang();
  return (
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
            { key: 'use', title: t.use, render: (b) => <BudgetMeter budget={b} label={t.meterLabel} locale={locale} /> },
            { key: 'reset', title: t.resets, render: (b) => dateTime(b.resetAt, locale) },
          ]}
        />
      )}
    </section>
  );
}

function BudgetMeter({ budget, label, locale }: { budget: Budget; label: (pct: string) => string; locale: string }) {
  const shares = limitShares(budget.limitMicros, budget.spentMicros, budget.reservedMicros);
  const used = shares.spent + shares.reserved;
  const pct = new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 }).format(used / 100);
  return (
    <div className="costs-meter">
      <Meter
        shares={shares}
        role="meter"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(used * 10) / 10}
        aria-label={label(pct)}
      />
      <span className="muted">{pct}</span>
    </div>
  );
}
