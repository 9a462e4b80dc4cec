/** One spend breakdown card (by model, provider or user): the top rows per currency as a bar chart and a table. */
import type { ChartOptions } from 'chart.js';
import type { ApiError } from '../../api/client';
import { useText } from '../../i18n';
import { ChartView, PALETTE } from '../../ui/charts';
import { ErrorBox, Table } from '../../ui/components';
import { microsToNumber } from '../../ui/format';
import { text } from './Costs.text';
import { type Row, useNumberColumns } from './costsRows';

const TOP_N = 10;

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
export function moneyAxis(locale: string): ChartOptions<'bar'> {
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

export function Breakdown({
  id,
  title,
  query,
  keyOf,
  labelOf,
  keyTitle,
  chartOptions,
}: {
  id: string;
  title: string;
  query: { data?: { usage: Row[] }; error?: ApiError; loading: boolean; reload(): void };
  keyOf: (r: Row) => string;
  labelOf: (k: string) => string;
  keyTitle: string;
  chartOptions: ChartOptions<'bar'>;
}) {
  const t = useText(text);
  const numbers = useNumberColumns();
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
}
