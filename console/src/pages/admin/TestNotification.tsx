/** The test-notification card: send a test message through any loaded notifier and show the verdict. */
import { useState, type FormEvent } from 'react';
import { ApiError, request, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useText } from '../../i18n';
import { Badge, ErrorBox, Field } from '../../ui/components';
import { text } from './Alerts.text';

const TEST = gql`
  mutation AlertsPageTest($channel: String!, $message: String!) {
    testNotification(channel: $channel, message: $message) {
      channel
      ok
      detail
    }
  }
`;

export function TestNotification({ notifiers }: { notifiers: string[] }) {
  const t = useText(text);
  const [channel, setChannel] = useState('');
  const [message, setMessage] = useState('');
  const [result, setResult] = useState<{ channel: string; ok: boolean; detail: string }>();
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const chosen = channel || notifiers[0] || '';
  const send = async (e: FormEvent) => {
    e.preventDefault();
    setResult(undefined);
    setError(undefined);
    setBusy(true);
    try {
      const d = await request<{ testNotification: { channel: string; ok: boolean; detail: string } }>(TEST, {
        channel: chosen,
        message: message.trim() || t.defaultMessage,
      });
      setResult(d.testNotification);
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby="alerts-test">
      <h2 id="alerts-test">{t.test}</h2>
      {notifiers.length === 0 ? (
        <p className="notice">{t.noNotifiers}</p>
      ) : (
        <form className="row" onSubmit={(e) => void send(e)}>
          <Field label={t.channel}>
            <select value={chosen} onChange={(e) => setChannel(e.target.value)}>
              {notifiers.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </Field>
          <Field label={t.message}>
            <input value={message} placeholder={t.defaultMessage} onChange={(e) => setMessage(e.target.value)} />
          </Field>
          <button type="submit" disabled={busy}>
            {t.send}
          </button>
        </form>
      )}
      {result && (
        <p className="verdict" role="status">
          <Badge tone={result.ok ? 'ok' : 'bad'}>{result.ok ? t.delivered : t.notDelivered}</Badge> <code>{result.channel}</code>{' '}
          <span>{result.detail}</span>
        </p>
      )}
      <ErrorBox error={error} />
    </section>
  );
}
