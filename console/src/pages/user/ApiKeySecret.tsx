/**
 * The secret of a key just made or rotated, shown once: a Copy button, a plain warning that it
 * will not be shown again, and examples to paste (Python's OpenAI SDK and curl) with this
 * server's `/v1` address and one of the models the key may call.
 */
import { useEffect, useRef, useState } from 'react';
import { useLang, useText } from '../../i18n';
import { copyText } from '../../ui/clipboard';
import { dateTime } from '../../ui/format';
import { text } from './ApiKeys.text';
import { baseUrl, exampleModel, type ApiKey, type Created, type ModelChoice } from './apiKeysShared';

function CopyButton({ value, label, children }: { value: string; label: string; children: string }) {
  const t = useText(text);
  const [state, setState] = useState<'idle' | 'done' | 'failed'>('idle');
  return (
    <span className="keys-copy">
      <button type="button" aria-label={label} onClick={() => void copyText(value).then((ok) => setState(ok ? 'done' : 'failed'))}>
        {children}
      </button>
      <span role="status" className={state === 'failed' ? 'bad-text' : 'ok-text'}>
        {state === 'done' ? t.copied : state === 'failed' ? t.copyFailed : ''}
      </span>
    </span>
  );
}

export function SecretPanel({
  created,
  old,
  models,
  onDone,
}: {
  created: Created;
  /** For a rotation, the replaced key as the list shows it now (its state and `revokedAt`). */
  old?: ApiKey;
  models: ModelChoice[];
  onDone(): void;
}) {
  const t = useText(text);
  const { locale } = useLang();
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    heading.current?.focus();
    heading.current?.scrollIntoView?.({ block: 'nearest' });
  }, [created.secret]);
  const { secret, apiKey, replaced } = created;
  const url = baseUrl();
  const model = exampleModel(apiKey, models);
  const python = [
    'from openai import OpenAI',
    '',
    `client = OpenAI(base_url="${url}", api_key="${secret}")`,
    'reply = client.chat.completions.create(',
    `    model="${model}",`,
    '    messages=[{"role": "user", "content": "Hello!"}],',
    ')',
    'print(reply.choices[0].message.content)',
  ].join('\n');
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello!' }] });
  const curl = [
    `curl ${url}/chat/completions \\`,
    `  -H "Authorization: Bearer ${secret}" \\`,
    '  -H "Content-Type: application/json" \\',
    `  -d '${body}'`,
  ].join('\n');
  return (
    <section className="card keys-secret" aria-labelledby="keys-secret-title" data-testid="key-secret">
      <h2 id="keys-secret-title" ref={heading} tabIndex={-1}>
        {replaced ? t.rotatedTitle(apiKey.name) : t.secretTitle(apiKey.name)}
      </h2>
      <p className="notice">
        <strong>{t.secretOnce}</strong>
      </p>
      {replaced && old && (old.state === 'ROTATING' || old.state === 'REVOKED') && (
        <p data-testid="key-rotated-old">
          {t.rotatedOld(replaced.prefix, old.state === 'ROTATING' ? t.oldAt(dateTime(old.revokedAt, locale)) : t.oldNow)}
        </p>
      )}
      <div className="keys-secret-row">
        <label className="field keys-secret-field">
          <span className="field-label">{t.secretOf(apiKey.name)}</span>
          <input readOnly value={secret} spellCheck={false} onFocus={(e) => e.currentTarget.select()} data-testid="key-secret-value" />
        </label>
        <CopyButton value={secret} label={t.copySecret}>
          {t.copy}
        </CopyButton>
      </div>
      <h3>{t.useIt}</h3>
      <p className="muted">
        {t.useItHint} {t.baseUrl} <code>{url}</code>
      </p>
      <div className="keys-snippet-head">
        <h4>{t.python}</h4>
        <CopyButton value={python} label={t.copyPython}>
          {t.copy}
        </CopyButton>
      </div>
      <pre tabIndex={0} role="region" aria-label={t.python}>
        <code>{python}</code>
      </pre>
      <div className="keys-snippet-head">
        <h4>{t.curl}</h4>
        <CopyButton value={curl} label={t.copyCurl}>
          {t.copy}
        </CopyButton>
      </div>
      <pre tabIndex={0} role="region" aria-label={t.curl}>
        <code>{curl}</code>
      </pre>
      <div className="dialog-actions">
        <button type="button" className="primary" onClick={onDone}>
          {t.saved}
        </button>
      </div>
    </section>
  );
}
