/**
 * API keys (everyone): the signed-in user's keys for the OpenAI-compatible `/v1` API, working ones
 * first and revoked or expired ones behind a toggle; create one (its secret shown once, with
 * examples to paste), edit, rotate (with a grace period for the old secret) or revoke it. Admins
 * can list everyone's keys (`apiKeys(all: true)`), edit or revoke any, and open a key's calls in
 * the AI calls explorer. The toggles live in the address (`#/keys?all=1&inactive=1`).
 */
import { useState } from 'react';
import type { ViewProps } from '../../App';
import { useQuery } from '../../api/hooks';
import { useLang, useText } from '../../i18n';
import { href, navigate } from '../../router';
import { Badge, ErrorBox, Loading, Meter, Page, Table, type Column } from '../../ui/components';
import { count, dateTime, limitShares, money, shortDateTime } from '../../ui/format';
import { useUsers } from '../admin/callsShared';
import { RevokeDialog, RotateDialog } from './ApiKeyActions';
import { KeyForm } from './ApiKeyForm';
import { SecretPanel } from './ApiKeySecret';
import { text } from './ApiKeys.text';
import { API_KEYS, MODELS, baseUrl, isLive, ordered, stateTone, type ApiKey, type Created, type ModelChoice } from './apiKeysShared';
import '../ops.css';
import './ApiKeys.css';

export function ApiKeys({ route, session }: ViewProps) {
  const t = useText(text);
  const { locale } = useLang();
  const isAdmin = session.user.role === 'ADMIN';
  const all = isAdmin && route.params.get('all') === '1';
  const showInactive = route.params.get('inactive') === '1';
  const keys = useQuery<{ apiKeys: ApiKey[] }>(API_KEYS, { all });
  const models = useQuery<{ models: ModelChoice[] }>(MODELS);
  const [form, setForm] = useState<{ editing: ApiKey | null } | null>(null);
  const [rotating, setRotating] = useState<ApiKey | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const [created, setCreated] = useState<Created | null>(null);
  const [notice, setNotice] = useState<string>();

  const list = ordered(keys.data?.apiKeys ?? []);
  const inactive = list.filter((k) => !isLive(k)).length;
  const rows = showInactive ? list : list.filter(isLive);
  const users = useUsers(all ? rows.map((k) => k.userId) : []);
  const setParams = (next: { all?: boolean; inactive?: boolean }) =>
    navigate('/keys', {
      all: (next.all ?? all) ? '1' : undefined,
      inactive: (next.inactive ?? showInactive) ? '1' : undefined,
    });
  const own = (k: ApiKey) => k.userId === session.user.id;

  const columns: Column<ApiKey>[] = [
    {
      key: 'name',
      title: t.key,
      render: (k) => (
        <>
          <strong title={t.createdOn(dateTime(k.createdAt, locale))}>{k.name}</strong>
          <div>
            <code className="keys-nowrap keys-prefix">{k.prefix}…</code>
          </div>
        </>
      ),
    },
    ...(all
      ? [
          {
            key: 'owner',
            title: t.owner,
            render: (k: ApiKey) => <span className="keys-owner">{users[k.userId]?.email ?? <code className="muted">{k.userId}</code>}</span>,
          },
        ]
      : []),
    { key: 'scope', title: t.scope, render: (k) => t[k.scope] },
    {
      key: 'state',
      title: t.state,
      render: (k) => (
        <>
          <Badge tone={stateTone(k.state)}>{t[k.state]}</Badge>
          {k.state === 'ROTATING' && <div className="muted keys-small">{t.rotatingUntil(dateTime(k.revokedAt, locale))}</div>}
        </>
      ),
    },
    {
      key: 'models',
      title: t.models,
      render: (k) =>
        k.allowedModels ? (
          <ul className="keys-models-list">
            {k.allowedModels.map((m) => (
              <li key={m}>
                <code>{m}</code>
              </li>
            ))}
          </ul>
        ) : (
          <span className="muted">{t.allModels}</span>
        ),
    },
    {
      key: 'used',
      title: t.lastUsed,
      render: (k) =>
        k.lastUsedAt ? (
          <span data-testid="key-last-used">
            <span title={dateTime(k.lastUsedAt, locale)}>{shortDateTime(k.lastUsedAt, locale)}</span>
            {k.lastUsedIp && <div className="muted keys-small">{t.fromAddress(k.lastUsedIp)}</div>}
          </span>
        ) : (
          <span className="muted">{t.never}</span>
        ),
    },
    {
      key: 'expires',
      title: t.expires,
      render: (k) => (k.expiresAt ? dateTime(k.expiresAt, locale) : <span className="muted">{t.noExpiry}</span>),
    },
    { key: 'limits', title: t.limits, render: (k) => <KeyLimitsCell apiKey={k} /> },
    {
      key: 'actions',
      title: t.actions,
      render: (k) => (
        <div className="keys-actions">
          {k.state !== 'REVOKED' && (
            <button type="button" aria-label={t.editOf(k.name)} onClick={() => (setNotice(undefined), setForm({ editing: k }))}>
              {t.edit}
            </button>
          )}
          {k.state === 'ACTIVE' && own(k) && (
            <button type="button" aria-label={t.rotateOf(k.name)} onClick={() => (setNotice(undefined), setRotating(k))}>
              {t.rotate}
            </button>
          )}
          {isLive(k) && (
            <button type="button" className="danger" aria-label={t.revokeOf(k.name)} onClick={() => (setNotice(undefined), setRevoking(k))}>
              {t.revoke}
            </button>
          )}
          {isAdmin && (
            <a className="keys-nowrap" href={href('/calls', { key: k.id })} aria-label={t.callsOf(k.name)}>
              {t.calls}
            </a>
          )}
        </div>
      ),
    },
  ];

  const replaced = created?.replaced ? list.find((k) => k.id === created.replaced?.id) : undefined;
  return (
    <Page
      title={t.title}
      actions={
        <button type="button" className="primary" onClick={() => (setNotice(undefined), setForm({ editing: null }))}>
          {t.newKey}
        </button>
      }
    >
      <p className="muted">
        {t.intro}
        <code>{baseUrl()}</code>
        {t.introModels}
      </p>
      {created && (
        <SecretPanel created={created} old={replaced} models={models.data?.models ?? []} onDone={() => setCreated(null)} />
      )}
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      <div className="row keys-toggles">
        {isAdmin && (
          <label className="checkbox">
            <input type="checkbox" checked={all} onChange={(e) => setParams({ all: e.target.checked })} />
            {t.allUsers}
          </label>
        )}
        <label className="checkbox">
          <input type="checkbox" checked={showInactive} onChange={(e) => setParams({ inactive: e.target.checked })} />
          {t.showInactive(inactive)}
        </label>
      </div>
      <ErrorBox error={keys.error} onRetry={keys.reload} />
      <Loading show={keys.loading && !keys.data} />
      {keys.data && (
        <Table
          caption={t.tableCaption}
          columns={columns}
          rows={rows}
          rowKey={(k) => k.id}
          rowClass={(k) => (isLive(k) ? undefined : 'keys-inactive')}
        />
      )}
      {form && (
        <KeyForm
          editing={form.editing}
          onClose={() => setForm(null)}
          onCreated={(c) => {
            setForm(null);
            setCreated(c);
            keys.reload();
          }}
          onSaved={(name) => {
            setForm(null);
            setNotice(t.updated(name));
            keys.reload();
          }}
        />
      )}
      {rotating && (
        <RotateDialog
          apiKey={rotating}
          onClose={() => setRotating(null)}
          onRotated={(c) => {
            setRotating(null);
            setCreated(c);
            keys.reload();
          }}
        />
      )}
      {revoking && (
        <RevokeDialog
          apiKey={revoking}
          onClose={() => setRevoking(null)}
          onRevoked={() => {
            setNotice(t.revoked(revoking.name));
            setRevoking(null);
            keys.reload();
          }}
        />
      )}
    </Page>
  );
}

/** A key's own limits: its rate limits, and its budget (period, spent of limit, and a meter). */
function KeyLimitsCell({ apiKey }: { apiKey: ApiKey }) {
  const t = useText(text);
  const { locale } = useLang();
  const { requestsPerMinute: rpm, tokensPerMinute: tpm, budget: b } = apiKey;
  if (rpm == null && tpm == null && !b) return <span className="muted">{t.noLimits}</span>;
  const shares = b ? limitShares(b.limitMicros, b.spentMicros, b.reservedMicros) : null;
  const label = b ? t.budgetOf(money(b.spentMicros, b.currency, locale), money(b.limitMicros, b.currency, locale)) : '';
  return (
    <div className="keys-limits">
      {rpm != null && <div className="keys-nowrap">{t.rpmShort(count(rpm, locale))}</div>}
      {tpm != null && <div className="keys-nowrap">{t.tpmShort(count(tpm, locale))}</div>}
      {b && shares && (
        <>
          <div className="keys-nowrap">{t.budgetLine(t[b.period], label)}</div>
          <Meter
            shares={shares}
            role="meter"
            aria-label={`${t.budget} ${apiKey.name}`}
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={Math.round(shares.spent)}
            aria-valuetext={label}
          />
        </>
      )}
    </div>
  );
}
