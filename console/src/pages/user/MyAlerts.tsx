/**
 * The signed-in user's own alerts: opt in to a budget alert by email or webhook, turn their rules
 * on and off or delete them, and see the alerts sent to them, live as they fire.
 */
import { useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { ApiError, request, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery, useSubscription } from '../../api/hooks';
import { common } from '../../i18n/common';
import { defineText, useLang, useText } from '../../i18n';
import { Badge, ErrorBox, Field, LiveDot, Loading, Page, Pager, Table, usePager } from '../../ui/components';
import { dateTime } from '../../ui/format';
import { ALERTS, AlertFeed, FIRED, alertsText, type Alert } from './alertsShared';
import '../ops.css';

const text = defineText({
  en: {
    title: 'My alerts',
    newAlert: 'Alert me about my budgets',
    newAlertHint: 'When one of your budgets reaches this share of its limit, you hear once per budget and period.',
    threshold: 'Threshold (% of the limit)',
    channel: 'How',
    EMAIL: 'Email',
    WEBHOOK: 'Webhook',
    addressEmail: 'Email address',
    addressWebhook: 'Webhook URL (http or https)',
    cooldown: 'Cooldown (seconds)',
    created: 'Alert created.',
    badThreshold: 'The threshold is a whole number from 1 to 100.',
    badAddress: 'Enter an address.',
    badCooldown: 'The cooldown is a whole number of seconds.',
    rules: 'My rules',
    name: 'Name',
    sendTo: 'Sent to',
    enabled: 'Enabled',
    lastFired: 'Last fired',
    actions: 'Actions',
    enable: 'Enable',
    disable: 'Disable',
    sent: 'Alerts sent to me',
  },
  zh: {
    title: '我的告警',
    newAlert: '预算提醒',
    newAlertHint: '当你的某个预算用到限额的这一比例时通知你，每个预算每个周期只通知一次。',
    threshold: '阈值（占限额的百分比）',
    channel: '通知方式',
    EMAIL: '电子邮件',
    WEBHOOK: 'Webhook',
    addressEmail: '电子邮件地址',
    addressWebhook: 'Webhook 地址（http 或 https）',
    cooldown: '冷却时间（秒）',
    created: '提醒已创建。',
    badThreshold: '阈值须为 1 到 100 的整数。',
    badAddress: '请输入地址。',
    badCooldown: '冷却时间须为整数秒。',
    rules: '我的规则',
    name: '名称',
    sendTo: '发送到',
    enabled: '启用',
    lastFired: '上次触发',
    actions: '操作',
    enable: '启用',
    disable: '停用',
    sent: '发给我的告警',
  },
});

interface Rule {
  id: string;
  name: string;
  kind: string;
  params: { thresholdPercent: number | null };
  targets: { channel: string; to: string | null }[];
  cooldownSecs: number;
  enabled: boolean;
  lastFiredAt: string | null;
}

const RULES = gql`
  query MyAlertsPageRules {
    alertRules {
      id
      name
      kind
      params {
        thresholdPercent
      }
      targets {
        channel
        to
      }
      cooldownSecs
      enabled
      lastFiredAt
    }
  }
`;

const CREATE = gql`
  mutation MyAlertsPageCreate($thresholdPercent: Int!, $channel: PersonalChannel!, $address: String!, $cooldownSecs: Int) {
    createMyBudgetAlert(thresholdPercent: $thresholdPercent, channel: $channel, address: $address, cooldownSecs: $cooldownSecs) {
      id
    }
  }
`;

const SET_ENABLED = gql`
  mutation MyAlertsPageSetEnabled($id: ID!, $enabled: Boolean!) {
    setAlertRuleEnabled(id: $id, enabled: $enabled) {
      id
      enabled
    }
  }
`;

const DELETE = gql`
  mutation MyAlertsPageDelete($id: ID!) {
    deleteAlertRule(id: $id)
  }
`;


export function MyAlerts(_props: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const a = useText(alertsText);
  const { locale } = useLang();
  const rules = useQuery<{ alertRules: Rule[] }>(RULES);
  const [actionError, setActionError] = useState<ApiError>();

  const pager = usePager('');
  const sent = useQuery<{ alerts: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: Alert[] } }>(ALERTS, {
    first: 20,
    after: pager.cursor,
  });
  const [fresh, setFresh] = useState<Alert[]>([]);
  const live = useSubscription<{ alertFired: Alert }>(FIRED, undefined, (d) =>
    setFresh((list) => [d.alertFired, ...list.filter((x) => x.id !== d.alertFired.id)].slice(0, 100)),
  );
  const alertRows = [...(pager.page === 1 ? fresh : []), ...(sent.data?.alerts.nodes ?? [])].filter(
    (x, i, all) => all.findIndex((y) => y.id === x.id) === i,
  );
  const ruleName = (id: string) => rules.data?.alertRules.find((r) => r.id === id)?.name ?? id.slice(0, 8);

  const act = async (doc: string, vars: object, confirmText?: string) => {
    if (confirmText && !window.confirm(confirmText)) return;
    setActionError(undefined);
    try {
      await request(doc, vars);
      rules.reload();
    } catch (e) {
      setActionError(toApiError(e));
    }
  };

  return (
    <Page title={t.title}>
      <NewBudgetAlert onCreated={rules.reload} />
      <section className="card" aria-labelledby="my-rules">
        <h2 id="my-rules">{t.rules}</h2>
        <ErrorBox error={rules.error} onRetry={rules.reload} />
        <ErrorBox error={actionError} />
        <Loading show={rules.loading && !rules.data} />
        {rules.data && (
          <Table<Rule>
            rows={rules.data.alertRules}
            rowKey={(r) => r.id}
            columns={[
              { key: 'name', title: t.name, render: (r) => r.name },
              {
                key: 'to',
                title: t.sendTo,
                render: (r) => r.targets.map((x) => (x.to ? `${x.channel} → ${x.to}` : x.channel)).join(', '),
              },
              {
                key: 'enabled',
                title: t.enabled,
                render: (r) => (r.enabled ? <Badge tone="ok">{c.yes}</Badge> : <Badge tone="muted">{c.no}</Badge>),
              },
              { key: 'last', title: t.lastFired, render: (r) => dateTime(r.lastFiredAt, locale) },
              {
                key: 'actions',
                title: t.actions,
                render: (r) => (
                  <span className="cell-actions">
                    <button
                      type="button"
                      onClick={() => void act(SET_ENABLED, { id: r.id, enabled: !r.enabled })}
                      aria-label={`${r.enabled ? t.disable : t.enable} ${r.name}`}
                    >
                      {r.enabled ? t.disable : t.enable}
                    </button>
                    <button
                      type="button"
                      onClick={() => void act(DELETE, { id: r.id }, `${r.name}: ${c.confirmDelete}`)}
                      aria-label={`${c.delete} ${r.name}`}
                    >
                      {c.delete}
                    </button>
                  </span>
                ),
              },
            ]}
          />
        )}
      </section>
      <section className="card" aria-labelledby="my-alerts-sent">
        <div className="page-head">
          <h2 id="my-alerts-sent">{t.sent}</h2>
          <LiveDot error={live.error} />
        </div>
        <ErrorBox error={sent.error} onRetry={sent.reload} />
        <Loading show={sent.loading && !sent.data} />
        <AlertFeed alerts={alertRows} ruleName={ruleName} label={a.alerts} />
        <Pager pager={pager} hasNext={!!sent.data?.alerts.pageInfo.hasNextPage} endCursor={sent.data?.alerts.pageInfo.endCursor} />
      </section>
    </Page>
  );
}

function NewBudgetAlert({ onCreated }: { onCreated(): void }) {
  const t = useText(text);
  const c = useText(common);
  const [threshold, setThreshold] = useState('80');
  const [channel, setChannel] = useState<'EMAIL' | 'WEBHOOK'>('EMAIL');
  const [address, setAddress] = useState('');
  const [cooldown, setCooldown] = useState('600');
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(undefined);
    setError(undefined);
    setDone(false);
    const pct = Number(threshold);
    if (!/^\d+$/.test(threshold.trim()) || pct < 1 || pct > 100) return setProblem(t.badThreshold);
    if (!address.trim()) return setProblem(t.badAddress);
    if (!/^\d+$/.test(cooldown.trim())) return setProblem(t.badCooldown);
    setBusy(true);
    try {
      await request(CREATE, { thresholdPercent: pct, channel, address: address.trim(), cooldownSecs: Number(cooldown) });
      setDone(true);
      setAddress('');
      onCreated();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card" aria-labelledby="my-new-alert">
      <h2 id="my-new-alert">{t.newAlert}</h2>
      <p className="muted">{t.newAlertHint}</p>
      <form className="row" onSubmit={(e) => void submit(e)} noValidate>
        <Field label={t.threshold}>
          <input value={threshold} inputMode="numeric" onChange={(e) => setThreshold(e.target.value)} />
        </Field>
        <Field label={t.channel}>
          <select value={channel} onChange={(e) => setChannel(e.target.value as 'EMAIL' | 'WEBHOOK')}>
            <option value="EMAIL">{t.EMAIL}</option>
            <option value="WEBHOOK">{t.WEBHOOK}</option>
          </select>
        </Field>
        <Field label={channel === 'EMAIL' ? t.addressEmail : t.addressWebhook}>
          <input
            type={channel === 'EMAIL' ? 'email' : 'url'}
            value={address}
            onChange={(e) => setAddress(e.target.value)}
            placeholder={channel === 'EMAIL' ? 'me@example.com' : 'https://'}
          />
        </Field>
        <Field label={t.cooldown}>
          <input value={cooldown} inputMode="numeric" onChange={(e) => setCooldown(e.target.value)} />
        </Field>
        <button type="submit" className="primary" disabled={busy}>
          {c.create}
        </button>
      </form>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={error} />
      {done && (
        <p className="ok-text" role="status">
          {t.created}
        </p>
      )}
    </section>
  );
}
