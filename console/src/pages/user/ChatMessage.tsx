/** One chat message: the speaker, any reasoning, the text, and (when the reply ends) its tokens, time and cost. */
import { useLang, useText } from '../../i18n';
import { count, money, ms } from '../../ui/format';
import { text } from './Chat.text';

export interface CallSummary {
  id: string;
  status: string;
  promptTokens: number;
  cachedPromptTokens: number;
  completionTokens: number;
  costMicros: string;
  currency: string | null;
  latencyMs: number | null;
  ttftMs: number | null;
  cached: boolean;
}

export interface Turn {
  key: string;
  role: 'USER' | 'ASSISTANT' | 'SYSTEM';
  content: string;
  reasoning?: string | null;
  call?: CallSummary;
  streaming?: boolean;
  stopped?: boolean;
}

export function Message({ turn }: { turn: Turn }) {
  const t = useText(text);
  const { locale } = useLang();
  return (
    <article className={`msg msg-${turn.role.toLowerCase()}`} aria-busy={turn.streaming || undefined}>
      <span className="sr-only">{turn.role === 'USER' ? t.you : t.assistant}: </span>
      {turn.reasoning && (
        <details className="msg-reasoning">
          <summary>{t.reasoning}</summary>
          <div>{turn.reasoning}</div>
        </details>
      )}
      <div className="msg-text">{turn.content}</div>
      {turn.streaming && <div className="msg-meta">{t.streaming}</div>}
      {turn.stopped && <div className="msg-meta">{t.stopped}</div>}
      {turn.call && (
        <div className="msg-meta" data-testid="call-meta">
          {t.tokens(count(turn.call.promptTokens, locale), count(turn.call.completionTokens, locale))} ·{' '}
          {ms(turn.call.latencyMs, locale)} ·{' '}
          <span data-testid="call-cost">{money(turn.call.costMicros, turn.call.currency, locale)}</span>
          {turn.call.cached && ` · ${t.cached}`}
        </div>
      )}
    </article>
  );
}
