/** The personal usage page's budgets card: each budget that applies, with its meter, moving live as calls settle. */
import { useState } from 'react';
import { gql } from '../../api/gql';
import { useQuery, useSubscription } from '../../api/hooks';
import { useLang, useText } from '../../i18n';
import { Badge, ErrorBox, LiveDot, Loading, Meter } from '../../ui/components';
import { count, dateTime, limitShares, money } from '../../ui/format';
import { text } from './Usage.text';

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

export function Budgets({ onSettled }: { onSettled(): void }) {
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
        const shares = limitShares(b.limitMicros, b.spentMicros, b.reservedMicros);
        return (
          <div className="meter-block" key={b.id} data-budget={b.id}>
            <div className="meter-legend">
              <strong>
                <Badge tone={b.scope === 'USER' ? 'info' : 'muted'}>{b.scope === 'USER' ? t.scopeUser : t.scopeGlobal}</Badge> {t[b.period]}
              </strong>
              <span>{t.meter(money(b.spentMicros, b.currency, locale), money(b.limitMicros, b.currency, locale))}</span>
            </div>
            <Meter
              shares={shares}
              role="meter"
              aria-label={`${t.spent} ${t[b.period]}`}
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round(shares.spent)}
              aria-valuetext={t.meter(money(b.spentMicros, b.currency, locale), money(b.limitMicros, b.currency, locale))}
            />
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
