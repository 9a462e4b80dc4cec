/** The personal usage page's statement card: a month's lines and totals per currency (and the usage row they share). */
import { useEffect } from 'react';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { useLang, useText } from '../../i18n';
import { ErrorBox, Field, Loading, Table } from '../../ui/components';
import { count, money } from '../../ui/format';
import { text } from './Usage.text';

export interface UsageRow {
  day: string | null;
  provider: string | null;
  model: string | null;
  currency: string | null;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costMicros: string;
}

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

export function Statement({ month, settled, onMonth }: { month: string; settled: number; onMonth(m: string): void }) {
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
