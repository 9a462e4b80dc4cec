/** The usage row every cost table shows, and its currency, request, token and cost columns. */
import { useLang, useText } from '../../i18n';
import type { Column } from '../../ui/components';
import { count, money } from '../../ui/format';
import { text } from './Costs.text';

export interface Row {
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

/** The currency, requests, tokens and cost columns, in the page's language. */
export function useNumberColumns(): Column<Row>[] {
  const t = useText(text);
  const { locale } = useLang();
  const amount = (r: { costMicros: string; currency: string | null }) =>
    r.currency ? money(r.costMicros, r.currency, locale) : `${money(r.costMicros, null, locale)} (${t.unpriced})`;
  return [
    { key: 'currency', title: t.currency, render: (r) => r.currency ?? '—' },
    { key: 'requests', title: t.requests, numeric: true, render: (r) => count(r.requests, locale) },
    { key: 'tokens', title: t.tokens, numeric: true, render: (r) => count(r.promptTokens + r.completionTokens, locale) },
    { key: 'cost', title: t.cost, numeric: true, render: amount },
  ];
}
