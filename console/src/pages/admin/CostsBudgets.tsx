/** The costs page's budgets card: every budget with its limit, spend, reservation and meter. */
import type { QueryState } from '../../api/hooks';
import { gql } from '../../api/gql';
import { useLang, useText } from '../../i18n';
import { ErrorBox, Loading, Table } from '../../ui/components';
import { dateTime, money } from '../../ui/format';
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
            { key: 'use', title: t.use, render: (b) => <Meter budget={b} label={t.meterLabel} locale={locale} /> },
            { key: 'reset', title: t.resets, render: (b) => dateTime(b.resetAt, locale) },
          ]}
        />
      )}
    </section>
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
