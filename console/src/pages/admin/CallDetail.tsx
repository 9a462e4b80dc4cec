/** The detail panel of one AI call in the AI calls explorer. */
import { useEffect, useRef } from 'react';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useLang, useText } from '../../i18n';
import { Badge, ErrorBox, Loading } from '../../ui/components';
import { count, dateTime, money, ms } from '../../ui/format';
import { text } from './Calls.text';
import { statusTone, useKeys, useUsers, type CallRow } from './callsShared';

interface CallDetail extends CallRow {
  conversationId: string | null;
  requestId: string | null;
  stream: boolean;
  errorCode: string | null;
  errorMessage: string | null;
  usageSource: 'REPORTED' | 'ESTIMATED' | null;
  finishedAt: string | null;
  ttftMs: number | null;
  upstreamMs: number | null;
  overheadMs: number | null;
  priceId: string | null;
  priced: boolean;
  cached: boolean;
  attempts: unknown;
}

interface Price {
  id: string;
  inputPerMtok: string;
  cachedInputPerMtok: string;
  outputPerMtok: string;
  currency: string;
  effectiveFrom: string;
}

const CALL = gql`
  query CallsDetail($id: ID!) {
    aiCall(id: $id) {
      id userId conversationId requestId provider model stream status errorCode errorMessage
      promptTokens cachedPromptTokens completionTokens usageSource startedAt finishedAt
      latencyMs ttftMs upstreamMs overheadMs priceId costMicros currency priced cached attempts apiKeyId
    }
  }
`;

const PRICES = gql`
  query CallsPrices($provider: String, $model: String) {
    prices(provider: $provider, model: $model) {
      id inputPerMtok cachedInputPerMtok outputPerMtok currency effectiveFrom
    }
  }
`;

interface Attempt {
  provider?: string;
  model?: string;
  outcome?: string;
  ms?: number;
  httpAttempts?: number;
}
export function CallPanel({
  id,
  onClose,
  closeLabel,
  onKey,
}: {
  id: string;
  onClose(): void;
  closeLabel: string;
  /** Shows only the calls of this API key. */
  onKey(apiKeyId: string): void;
}) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const call = useQuery<{ aiCall: CallDetail }>(CALL, { id });
  const d = call.data?.aiCall.id === id ? call.data.aiCall : undefined;
  const prices = useQuery<{ prices: Price[] }>(
    PRICES,
    { provider: d?.provider, model: d?.model },
    !d?.priceId,
  );
  const users = useUsers(d ? [d.userId] : []);
  const keys = useKeys(d ? [d] : []);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    heading.current?.focus();
  }, [id]);

  const price = d?.priceId ? prices.data?.prices.find((p) => p.id === d.priceId) : undefined;
  const attempts: Attempt[] = Array.isArray(d?.attempts) ? (d?.attempts as Attempt[]) : [];
  const user = d ? users[d.userId] : undefined;
  const apiKey = d?.apiKeyId ? keys[d.apiKeyId] : undefined;

  return (
    <aside className="card detail calls-detail" aria-labelledby="calls-detail-title" data-testid="call-detail">
      <div className="calls-detail-head">
        <h2 id="calls-detail-title" ref={heading} tabIndex={-1}>
          {t.detail}
        </h2>
        <button type="button" onClick={onClose} aria-label={t.closeDetail}>
          {closeLabel}
        </button>
      </div>
      <ErrorBox error={call.error} onRetry={call.reload} />
      <Loading show={call.loading && !d} />
      {d && (
        <dl>
          <dt>{t.callId}</dt>
          <dd>
            <code>{d.id}</code>
          </dd>
          <dt>{t.user}</dt>
          <dd>{user ? `${user.displayName} <${user.email}>` : <code>{d.userId}</code>}</dd>
          <dt>{t.apiKey}</dt>
          <dd data-testid="detail-api-key">
            {d.apiKeyId ? (
              <>
                {apiKey ? (
                  <>
                    <code>{apiKey.prefix}…</code> {apiKey.name}
                  </>
                ) : (
                  <code>{d.apiKeyId}</code>
                )}{' '}
                <button type="button" className="link" onClick={() => d.apiKeyId && onKey(d.apiKeyId)}>
                  {t.keyCalls}
                </button>
              </>
            ) : (
              <span className="muted">{t.session}</span>
            )}
          </dd>
          <dt>{t.providerModel}</dt>
          <dd>
            {d.provider} / <strong>{d.model}</strong>
          </dd>
          <dt>{t.status}</dt>
          <dd>
            <Badge tone={statusTone(d.status)}>{t[d.status]}</Badge>
          </dd>
          <dt>{t.started}</dt>
          <dd>{dateTime(d.startedAt, locale)}</dd>
          <dt>{t.finished}</dt>
          <dd>{dateTime(d.finishedAt, locale)}</dd>
          <dt>{t.promptTokens}</dt>
          <dd data-testid="detail-prompt">{count(d.promptTokens, locale)}</dd>
          <dt>{t.cachedTokens}</dt>
          <dd data-testid="detail-cached">{count(d.cachedPromptTokens, locale)}</dd>
          <dt>{t.completionTokens}</dt>
          <dd data-testid="detail-completion">{count(d.completionTokens, locale)}</dd>
          <dt>{t.usageSource}</dt>
          <dd>{d.usageSource ? t[d.usageSource] : '—'}</dd>
          <dt>{t.ttft}</dt>
          <dd>{ms(d.ttftMs, locale)}</dd>
          <dt>{t.upstream}</dt>
          <dd>{ms(d.upstreamMs, locale)}</dd>
          <dt>{t.overhead}</dt>
          <dd>{ms(d.overheadMs, locale)}</dd>
          <dt>{t.latency}</dt>
          <dd>{ms(d.latencyMs, locale)}</dd>
          <dt>{t.cost}</dt>
          <dd data-testid="detail-cost">
            <strong>{money(d.costMicros, d.currency, locale)}</strong>
          </dd>
          <dt>{t.price}</dt>
          <dd>
            {!d.priceId ? (
              t.unpriced
            ) : price ? (
              <div data-testid="detail-price">
                <div className="muted">
                  {t.perMillion} · {t.priceFrom(dateTime(price.effectiveFrom, locale))}
                </div>
                <div>
                  {t.priceInput}: {money(price.inputPerMtok, price.currency, locale)}
                </div>
                <div>
                  {t.priceCached}: {money(price.cachedInputPerMtok, price.currency, locale)}
                </div>
                <div>
                  {t.priceOutput}: {money(price.outputPerMtok, price.currency, locale)}
                </div>
                <code className="muted">{d.priceId}</code>
              </div>
            ) : prices.loading ? (
              c.loading
            ) : (
              <>
                {t.priceMissing} <code>{d.priceId}</code>
              </>
            )}
          </dd>
          <dt>{t.flags}</dt>
          <dd>
            {t.pricedFlag}: {d.priced ? c.yes : c.no} · {t.cachedFlag}: {d.cached ? c.yes : c.no} · {t.stream}:{' '}
            {d.stream ? c.yes : c.no}
          </dd>
          <dt>{t.conversation}</dt>
          <dd>{d.conversationId ? <code>{d.conversationId}</code> : '—'}</dd>
          <dt>{t.requestId}</dt>
          <dd>{d.requestId ? <code>{d.requestId}</code> : '—'}</dd>
          <dt>{t.attempts}</dt>
          <dd>
            {attempts.length === 0 ? (
              t.noAttempts
            ) : (
              <ol className="calls-attempts" data-testid="detail-attempts">
                {attempts.map((a, i) => (
                  <li key={i}>
                    {a.provider ?? '?'} / {a.model ?? '?'} —{' '}
                    <Badge tone={a.outcome === 'SUCCEEDED' ? 'ok' : 'bad'}>{a.outcome ?? '?'}</Badge> {ms(a.ms ?? null, locale)}
                  </li>
                ))}
              </ol>
            )}
          </dd>
          {(d.errorCode || d.errorMessage) && (
            <>
              <dt>{t.error}</dt>
              <dd className="calls-error" data-testid="detail-error">
                {d.errorCode && <code>{d.errorCode}</code>} {d.errorMessage}
              </dd>
            </>
          )}
        </dl>
      )}
    </aside>
  );
}
